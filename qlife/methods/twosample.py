"""Kernel two-sample tests beyond the median-heuristic RBF: a bandwidth-tuned MMD test (any kernel family, one
tuning rule), MMD-FUSE (several kernels and bandwidths fused in one permutation test), and one-class SVM anomaly
scores on a precomputed kernel.

Every test takes the pooled sample Z = [X; Y] (X: the reference, n rows; Y: the live window, m rows) and draws
its permutations from `permutations(N, n, count, seed)`: the same seed gives the same splits for every kernel,
so kernels compared in one run are compared on the same permutations, and MMD-FUSE's statistic is the
log-sum-exp of every kernel's statistic on the *same* permuted split.

Tuned test (Sutherland et al. 2017, Liu et al. 2020): the pooled data is split once (`split_seed`) into a
tuning half and a test half of each sample. On the tuning half (the reference part subsampled to the window's
size: the criterion needs paired rows) each bandwidth of the grid scores the power criterion
J = MMD^2_u / sqrt(var_H1 + 1e-8); the argmax is tested by permutation on the test half alone, so the choice
does not bias the p-value (and costs half the data: the price of tuning that MMD-FUSE avoids). The RBF twin and
the quantum kernels use the same rule and the same split.

MMD-FUSE (Biggs, Schrab & Gretton 2023, arXiv 2306.08777; the reference JAX code, antoninschrab/mmdfuse, is
followed line by line): for each kernel, with its diagonal zeroed, the normalised statistic
M_k = MMD-estimate(k) / sqrt(sum K_ij^2) * sqrt(n'(n'-1)) (n' the smaller sample), and
FUSE = log(mean_k exp(lambda M_k)); the p-value counts permuted FUSE >= observed, the observed split included.
Kernels: Gaussian (l2) and Laplace (l1) at `n_bandwidths` bandwidths spread linearly from half the 5% to twice
the 95% quantile of the pooled distances, plus any precomputed Gram matrices given (quantum kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import pdist, squareform
from scipy.special import logsumexp

from qlife.methods.drift import _check_samples, mmd_permutation_test, permutations

GramFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- tuned bandwidth


def power_criterion(K: np.ndarray, n: int) -> tuple[float, float, float]:
    """(J, MMD^2_u, var_H1) for paired samples: K is the pooled (2n, 2n) Gram, first n rows X, last n Y.
    H_ij = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i); var_H1 = 4/n^3 sum_i (sum_j H_ij)^2 -
    4/n^4 (sum_ij H_ij)^2 (Liu et al. 2020, eq. 5)."""
    kxx, kyy, kxy = K[:n, :n], K[n:, n:], K[:n, n:]
    h = kxx + kyy - kxy - kxy.T
    mmd2 = (h.sum() - np.trace(h)) / (n * (n - 1))
    var = 4.0 / n**3 * float((h.sum(1) ** 2).sum()) - 4.0 / n**4 * float(h.sum()) ** 2
    return float(mmd2 / np.sqrt(max(var, 0.0) + 1e-8)), float(mmd2), float(var)


@dataclass(frozen=True)
class Split:
    tune_x: np.ndarray
    test_x: np.ndarray
    tune_y: np.ndarray
    test_y: np.ndarray


def tuning_split(n: int, m: int, seed: int = 0) -> Split:
    """Half of each sample for tuning, the other half for testing (fixed by `seed`); the two tuning halves are cut
    to the smaller one's size (paired rows for the criterion: a reference smaller than the window, too)."""
    if n < 8 or m < 8:
        raise ValueError(f"a tuned test needs at least 8 rows in each sample (4 to tune, 4 to test); got {n}, {m}")
    rng = np.random.default_rng(seed)
    px, py = rng.permutation(n), rng.permutation(m)
    hx, hy = n // 2, m // 2
    h = min(hx, hy)
    return Split(np.sort(px[:h]), np.sort(px[hx:]), np.sort(py[:h]), np.sort(py[hy:]))


