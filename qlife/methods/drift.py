"""Two-sample drift tests: kernel MMD with a permutation test, and per-feature Kolmogorov-Smirnov.

Stage 7's classical baseline. Inputs are a reference sample ``X`` (n x d) and a live sample ``Y`` (m x d);
outputs are small result dataclasses. The permutation test works on a precomputed kernel matrix over the
pooled sample, so any kernel (RBF here, a quantum fidelity kernel later) plugs into the same test:
``kernel_mmd_test(X, Y, kernel=my_kernel)`` or ``mmd_permutation_test(K, n)``.

Seeds: a verdict must not move with the seed. The reference is the whole of ``X`` unless ``max_ref`` cuts it,
then a subsample fixed by ``ref_seed`` (the same rows for every window); the median-heuristic bandwidth is a
function of the pooled sample alone (all of it up to ``_BANDWIDTH_POINTS`` rows, else a subsample fixed by
``bandwidth_seed``); ``seed`` only draws the permutations, whose Monte Carlo error is
~ sqrt(p (1 - p) / n_permutations) with a floor of 1 / (n_permutations + 1).
Cost: one (n+m)^2 kernel matrix and O(n_permutations (n+m)^2) flops; measured on 2 cores at n+m = 2,300,
d = 16, 2,000 permutations: ~1 s per window.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import ks_2samp

Kernel = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Permutations are scored in chunks so memory stays at chunk x (n+m) floats.
_PERM_CHUNK = 256
# The median heuristic uses every pooled row up to this many (pdist: ~N^2/2 distances), so it is a
# symmetric function of the pooled sample and the permutation test stays exact.
_BANDWIDTH_POINTS = 3000
# The pooled kernel matrix is (n+m)^2 float64: refuse beyond this many rows (16,000 rows ~ 2 GiB) and
# ask for a reference subsample instead of running out of memory.
MAX_POOLED_ROWS = 16_000


@dataclass(frozen=True)
class MMDResult:
    mmd2: float  # unbiased MMD^2 of the observed split
    p_value: float  # (1 + #{perm >= observed}) / (1 + n_permutations)
    n_permutations: int
    gamma: float | None = None  # RBF gamma when the RBF kernel was used
    bandwidth: float | None = None  # RBF sigma (median heuristic unless gamma was given): gamma = 1/(2 sigma^2)

    @property
    def p_value_floor(self) -> float:
        """The smallest p-value this many permutations can give: every clear drift reads this value."""
        return 1.0 / (self.n_permutations + 1)


@dataclass(frozen=True)
class KSResult:
    statistics: np.ndarray  # (d,) KS statistic per feature
    p_values: np.ndarray  # (d,) two-sided p-value per feature
    min_p: float
    bonferroni_p: float  # min(1, d * min_p)


@dataclass(frozen=True)
class DriftReport:
    alarm: bool  # drift alarm: MMD p-value < alpha
    alpha: float
    mmd: MMDResult
    ks: KSResult
    ks_alarm: bool  # KS Bonferroni p-value < alpha, reported beside the alarm
    n_ref: int  # reference rows actually used (after subsampling)
    n_live: int
    n_ref_available: int | None = None  # reference rows given (n_ref < this when max_ref subsampled)

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-safe summary (builtin types only)."""
        return {
            "alarm": bool(self.alarm),
            "alpha": float(self.alpha),
            "mmd2": float(self.mmd.mmd2),
            "mmd_p_value": float(self.mmd.p_value),
            "p_value_floor": float(self.mmd.p_value_floor),
            "n_permutations": int(self.mmd.n_permutations),
            "gamma": None if self.mmd.gamma is None else float(self.mmd.gamma),
            "bandwidth": None if self.mmd.bandwidth is None else float(self.mmd.bandwidth),
            "ks_alarm": bool(self.ks_alarm),
            "ks_min_p": float(self.ks.min_p),
            "ks_bonferroni_p": float(self.ks.bonferroni_p),
            "ks_statistics": [float(s) for s in self.ks.statistics],
            "ks_p_values": [float(p) for p in self.ks.p_values],
            "n_ref": int(self.n_ref),
            "n_live": int(self.n_live),
            "n_ref_available": int(self.n_ref if self.n_ref_available is None else self.n_ref_available),
        }


