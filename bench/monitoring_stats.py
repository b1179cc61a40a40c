"""Candidate per-window drift statistics for bench/monitoring.py: each a fixed function of (reference, window).

Every statistic here depends on the (standardised) reference and the window only, never on other windows, so
conformal ranks of it over a stream of exchangeable windows are exactly uniform (qlife.methods.sequential): any of
them keeps the detector's guarantee; they differ only in how far drift moves them. The reference's share of the
work (its distances, bandwidths, leave-one-out neighbour distances) is computed once per reference (`RefCache`).
The per-window RBF permutation test of stage 7 (qlife.methods.drift.rbf_mmd_test) is reproduced on the same
pooled kernel matrix and the same permutations, with an early stop that leaves its verdict at alpha unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from qlife.methods.domain_classifier import _aucs, _ridge_scores, cross_fit_folds, expand
from qlife.methods.drift import _mmd2_splits, permutations

# fixed RBF bandwidths: multiples of the reference's median pairwise distance
SCALES = (0.125, 0.177, 0.25, 0.5, 1.0, 2.0)
K_NOVEL = 5  # neighbours for the per-document novelty (distance to the k-th nearest reference row)
KS_GRAPH = (5, 10, 20, 40, 80)  # neighbours for the kNN two-sample statistic
KS_KL = (5, 10, 20, 30, 40, 60)  # neighbours for the kNN divergence statistic
TOP = 20  # top-k for the sparse-mixture combinations (10% of a window of 200)


def sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T), 0.0)


class RefCache:
    """What a reference contributes to every window's statistics, computed once."""

    def __init__(self, ref: np.ndarray, m: int, n_permutations: int = 200, perm_seed: int = 0):
        self.ref, self.n, self.m = ref, len(ref), m
        d_rr = sqdist(ref, ref)
        iu = np.triu_indices(self.n, 1)
        self.d_rr = d_rr
        self.sq_rr_upper = d_rr[iu]  # for the pooled median heuristic
        self.d_rr32 = d_rr.astype(np.float32)
        self.med = float(np.sqrt(np.median(self.sq_rr_upper)))
        self.gammas = [1.0 / (2.0 * (s * self.med) ** 2) for s in SCALES]
        self.k_rr_mean, self.sd0 = [], []
        for g in self.gammas:
            k = np.exp(-g * d_rr)
            off = (k.sum() - self.n) / (self.n * (self.n - 1))
            self.k_rr_mean.append(off)
            kc = k - k.mean(0)[None] - k.mean(1)[:, None] + k.mean()  # centred kernel
            np.fill_diagonal(kc, 0.0)
            e2 = (kc**2).sum() / (self.n * (self.n - 1))
            self.sd0.append(float(np.sqrt(2.0 * e2) * (1.0 / self.n + 1.0 / m)))  # H0 sd of unbiased MMD^2
        loo = d_rr.copy()
        np.fill_diagonal(loo, np.inf)
        self.loo_knn = np.sort(np.sqrt(np.partition(loo, K_NOVEL - 1, axis=1)[:, K_NOVEL - 1]))
        # the stage's RBF test: pooled (n + m) rows, reference first, the same permutations for every window
        self.n_permutations = n_permutations
        self.perms = np.concatenate(list(permutations(self.n + m, self.n, n_permutations, perm_seed)))
        self.folds = cross_fit_folds(self.n + m, 5, 0)


def rbf_test(rc: RefCache, d_wr: np.ndarray, d_ww: np.ndarray, chunk: int = 50,
             alpha: float = 0.05) -> tuple[float, float, bool]:
    """(MMD^2, p-value, exact?) of qlife.methods.drift.rbf_mmd_test(reference, window, n_permutations,
    seed=perm_seed): the median heuristic of the pooled sample (exactly: every pairwise distance), the same
    permutations, the same unbiased MMD^2 (drift._mmd2_splits). Two shortcuts: the kernel's exponentials are taken
    in float32 (the kernel matrix then differs by ~1e-7 relative; the matrix products stay float64), and
    permutations are scored in chunks that stop once more than alpha (n_permutations + 1) - 1 of them reach the
    observed MMD^2: the p-value is then above alpha whatever the rest give (returned as the lower bound so far,
    exact=False), so the verdict p < alpha is the full test's."""
    n, m = rc.n, len(d_ww)
    iu = np.triu_indices(m, 1)
    sq = np.concatenate([rc.sq_rr_upper, d_wr.ravel(), d_ww[iu]])
    h = len(sq) // 2
    mid = np.partition(sq, [h - 1, h])[[h - 1, h]]  # the median of distances: sqrt is monotone
    med = float(np.sqrt(mid[1]) if len(sq) % 2 else np.sqrt(mid).mean())
    gamma = np.float32(1.0 / (2.0 * med**2))
    K = np.empty((n + m, n + m), dtype=np.float32)
    K[:n, :n], K[:n, n:], K[n:, :n], K[n:, n:] = rc.d_rr32, d_wr.T, d_wr, d_ww
    K = np.exp(-gamma * K).astype(np.float64)
    z = np.zeros((1, n + m))
    z[0, :n] = 1.0
    observed = _mmd2_splits(K, z, n)[0]
    stop = int(np.floor(alpha * (rc.n_permutations + 1))) - 1  # p < alpha iff exceed <= stop (p = (1+e)/(P+1))
    exceed, done = 0, 0
    tol = observed - 1e-12 * max(1.0, abs(observed))
    for start in range(0, rc.n_permutations, chunk):
        stats = _mmd2_splits(K, rc.perms[start:start + chunk], n)
        exceed += int((stats >= tol).sum())
        done = start + len(stats)
        if exceed > stop:
            break
    return float(observed), (1 + exceed) / (1 + rc.n_permutations), done == rc.n_permutations


