"""Linear-time two-sample tests for windows of a day's traffic (10^4-10^5 documents), where the quadratic-time
kernel tests of qlife.methods.drift (an (n+m)^2 Gram matrix) cannot run.

Inputs: the reference ``X`` (n x d) and the live window ``Y`` (m x d); outputs a `LinearMMDResult`. Both tests use
the Gaussian kernel exp(-|x - y|^2 / (2 sigma^2)) with sigma the median pairwise distance of a seeded subsample of
the pooled rows (``bandwidth_seed``, ``_MEDIAN_POINTS`` rows: O(1) in n), as the quadratic RBF test does.

- `rff_mmd_test`: random Fourier features (Rahimi & Recht 2007). phi(z) = [cos(z W), sin(z W)] / sqrt(D) with the
  D columns of W drawn from N(0, sigma^-2 I) (``feature_seed``), so phi(x).phi(y) = mean_j cos(w_j.(x - y)) is an
  unbiased estimate of k(x, y); the statistic |mean phi(X) - mean phi(Y)|^2 is then an unbiased estimate of the
  biased (V-statistic) MMD^2 of the Gaussian kernel, with error O(1/sqrt(D)) (measured: 2.4% at D = 256, 1.1% at
  4,096), and the exact MMD^2 of the finite kernel phi(x).phi(y). That kernel is not characteristic: a difference
  invisible at the D sampled frequencies goes unseen. Cost O((n+m) d D); features in float32.
  p-value (``null``):
    ``permutation`` (default): the pooled feature-map rows are permuted (the smaller side's rows drawn anew) and the
      statistic recomputed, O((n+m) D) per permutation; exact given the bandwidth and the frequencies (the
      bandwidth is a symmetric function of the pooled sample up to ``_MEDIAN_POINTS`` pooled rows, as in
      qlife.methods.drift), floor 1 / (n_permutations + 1). Not the permutations the quadratic tests share.
    ``asymptotic``: under H0 the multivariate CLT gives sqrt(nm/N) (mean phi(X) - mean phi(Y)) -> N(0, C), so
      (nm/N) |mean phi(X) - mean phi(Y)|^2 -> sum_j lambda_j chi2_1 with lambda_j the eigenvalues of C, the
      covariance of phi, estimated on at most ``_COV_ROWS`` pooled rows; the weighted chi-square's tail is sampled
      (``null_draws`` draws, seeded), floor 1 / (null_draws + 1). No permutations; valid as n grows (checked
      against the permutation null in the tests: mean |p difference| < 0.03 at n = 300), conservative under H1
      (the pooled covariance includes the shift).
- `block_mmd_test`: the block MMD (the B-test of Zaremba, Gretton & Blaschko 2013): each sample shuffled
  (``seed``) and cut into as many blocks as the smaller one holds ``block_size`` rows, the unbiased MMD^2 of each
  block pair, their mean tested against N(0, var / blocks). ``block_size = 2`` (the default) is the linear-time
  MMD of Gretton et al. 2012 (section 6), with all four cross terms of each pair averaged where their h uses two
  (both unbiased, the same O(n) cost); larger blocks trade O(n B) time for power. Rows beyond a whole number of
  blocks are dropped (fewer than the number of blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from qlife.methods.drift import _check_samples, median_bandwidth

NULLS = ("permutation", "asymptotic")
_MEDIAN_POINTS = 1000  # rows of the pooled sample the median heuristic sees (pdist: ~N^2/2 distances)
_ROW_CHUNK = 16_384  # rows featurised at once (memory: chunk x D)
_PERM_CHUNK = 32  # permutations scored at once (memory: chunk x (n+m) float32)
_COV_ROWS = 20_000  # pooled rows the asymptotic null's covariance is estimated on
_BLOCK_ENTRIES = 4_000_000  # kernel entries computed at once by the block test


@dataclass(frozen=True)
class LinearMMDResult:
    method: str  # "rff" or "block"
    mmd2: float  # the statistic: RFF estimate of the V-statistic MMD^2, or the mean block MMD^2_u
    p_value: float
    null: str  # "permutation", "asymptotic" (weighted chi-square) or "normal" (block)
    p_value_floor: float  # the smallest p-value the null can give (0 for the normal null)
    bandwidth: float  # Gaussian sigma: k = exp(-|x - y|^2 / (2 sigma^2))
    n_ref: int
    n_live: int
    n_permutations: int | None = None  # permutation null
    n_frequencies: int | None = None  # rff: D (2D features)
    block_size: int | None = None  # block: rows of the smaller sample per block
    n_blocks: int | None = None
    z: float | None = None  # block: the standardised statistic

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _bandwidth(X: np.ndarray, Y: np.ndarray, bandwidth: float | None, seed: int) -> float:
    if bandwidth is None:
        return median_bandwidth(X, Y, max_points=_MEDIAN_POINTS, seed=seed)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0; got {bandwidth}")
    return float(bandwidth)


def rff_frequencies(d: int, n_frequencies: int, bandwidth: float, seed: int = 0) -> np.ndarray:
    """W (d, D): the Gaussian kernel of width ``bandwidth``'s spectral measure N(0, bandwidth^-2 I), seeded."""
    return np.random.default_rng(seed).normal(scale=1.0 / bandwidth, size=(d, n_frequencies))