def _check_samples(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"samples must be 2-D with the same number of columns; got {X.shape} and {Y.shape}")
    if len(X) < 2 or len(Y) < 2:
        raise ValueError(f"each sample needs at least 2 rows; got {len(X)} and {len(Y)}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("samples contain NaN or infinite values")
    return X, Y


def median_bandwidth(X: np.ndarray, Y: np.ndarray, max_points: int = _BANDWIDTH_POINTS, seed: int = 0) -> float:
    """Median pairwise Euclidean distance over the pooled sample (subsampled, by ``seed``, to ``max_points`` rows
    when larger)."""
    Z = np.concatenate([np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)])
    if len(Z) > max_points:
        Z = Z[np.random.default_rng(seed).choice(len(Z), max_points, replace=False)]
    d = pdist(Z)
    d = d[d > 0]
    # All points identical: any bandwidth gives the same (zero) MMD, so pick a harmless one.
    return float(np.median(d)) if d.size else 1.0


def rbf_kernel(A: np.ndarray, B: np.ndarray, gamma: float) -> np.ndarray:
    """exp(-gamma * ||a - b||^2) for every row pair of ``A`` and ``B``."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    return np.exp(-gamma * np.maximum(sq, 0.0))  # clip: rounding can make sq slightly negative


def permutations(N: int, n: int, count: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of 0/1 indicator rows (1: a row of the first sample, n per row: a uniform random n-subset), `count`
    rows in all. The same (N, n, count, seed) gives the same splits: every test of a run that shares the seed
    (RBF, tuned, quantum, MMD-FUSE) is scored on the same permutations."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, _PERM_CHUNK):
        p = min(_PERM_CHUNK, count - start)
        first = np.argsort(rng.random((p, N)), axis=1)[:, :n]
        Z = np.zeros((p, N))
        np.put_along_axis(Z, first, 1.0, axis=1)
        yield Z


def _mmd2_splits(K: np.ndarray, Z: np.ndarray, n: int) -> np.ndarray:
    """Unbiased MMD^2 for each row of the 0/1 indicator matrix ``Z`` (1 = first sample, n ones per row)."""
    N = K.shape[0]
    m = N - n
    diag, row, total = np.diag(K), K.sum(1), K.sum()
    zkz = np.einsum("pi,pi->p", Z @ K, Z)  # sum of K over the first-sample block
    zr, zd = Z @ row, Z @ diag
    kxx = (zkz - zd) / (n * (n - 1))
    kyy = (total - 2.0 * zr + zkz - (diag.sum() - zd)) / (m * (m - 1))
    kxy = (zr - zkz) / (n * m)
    return kxx + kyy - 2.0 * kxy


def _check_kernel(K: np.ndarray, n: int) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square (n+m)x(n+m) matrix; got shape {K.shape}")
    if not 2 <= n <= K.shape[0] - 2:
        raise ValueError(f"need at least 2 rows in each sample; got n={n} of {K.shape[0]}")
    return K


def mmd2_from_kernel(K: np.ndarray, n: int) -> float:
    """Unbiased MMD^2 from the pooled kernel matrix ``K``; its first ``n`` rows are the reference."""
    K = _check_kernel(K, n)
    z = np.zeros((1, K.shape[0]))
    z[0, :n] = 1.0
    return float(_mmd2_splits(K, z, n)[0])


def mmd_permutation_test(K: np.ndarray, n: int, n_permutations: int = 500, seed: int = 0) -> MMDResult:
    """Permutation test of MMD^2 on a precomputed pooled kernel matrix (first ``n`` rows = reference)."""
    K = _check_kernel(K, n)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    N = K.shape[0]
    observed_z = np.zeros((1, N))
    observed_z[0, :n] = 1.0
    observed = _mmd2_splits(K, observed_z, n)[0]
    exceed = 0
    for Z in permutations(N, n, n_permutations, seed):
        stats = _mmd2_splits(K, Z, n)
        # Relative tolerance so a permutation equal to the observed split counts despite rounding.
        exceed += int((stats >= observed - 1e-12 * max(1.0, abs(observed))).sum())
    return MMDResult(float(observed), (1 + exceed) / (1 + n_permutations), n_permutations)


def kernel_mmd_test(
    X: np.ndarray, Y: np.ndarray, kernel: Kernel, n_permutations: int = 500, seed: int = 0
) -> MMDResult:
    """MMD permutation test with any kernel ``kernel(A, B) -> (len(A), len(B))`` matrix."""
    X, Y = _check_samples(X, Y)
    Z = np.concatenate([X, Y])
    return mmd_permutation_test(kernel(Z, Z), len(X), n_permutations, seed)


def rbf_mmd_test(
    X: np.ndarray, Y: np.ndarray, n_permutations: int = 500, gamma: float | None = None, seed: int = 0,
    bandwidth_seed: int = 0,
) -> MMDResult:
    """RBF-kernel MMD permutation test; ``gamma = 1 / (2 sigma^2)`` from the median heuristic when None.

    ``seed`` draws the permutations only; the bandwidth never depends on it (``bandwidth_seed`` fixes the
    subsample the median heuristic uses when the pooled sample exceeds ``_BANDWIDTH_POINTS`` rows).
    """
    X, Y = _check_samples(X, Y)
    if gamma is None:
        sigma = median_bandwidth(X, Y, seed=bandwidth_seed)
        gamma = 1.0 / (2.0 * sigma**2)
    else:
        sigma = float(np.sqrt(1.0 / (2.0 * gamma)))
    res = kernel_mmd_test(X, Y, lambda A, B: rbf_kernel(A, B, gamma), n_permutations, seed)
    return MMDResult(res.mmd2, res.p_value, res.n_permutations, float(gamma), float(sigma))


def ks_max_permutation_test(X: np.ndarray, Y: np.ndarray, n_permutations: int = 500, seed: int = 0
                            ) -> tuple[float, float, np.ndarray]:
    """The largest per-feature two-sample KS statistic, its p-value from the permutations every test of the window
    shares (`permutations`, first ``len(X)`` rows = reference): (statistic, p-value, per-feature statistics).
    Exact under exchangeability whatever the features' dependence; Bonferroni over the per-feature p-values is
    conservative where features are correlated (tests/methods/test_drifttests.py: eight features at correlation
    ~0.9). On the pipeline's PCA features (uncorrelated) the two reject almost the same windows (bench.calibration:
    399 of 400 decisions alike); Bonferroni's p-values are not uniform there only by their mass at 1.
    Ties are handled: the ECDFs are compared at the end of each run of equal pooled values. The statistic is discrete
    (KS distances lie on a grid of 1/lcm(n, m)): about 2% of permutations tie the observed maximum on continuous
    data, more where values repeat. Counting ties as exceedances makes the test conservative (a binary feature: mean
    p-value 0.60; tests/methods/test_drifttests.py), so ties are broken at random: the observed statistic's rank
    among its equals is uniform (Hemerik & Goeman 2018), drawn from a generator seeded by `seed` and the samples'
    bytes (the same window gets the same p-value; the draw differs between windows), which makes the p-value exactly
    uniform under exchangeability. On bench.calibration's SST-2 windows it changed little: against a reference of
    300, 2 of 200 rejected at 0.05 before and after (6 and 7 of 200 at 0.1); that row's low rate is not explained by
    ties. Cost: d sorts, then n_permutations x (n + m) x d additions."""
    X, Y = _check_samples(X, Y)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    n, m = len(X), len(Y)
    if n < 1 or m < 1:
        raise ValueError(f"need rows in both samples; got {n} and {m}")
    pooled = np.concatenate([X, Y])
    N, d = pooled.shape
    order = np.argsort(pooled, axis=0, kind="stable")
    ranks_le = np.arange(1, N + 1, dtype=np.float64)
    ends = []  # per feature: positions in sorted order where a run of equal values ends
    for j in range(d):
        v = pooled[order[:, j], j]
        ends.append(np.flatnonzero(np.r_[v[1:] != v[:-1], True]))

    def stats(Z: np.ndarray) -> np.ndarray:  # (p, N) indicators -> (p, d) statistics
        out = np.empty((len(Z), d))
        Z = Z.astype(np.int32)  # counts: exact, and integer sums are cheaper than float ones
        for j in range(d):
            c = np.cumsum(Z[:, order[:, j]], axis=1)[:, ends[j]]
            out[:, j] = np.abs(c / n - (ranks_le[ends[j]] - c) / m).max(1)
        return out

    z0 = np.zeros((1, N))
    z0[0, :n] = 1.0
    per_feature = stats(z0)[0]
    observed = float(per_feature.max())
    greater = ties = 0
    for Z in permutations(N, n, n_permutations, seed):
        t = stats(Z).max(1)
        greater += int((t > observed + 1e-12).sum())
        ties += int((np.abs(t - observed) <= 1e-12).sum())
    rank = int(np.random.default_rng([int(seed), zlib.crc32(pooled.tobytes()), n]).integers(0, ties + 1))
    return observed, (1 + greater + rank) / (1 + n_permutations), per_feature


def ks_tests(X: np.ndarray, Y: np.ndarray) -> KSResult:
    """Two-sample KS test per feature, with a Bonferroni-corrected minimum p-value."""
    X, Y = _check_samples(X, Y)
    res = ks_2samp(X, Y, axis=0)
    stats, p = np.atleast_1d(res.statistic).astype(float), np.atleast_1d(res.pvalue).astype(float)
    min_p = float(p.min())
    return KSResult(stats, p, min_p, min(1.0, len(p) * min_p))


def reference_subsample(n: int, max_ref: int | None, ref_seed: int = 0) -> np.ndarray:
    """Row indices (sorted) of the reference actually tested: all ``n`` rows when ``max_ref`` is None or not
    smaller, else ``max_ref`` rows drawn once by ``ref_seed`` (the same rows for every window and seed)."""
    if max_ref is None or n <= max_ref:
        return np.arange(n)
    return np.sort(np.random.default_rng(ref_seed).choice(n, max_ref, replace=False))


def detect_drift(
    X_ref: np.ndarray,
    X_live: np.ndarray,
    alpha: float = 0.05,
    n_permutations: int = 2000,
    seed: int = 0,
    max_ref: int | None = None,
    kernel: Kernel | None = None,
    ref_seed: int = 0,
) -> DriftReport:
    """MMD permutation test (the alarm) and per-feature KS (reported beside it) between reference and live.

    The MMD test uses the whole reference unless ``max_ref`` bounds it, then a subsample fixed by
    ``ref_seed``; ``seed`` only draws the permutations, so a verdict moves with it by Monte Carlo error alone.
    ``kernel`` replaces the median-heuristic RBF kernel when given (e.g. a quantum fidelity kernel).
    KS always sees the full reference: it is cheap.
    """
    X_ref, X_live = _check_samples(X_ref, X_live)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    ref = X_ref[reference_subsample(len(X_ref), max_ref, ref_seed)]
    if len(ref) + len(X_live) > MAX_POOLED_ROWS:
        raise ValueError(f"the pooled sample has {len(ref) + len(X_live)} rows (> {MAX_POOLED_ROWS}): its kernel "
                         f"matrix needs {8 * (len(ref) + len(X_live)) ** 2 / 2**30:.1f} GiB; subsample the reference "
                         "with max_ref (monitor.max_ref) or use smaller live windows")
    if kernel is None:
        mmd = rbf_mmd_test(ref, X_live, n_permutations, seed=seed, bandwidth_seed=ref_seed)
    else:
        mmd = kernel_mmd_test(ref, X_live, kernel, n_permutations, seed)
    ks = ks_tests(X_ref, X_live)
    return DriftReport(
        alarm=mmd.p_value < alpha,
        alpha=alpha,
        mmd=mmd,
        ks=ks,
        ks_alarm=ks.bonferroni_p < alpha,
        n_ref=len(ref),
        n_live=len(X_live),
        n_ref_available=len(X_ref),
    )