@dataclass(frozen=True)
class TunedResult:
    mmd2: float
    p_value: float
    n_permutations: int
    bandwidth: float  # the chosen value of the family's parameter
    criterion: dict[float, float]  # bandwidth -> J on the tuning half
    n_tune: int
    n_test: tuple[int, int]
    diagnostics: dict[str, Any] = field(default_factory=dict)  # `diagnose` of the tested Gram, if given

    def to_dict(self) -> dict[str, Any]:
        return {"mmd2": self.mmd2, "p_value": self.p_value, "n_permutations": self.n_permutations,
                "bandwidth": self.bandwidth, "criterion": {str(k): v for k, v in self.criterion.items()},
                "n_tune": self.n_tune, "n_test": list(self.n_test), **self.diagnostics}


@dataclass(frozen=True)
class Tuning:
    """What the tuning half chose: the split (the held-out half is tested), the bandwidth, every criterion."""

    split: Split
    bandwidth: float
    criterion: dict[float, float]  # bandwidth -> J on the tuning half


def tune_bandwidth(X: np.ndarray, Y: np.ndarray, family: Callable[[float], GramFn], grid: list[float],
                   split_seed: int = 0) -> Tuning:
    """The b in `grid` whose kernel `family(b)` maximises the power criterion on the tuning half of the split
    fixed by `split_seed` (ties: the smaller b)."""
    X, Y = _check_samples(X, Y)
    if not grid:
        raise ValueError("the bandwidth grid is empty")
    s = tuning_split(len(X), len(Y), split_seed)
    T = np.concatenate([X[s.tune_x], Y[s.tune_y]])
    crit = {}
    for b in grid:
        K = family(b)(T, T)
        crit[float(b)] = power_criterion(K, len(s.tune_y))[0]
    return Tuning(s, max(crit, key=lambda b: (crit[b], -b)), crit)


def held_out_test(X: np.ndarray, Y: np.ndarray, family: Callable[[float], GramFn], tuning: Tuning,
                  n_permutations: int = 2000, seed: int = 0,
                  diagnose: Callable[[np.ndarray], dict[str, Any]] | None = None) -> TunedResult:
    """MMD permutation test of `family(tuning.bandwidth)` on the held-out half of `tuning.split` alone (so the
    choice does not bias the p-value); `diagnose(K)` is applied to the tested Gram."""
    X, Y = _check_samples(X, Y)
    s = tuning.split
    Z = np.concatenate([X[s.test_x], Y[s.test_y]])
    K = family(tuning.bandwidth)(Z, Z)
    res = mmd_permutation_test(K, len(s.test_x), n_permutations, seed)
    return TunedResult(res.mmd2, res.p_value, n_permutations, tuning.bandwidth, tuning.criterion, len(s.tune_y),
                       (len(s.test_x), len(s.test_y)), diagnose(K) if diagnose else {})


def tuned_mmd_test(X: np.ndarray, Y: np.ndarray, family: Callable[[float], GramFn], grid: list[float],
                   n_permutations: int = 2000, seed: int = 0, split_seed: int = 0,
                   diagnose: Callable[[np.ndarray], dict[str, Any]] | None = None) -> TunedResult:
    """MMD permutation test of the kernel `family(b)` whose b in `grid` maximises the power criterion on the
    tuning half; tested on the held-out half. `family(b)(A, B)` returns the Gram matrix; `diagnose(K)` (e.g.
    the quantum kernels' concentration) is applied to the tested one."""
    tuning = tune_bandwidth(X, Y, family, grid, split_seed)
    return held_out_test(X, Y, family, tuning, n_permutations, seed, diagnose)


def rbf_family(sigma_unit: float) -> Callable[[float], GramFn]:
    """Gaussian kernels exp(-|a - b|^2 / (2 (b sigma_unit)^2)): the grid is in units of `sigma_unit` (e.g. the
    median distance)."""
    from qlife.methods.drift import rbf_kernel

    return lambda b: (lambda A, B: rbf_kernel(A, B, 1.0 / (2.0 * (b * sigma_unit) ** 2)))


# ----------------------------------------------------------------------------- MMD-FUSE


def fuse_bandwidths(distances: np.ndarray, count: int) -> np.ndarray:
    """mmdfuse's collection: zeros replaced by the median, linspace(q05 / 2, q95 * 2, count)."""
    d = np.asarray(distances, dtype=np.float64)
    d = np.where(d == 0, np.median(d), d)
    dd = np.sort(d)
    lo, hi = dd[int(np.floor(len(dd) * 0.05))] / 2, dd[int(np.floor(len(dd) * 0.95))] * 2
    return np.linspace(lo, hi, count)