def rff_features(Z: np.ndarray, W: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """phi(Z) = [cos(Z W), sin(Z W)] / sqrt(D), (len(Z), 2D), computed in row chunks."""
    out = np.empty((len(Z), 2 * W.shape[1]), dtype=dtype)
    D = W.shape[1]
    for s in range(0, len(Z), _ROW_CHUNK):
        P = (Z[s:s + _ROW_CHUNK] @ W).astype(dtype)  # float32: cos and sin run ~4x faster
        out[s:s + _ROW_CHUNK, :D], out[s:s + _ROW_CHUNK, D:] = np.cos(P), np.sin(P)
    out /= np.sqrt(D)
    return out


def rff_mmd2(X: np.ndarray, Y: np.ndarray, bandwidth: float | None = None, n_frequencies: int = 128,
             feature_seed: int = 0) -> float:
    """|mean phi(X) - mean phi(Y)|^2: the RFF estimate of the V-statistic Gaussian MMD^2 at ``bandwidth`` (the
    median heuristic when None)."""
    X, Y = _check_samples(X, Y)
    W = rff_frequencies(X.shape[1], n_frequencies, _bandwidth(X, Y, bandwidth, 0), feature_seed)
    delta = rff_features(X, W).mean(0) - rff_features(Y, W).mean(0)
    return float(delta @ delta)


def _permutation_p(Phi: np.ndarray, k: int, observed: float, n_permutations: int, seed: int) -> float:
    """p-value of |sum of the first k rows of the centred Phi|^2 among `n_permutations` random k-subsets."""
    rng = np.random.default_rng(seed)
    N, exceed = len(Phi), 0
    for start in range(0, n_permutations, _PERM_CHUNK):
        p = min(_PERM_CHUNK, n_permutations - start)
        Z = np.zeros((p, N), dtype=Phi.dtype)
        for i in range(p):
            Z[i, rng.choice(N, k, replace=False)] = 1.0
        # Phi^T Z^T, not Z Phi: OpenBLAS threads the latter's shape (few rows, long inner axis) badly, 0.7 s
        # instead of 6 ms at N = 20,000 on 2 cores
        S = (Phi.T @ Z.T).T.astype(np.float64)
        # relative tolerance: float32 sums of the same split differ by rounding only
        exceed += int(((S * S).sum(1) >= observed * (1 - 1e-5)).sum())
    return (1 + exceed) / (1 + n_permutations)


def _asymptotic_p(Phi: np.ndarray, statistic: float, draws: int, seed: int) -> float:
    """p-value of (nm/N) MMD^2 = `statistic` under sum_j lambda_j chi2_1, lambda: eigenvalues of cov(phi)."""
    rng = np.random.default_rng(seed)
    rows = Phi if len(Phi) <= _COV_ROWS else Phi[rng.choice(len(Phi), _COV_ROWS, replace=False)]
    rows = rows.astype(np.float64)
    rows = rows - rows.mean(0)
    lam = np.linalg.eigvalsh(rows.T @ rows / len(rows))
    lam = lam[lam > 1e-12 * max(lam.max(), 1e-300)]
    null = (rng.standard_normal((draws, lam.size)) ** 2) @ lam
    return (1 + int((null >= statistic).sum())) / (1 + draws)


def rff_mmd_test(
    X: np.ndarray, Y: np.ndarray, n_frequencies: int = 128, null: str = "permutation", n_permutations: int = 200,
    bandwidth: float | None = None, seed: int = 0, feature_seed: int = 0, bandwidth_seed: int = 0,
    null_draws: int = 20_000,
) -> LinearMMDResult:
    """Random-Fourier-feature MMD test of reference ``X`` vs window ``Y``, linear in n + m.

    ``null``: "permutation" (``n_permutations`` of the feature-map rows, drawn by ``seed``) or "asymptotic" (the
    weighted chi-square, ``null_draws`` draws with ``seed``). ``bandwidth``: the Gaussian sigma (the median heuristic
    on a ``bandwidth_seed`` subsample when None); ``feature_seed`` draws the frequencies.
    """
    X, Y = _check_samples(X, Y)
    if null not in NULLS:
        raise ValueError(f"null {null!r}: one of {NULLS}")
    if n_frequencies < 1:
        raise ValueError(f"n_frequencies must be >= 1; got {n_frequencies}")
    if null == "permutation" and n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    if null == "asymptotic" and null_draws < 1:
        raise ValueError(f"null_draws must be >= 1; got {null_draws}")
    sigma = _bandwidth(X, Y, bandwidth, bandwidth_seed)
    n, m = len(X), len(Y)
    N = n + m
    # the smaller sample first: the difference of means is its centred sum times N / (n m)
    small_first = np.concatenate([X, Y] if n <= m else [Y, X])
    Phi = rff_features(small_first, rff_frequencies(X.shape[1], n_frequencies, sigma, feature_seed), np.float32)
    Phi -= Phi.mean(0, dtype=np.float64).astype(np.float32)
    k = min(n, m)
    s = Phi[:k].sum(0, dtype=np.float64)
    scale = N / (n * m)
    mmd2 = float(scale**2 * (s @ s))
    if null == "permutation":
        S = (np.r_[np.ones(k), np.zeros(N - k)].astype(np.float32) @ Phi).astype(np.float64)
        p, floor = _permutation_p(Phi, k, float(S @ S), n_permutations, seed), 1.0 / (n_permutations + 1)
    else:
        p, floor = _asymptotic_p(Phi, mmd2 / scale, null_draws, seed), 1.0 / (null_draws + 1)
    return LinearMMDResult("rff", mmd2, p, null, floor, sigma, n, m,
                           n_permutations if null == "permutation" else None, n_frequencies)


def _block_mmd2(Xb: np.ndarray, Yb: np.ndarray, gamma: float) -> np.ndarray:
    """Unbiased MMD^2 of each block pair: Xb (B, bx, d), Yb (B, by, d) -> (B,)."""

    def k(A: np.ndarray, C: np.ndarray) -> np.ndarray:
        sq = (A * A).sum(-1)[:, :, None] + (C * C).sum(-1)[:, None, :] - 2.0 * A @ C.transpose(0, 2, 1)
        return np.exp(-gamma * np.maximum(sq, 0.0))

    bx, by = Xb.shape[1], Yb.shape[1]
    kxx, kyy = k(Xb, Xb).sum((1, 2)) - bx, k(Yb, Yb).sum((1, 2)) - by  # the diagonal is exp(0) = 1
    return kxx / (bx * (bx - 1)) + kyy / (by * (by - 1)) - 2.0 * k(Xb, Yb).mean((1, 2))


def block_mmd_test(
    X: np.ndarray, Y: np.ndarray, block_size: int = 2, bandwidth: float | None = None, seed: int = 0,
    bandwidth_seed: int = 0,
) -> LinearMMDResult:
    """Block MMD test (Gaussian kernel) with its asymptotic normal null; ``block_size = 2``: linear time."""
    X, Y = _check_samples(X, Y)
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2 (an unbiased MMD^2 needs 2 rows per sample); got {block_size}")
    n_blocks = min(len(X), len(Y)) // block_size
    if n_blocks < 2:
        raise ValueError(f"the smaller sample has {min(len(X), len(Y))} rows: at least 2 blocks of block_size = "
                         f"{block_size} are needed for the null's variance")
    sigma = _bandwidth(X, Y, bandwidth, bandwidth_seed)
    gamma = 1.0 / (2.0 * sigma**2)
    rng = np.random.default_rng(seed)
    bx, by = len(X) // n_blocks, len(Y) // n_blocks
    Xb = X[rng.permutation(len(X))[: n_blocks * bx]].reshape(n_blocks, bx, -1)
    Yb = Y[rng.permutation(len(Y))[: n_blocks * by]].reshape(n_blocks, by, -1)
    step = max(1, _BLOCK_ENTRIES // (bx + by) ** 2)
    h = np.concatenate([_block_mmd2(Xb[s:s + step], Yb[s:s + step], gamma) for s in range(0, n_blocks, step)])
    sd = h.std(ddof=1)
    z = float(h.mean() / (sd / np.sqrt(n_blocks))) if sd > 0 else 0.0
    return LinearMMDResult("block", float(h.mean()), float(norm.sf(z)), "normal", 0.0, sigma, len(X), len(Y),
                           block_size=block_size, n_blocks=n_blocks, z=z)