NAMES = ([f"mmd2_s{s:g}" for s in SCALES]
         + ["mmd2_maxstd", "energy", "mean_shift", "novel_top", "novel_hc", "novel_fisher"]
         + [f"knn2s_k{k}" for k in KS_GRAPH] + [f"knn2s_k{k}_top" for k in KS_GRAPH] + ["dc_auc"]
         + [f"kl_k{k}" for k in KS_KL] + [f"kl_k{k}_top" for k in KS_KL] + [f"klavg_k{k}" for k in KS_KL if k >= 10])


def window_values(rc: RefCache, W: np.ndarray, names: list[str] | tuple[str, ...] = NAMES, rbf: bool = False
                  ) -> tuple[np.ndarray, tuple[float, float, bool] | None]:
    """(the statistics `names` of window W (m x d, standardised by the reference), the RBF test (MMD^2, p-value,
    exact?) with `rbf`, else None)."""
    n, m = rc.n, len(W)
    d_wr, d_ww = sqdist(W, rc.ref), sqdist(W, W)
    np.fill_diagonal(d_ww, 0.0)
    want, out = set(names), {}
    if want & ({f"mmd2_s{s:g}" for s in SCALES} | {"mmd2_maxstd"}):
        std = []
        for s, g, krr, sd in zip(SCALES, rc.gammas, rc.k_rr_mean, rc.sd0):
            if "mmd2_maxstd" in want or f"mmd2_s{s:g}" in want:
                v = _mmd2(np.exp(-g * d_ww), np.exp(-g * d_wr), krr)
                out[f"mmd2_s{s:g}"] = v
                std.append(v / sd)
        out["mmd2_maxstd"] = max(std)
    if "energy" in want:
        out["energy"] = 2.0 * np.sqrt(d_wr).mean() - np.sqrt(d_ww).sum() / (m * (m - 1))  # less a constant
    if "mean_shift" in want:
        out["mean_shift"] = float((W.mean(0) ** 2).sum())
    if want & {"novel_top", "novel_hc", "novel_fisher"}:
        # per document: distance to its K_NOVEL-th nearest reference row, ranked among the reference rows'
        # leave-one-out distances (a conformal p-value)
        dk = np.sqrt(np.partition(d_wr, K_NOVEL - 1, axis=1)[:, K_NOVEL - 1])
        ge = n - np.searchsorted(rc.loo_knn, dk, side="left")  # reference rows at least as far
        pv = np.sort((1.0 + ge) / (n + 1.0))
        nl = -np.log(pv)
        out["novel_top"] = float(np.sort(nl)[-TOP:].mean())
        out["novel_fisher"] = float(nl.mean())
        i = np.arange(1, m // 2 + 1)
        pp = np.maximum(pv[: m // 2], 1.0 / m)
        out["novel_hc"] = float(np.max(np.sqrt(m) * (i / m - pp) / np.sqrt(pp * (1.0 - pp))))
    if any(k.startswith("knn2s") for k in want):
        # kNN two-sample: for each window row, how many of its k nearest pooled rows (itself left out) are
        # window rows
        pooled = np.concatenate([d_wr, d_ww + np.diag(np.full(m, np.inf))], axis=1)
        ks = [k for k in KS_GRAPH if f"knn2s_k{k}" in want or f"knn2s_k{k}_top" in want]
        kmax = max(ks)
        nn = np.argpartition(pooled, kmax, axis=1)[:, :kmax + 1]
        order = np.argsort(np.take_along_axis(pooled, nn, axis=1), axis=1)
        nn = np.take_along_axis(nn, order, axis=1)
        for k in ks:
            c = (nn[:, :k] >= n).sum(1)
            out[f"knn2s_k{k}"] = float(c.sum())
            out[f"knn2s_k{k}_top"] = float(np.sort(c)[-TOP:].sum())
    if any(k.startswith("kl") for k in want):
        # kNN divergence of the window from the reference (Wang, Kulkarni & Verdu 2009): per window row the log
        # ratio of its k-th nearest reference distance to its k-th nearest other-window distance (large where
        # the window is denser than the reference); the mean (the estimator, less constants) and a top-k mean
        ks = [k for k in KS_KL if {f"kl_k{k}", f"kl_k{k}_top", f"klavg_k{k}"} & want]
        kmax = max(ks)
        rho = np.partition(d_wr, kmax - 1, axis=1)[:, :kmax]
        rho.sort(axis=1)
        nu = np.partition(d_ww + np.diag(np.full(m, np.inf)), kmax - 1, axis=1)[:, :kmax]
        nu.sort(axis=1)
        for k in ks:
            lr = 0.5 * np.log(np.maximum(rho[:, k - 1], 1e-12) / np.maximum(nu[:, k - 1], 1e-12))
            out[f"kl_k{k}"] = float(lr.mean())
            out[f"kl_k{k}_top"] = float(np.sort(lr)[-TOP:].mean())
            lra = 0.5 * (np.log(np.maximum(rho[:, :k], 1e-12)) - np.log(np.maximum(nu[:, :k], 1e-12))).mean(1)
            out[f"klavg_k{k}"] = float(lra.mean())  # the log ratio averaged over neighbours 1..k
    out = {k: v for k, v in out.items() if k in want}
    if "dc_auc" in want:
        # domain classifier (ridge on x, x^2; 5 cross-fitted folds): its AUC
        F = expand(np.concatenate([rc.ref, W]), "quadratic")
        F = (F - F.mean(0)) / np.where(F.std(0) > 0, F.std(0), 1.0)
        lab = np.r_[np.zeros(n), np.ones(m)][None]
        out["dc_auc"] = float(_aucs(_ridge_scores(F, lab, rc.folds, 1e-2), lab)[0])
    return np.array([out[k] for k in names]), (rbf_test(rc, d_wr, d_ww) if rbf else None)


def _mmd2(k_ww: np.ndarray, k_wr: np.ndarray, k_rr_mean: float) -> float:
    m = len(k_ww)
    return float((k_ww.sum() - np.trace(k_ww)) / (m * (m - 1)) + k_rr_mean - 2.0 * k_wr.mean())


def rank_z(null: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Normal score of x's rank among the null values: Phi^-1(1 - (1 + #{null >= x}) / (len(null) + 1))."""
    s = np.sort(null)
    ge = len(s) - np.searchsorted(s, x, side="left")
    return -ndtri((1.0 + ge) / (len(s) + 1.0))


# ----------------------------------------------------------------------------- the residual column
# Windows of the projection's 16 columns plus the log residual (qlife.methods.projection.Residual: the off-subspace
# norm of the unit-normalised embedding), all standardised by the reference; the last column is the residual.
RES_WEIGHTS = (1, 2, 4)  # kl_k20 on [16 columns, w x the residual column]: how much the residual counts
RES_NAMES = (["res_mean", "res_top", "res_ks"] + [f"kl_k20_res_w{w:g}" for w in RES_WEIGHTS])


def residual_values(ref: np.ndarray, W: np.ndarray, names: list[str] | tuple[str, ...] = RES_NAMES) -> np.ndarray:
    """The residual statistics `names` of window W against the reference (both m x 17, n x 17, standardised by
    the reference, the log residual last); each a fixed function of the two:
      res_mean   the window's mean log residual (a shift of the whole window off the subspace)
      res_top    the mean of its TOP largest (a share of the window off it)
      res_ks     one-sided Kolmogorov-Smirnov: max_x F_ref(x) - F_window(x) (the window's residuals larger)
      kl_k20_res_w{w}   qlife.methods.window_stats.knn_divergence (k = 20) on the 16 columns and w x the residual
    """
    from qlife.methods.window_stats import knn_divergence

    r, x = ref[:, -1], W[:, -1]
    out = {}
    for name in names:
        if name == "res_mean":
            out[name] = float(x.mean())
        elif name == "res_top":
            out[name] = float(np.sort(x)[-TOP:].mean())
        elif name == "res_ks":
            grid = np.sort(np.concatenate([r, x]))
            f_ref = np.searchsorted(np.sort(r), grid, side="right") / len(r)
            f_win = np.searchsorted(np.sort(x), grid, side="right") / len(x)
            out[name] = float(np.max(f_ref - f_win))
        elif name.startswith("kl_k20_res_w"):
            w = np.r_[np.ones(ref.shape[1] - 1), float(name.removeprefix("kl_k20_res_w"))]
            out[name] = knn_divergence(ref * w, W * w, 20)
        else:
            raise ValueError(f"unknown residual statistic {name!r}; known: {RES_NAMES}")
    return np.array([out[k] for k in names])