def fuse_kernels(Z: np.ndarray, kernels: tuple[str, ...] = ("gaussian", "laplace"), n_bandwidths: int = 10
                 ) -> dict[str, np.ndarray]:
    """The classical kernel matrices MMD-FUSE fuses, by name ('gaussian@<bandwidth>')."""
    out: dict[str, np.ndarray] = {}
    for kernel in kernels:
        if kernel == "gaussian":
            D = squareform(pdist(Z, "euclidean"))
        elif kernel == "laplace":
            D = squareform(pdist(Z, "cityblock"))
        else:
            raise ValueError(f"fuse kernel {kernel!r}: gaussian or laplace")
        for bw in fuse_bandwidths(D[np.triu_indices(len(D))], n_bandwidths):
            r = D / bw
            out[f"{kernel}@{bw:.4g}"] = np.exp(-(r**2) / 2) if kernel == "gaussian" else np.exp(-r * np.sqrt(2))
    return out


@dataclass
class FusePrep:
    """A stack of kernels with zeroed diagonals, their row sums, totals and Frobenius norms: computed once,
    reused for every chunk of permutations."""

    Kt: np.ndarray  # (k, N, N)
    r: np.ndarray  # (k, N)
    tot: np.ndarray  # (k, 1)
    scale: np.ndarray  # (k, 1)

    @classmethod
    def of(cls, K: np.ndarray) -> FusePrep:
        Kt = np.array(K, dtype=np.float64, copy=True)
        if Kt.ndim == 2:
            Kt = Kt[None]
        idx = np.arange(Kt.shape[-1])
        Kt[:, idx, idx] = 0.0
        r = Kt.sum(2)
        return cls(Kt, r, r.sum(1)[:, None], np.sqrt(np.einsum("kij,kij->k", Kt, Kt))[:, None])


def fuse_statistics(K: np.ndarray | FusePrep, Zs: np.ndarray, n_x: int) -> np.ndarray:
    """mmdfuse's normalised MMD statistic for each indicator row of Zs (1: sample X, n_x rows): of one kernel
    K (N, N) -> (P,), or of a stack (k, N, N) or its FusePrep -> (k, P) (one matrix product per kernel)."""
    single = not isinstance(K, FusePrep) and np.ndim(K) == 2
    prep = K if isinstance(K, FusePrep) else FusePrep.of(K)
    N = prep.Kt.shape[-1]
    big_is_x = n_x >= N - n_x
    m, n = (n_x, N - n_x) if big_is_x else (N - n_x, n_x)  # m >= n as in the reference code
    U = Zs if big_is_x else 1.0 - Zs  # indicator of the larger sample
    a = np.stack([np.einsum("pj,pj->p", U @ k, U) for k in prep.Kt])  # the larger block (zero diagonal)
    ur = prep.r @ U.T  # (k, P)
    b = prep.tot - 2.0 * ur + a  # the smaller block
    c = a + b - 2.0 * (ur - a)  # V11' K V11
    stat = a * (n - m + 1) * (n - 1) / (m * (m - 1)) + b * (m - n + 1) / m + c * (n - 1) / m
    out = stat / np.maximum(prep.scale, 1e-300) * np.sqrt(n * (n - 1))
    return out[0] if single else out


@dataclass(frozen=True)
class FuseResult:
    statistic: float
    p_value: float
    n_permutations: int
    kernels: list[str]
    per_kernel: dict[str, float] = field(default_factory=dict)  # each kernel's observed normalised statistic
    permuted: np.ndarray | None = field(default=None, repr=False)  # (kernels, n_permutations): for inspection

    def to_dict(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "p_value": self.p_value, "n_permutations": self.n_permutations,
                "kernels": self.kernels, "per_kernel": self.per_kernel}


def mmd_fuse_test(X: np.ndarray, Y: np.ndarray, kernels: tuple[str, ...] = ("gaussian", "laplace"),
                  n_bandwidths: int = 10, extra: dict[str, np.ndarray] | None = None,
                  n_permutations: int = 2000, seed: int = 0, lambda_multiplier: float = 1.0,
                  keep_permuted: bool = False) -> FuseResult:
    """MMD-FUSE on X (reference) vs Y: the classical `kernels` at `n_bandwidths` bandwidths each plus the
    precomputed pooled Gram matrices in `extra` (name -> (N, N), rows ordered [X; Y]), one permutation test."""
    X, Y = _check_samples(X, Y)
    Z = np.concatenate([X, Y])
    N, n = len(Z), len(X)
    grams = fuse_kernels(Z, kernels, n_bandwidths) if kernels else {}
    for name, K in (extra or {}).items():
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (N, N):
            raise ValueError(f"fuse kernel {name!r}: Gram of shape {K.shape}, expected ({N}, {N}) over [X; Y]")
        grams[name] = K
    if not grams:
        raise ValueError("MMD-FUSE needs at least one kernel")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    names = list(grams)
    stack = FusePrep.of(np.stack([grams[k] for k in names]))
    observed_z = np.zeros((1, N))
    observed_z[0, :n] = 1.0
    obs = fuse_statistics(stack, observed_z, n)[:, 0]
    perm = np.concatenate([fuse_statistics(stack, Zs, n) for Zs in permutations(N, n, n_permutations, seed)], axis=1)
    fused_obs = float(logsumexp(lambda_multiplier * obs, b=1.0 / len(names)))
    fused = logsumexp(lambda_multiplier * perm, axis=0, b=1.0 / len(names))
    exceed = int((fused >= fused_obs - 1e-12 * max(1.0, abs(fused_obs))).sum())
    return FuseResult(fused_obs, (1 + exceed) / (1 + n_permutations), n_permutations, names,
                      {k: float(v) for k, v in zip(names, obs)}, perm if keep_permuted else None)


# ----------------------------------------------------------------------------- one-class SVM


@dataclass(frozen=True)
class AnomalyScores:
    scores: np.ndarray  # (m,) higher: more anomalous (minus the SVM's decision function)
    flagged: np.ndarray  # (m,) bool: outside the reference's support estimate
    rate: float  # fraction flagged
    reference_rate: float  # the fraction of the reference itself flagged (about nu by construction)
    auc: float | None = None  # of the scores against per-document ground truth, where given

    def to_dict(self) -> dict[str, Any]:
        return {"anomaly_rate": self.rate, "reference_rate": self.reference_rate, "auc": self.auc,
                "mean_score": float(self.scores.mean())}


def ocsvm_scores(K_ref: np.ndarray, K_live_ref: np.ndarray, nu: float = 0.05,
                 truth: np.ndarray | None = None) -> AnomalyScores:
    """One-class SVM (scikit-learn, precomputed kernel) fitted on the reference Gram K_ref (n x n); scores of
    the live rows from K_live_ref (m x n). `truth` (m,) 0/1 marks drifted documents: the AUC of the scores."""
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import OneClassSVM

    K_ref, K_live_ref = np.asarray(K_ref, dtype=np.float64), np.asarray(K_live_ref, dtype=np.float64)
    if K_ref.ndim != 2 or K_ref.shape[0] != K_ref.shape[1] or K_live_ref.shape[1:] != K_ref.shape[1:]:
        raise ValueError(f"K_ref must be (n, n) and K_live_ref (m, n); got {K_ref.shape}, {K_live_ref.shape}")
    if not 0 < nu <= 1:
        raise ValueError(f"nu must be in (0, 1]; got {nu}")
    svm = OneClassSVM(kernel="precomputed", nu=nu).fit(K_ref)
    scores = -svm.decision_function(K_live_ref)
    ref_rate = float((svm.decision_function(K_ref) < 0).mean())
    auc = None
    if truth is not None:
        truth = np.asarray(truth).astype(int)
        if truth.shape != scores.shape:
            raise ValueError(f"truth has shape {truth.shape}, expected {scores.shape}")
        if 0 < truth.sum() < len(truth):
            auc = float(roc_auc_score(truth, scores))
    return AnomalyScores(scores, scores > 0, float((scores > 0).mean()), ref_rate, auc)
