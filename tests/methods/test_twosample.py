"""Tuned MMD, MMD-FUSE and one-class SVM scores: the fused statistic is the reference code's, every kernel is
scored on the same permutations, p-values are uniform under no drift, and planted drift is found."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import kstest

from qlife.methods.drift import _mmd2_splits, median_bandwidth, permutations, rbf_kernel
from qlife.methods.twosample import (
    fuse_bandwidths,
    fuse_kernels,
    fuse_statistics,
    mmd_fuse_test,
    ocsvm_scores,
    power_criterion,
    rbf_family,
    tuned_mmd_test,
    tuning_split,
)


def reference_fuse_row(K: np.ndarray, x_first: np.ndarray) -> float:
    """A direct port of antoninschrab/mmdfuse for one split: X is the larger sample there (swapped if not)."""
    x_first = x_first.astype(bool)
    if x_first.sum() < (~x_first).sum():
        x_first = ~x_first
    m, n = int(x_first.sum()), int((~x_first).sum())
    v11 = np.where(x_first, 1.0, -1.0)
    v10 = np.where(x_first, 1.0, 0.0)
    v01 = np.where(x_first, 0.0, -1.0)
    K = K.copy()
    np.fill_diagonal(K, 0.0)
    val = (v10 @ K @ v10 * (n - m + 1) * (n - 1) / (m * (m - 1)) + v01 @ K @ v01 * (m - n + 1) / m
           + v11 @ K @ v11 * (n - 1) / m)
    return val / np.sqrt((K**2).sum()) * np.sqrt(n * (n - 1))


@pytest.mark.parametrize("n,m", [(12, 12), (20, 9), (7, 15)])
def test_fuse_statistic_is_the_reference_codes(n, m):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(n + m, 3))
    K = rbf_kernel(Z, Z, 0.3)
    splits = next(permutations(n + m, n, 5, seed=1))
    splits[0] = np.r_[np.ones(n), np.zeros(m)]
    ours = fuse_statistics(K, splits, n)
    ref = [reference_fuse_row(K, row) for row in splits]
    assert np.allclose(ours, ref, rtol=1e-10)


def test_equal_sizes_the_fuse_statistic_is_the_scaled_unbiased_mmd():
    rng = np.random.default_rng(1)
    n = 15
    Z = np.r_[rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 0.5]
    K = rbf_kernel(Z, Z, 0.5)
    split = np.r_[np.ones(n), np.zeros(n)][None]
    Kt = K - np.diag(np.diag(K))
    expected = n * (n - 1) * _mmd2_splits(K, split, n)[0] / np.sqrt((Kt**2).sum()) * np.sqrt(n * (n - 1))
    assert fuse_statistics(K, split, n)[0] == pytest.approx(expected, rel=1e-10)


def test_every_kernel_is_scored_on_the_same_permutations():
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)) + 0.3
    Z = np.r_[X, Y]
    grams = {"a": rbf_kernel(Z, Z, 0.1), "b": rbf_kernel(Z, Z, 2.0)}
    both = mmd_fuse_test(X, Y, kernels=(), extra=grams, n_permutations=300, seed=7, keep_permuted=True)
    for i, name in enumerate(["a", "b"]):
        alone = mmd_fuse_test(X, Y, kernels=(), extra={name: grams[name]}, n_permutations=300, seed=7,
                              keep_permuted=True)
        assert np.allclose(both.permuted[i], alone.permuted[0], rtol=0, atol=1e-10 * np.abs(alone.permuted).max())
        # and they are the splits of the single-kernel MMD test of the same seed (n = m: a fixed scaling)
        mmd = np.concatenate([_mmd2_splits(grams[name], Zs, 20) for Zs in permutations(40, 20, 300, 7)])
        ratio = both.permuted[i] / mmd
        assert np.allclose(ratio, ratio[0], rtol=1e-8)
    fused = logsumexp(both.permuted, axis=0, b=0.5)
    assert both.p_value == pytest.approx((1 + (fused >= both.statistic - 1e-12).sum()) / 301)


def test_fuse_kernel_collection_follows_the_paper():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(30, 4))
    grams = fuse_kernels(Z, ("gaussian", "laplace"), 10)
    assert len(grams) == 20 and all(np.allclose(np.diag(K), 1) for K in grams.values())
    d = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 10.0] * 10)
    bw = fuse_bandwidths(d, 5)
    assert bw[0] == pytest.approx(np.sort(np.where(d == 0, np.median(d), d))[3] / 2) and len(bw) == 5
    assert np.all(np.diff(bw) > 0)


def null_pvalues(test, reps: int = 200) -> np.ndarray:
    out = []
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        X, Y = rng.normal(size=(30, 3)), rng.normal(size=(24, 3))
        out.append(test(X, Y, r))
    return np.array(out)


@cache
def quantum_kernel(kind: str, b: float):
    from qlife.quantum.kernels import ProjectedQuantumKernel, QuantumFidelityKernel

    cls = QuantumFidelityKernel if kind == "fidelity" else ProjectedQuantumKernel
    return cls("statevector", 3, bandwidth=b, reps=1)  # compiled once, reused by every repetition


def quantum_family(kind: str):
    return lambda b: quantum_kernel(kind, b).gram


@pytest.mark.parametrize("name", ["rbf", "fuse", "tuned_rbf", "tuned_quantum_fidelity", "tuned_quantum_projected",
                                  "fuse_quantum"])
def test_p_values_are_uniform_under_no_drift(name):
    from qlife.methods.drift import rbf_mmd_test

    if name == "rbf":
        def test(X, Y, r):
            return rbf_mmd_test(X, Y, 99, seed=r).p_value
    elif name == "fuse":
        def test(X, Y, r):
            return mmd_fuse_test(X, Y, n_bandwidths=2, n_permutations=99, seed=r).p_value
    elif name == "fuse_quantum":
        def test(X, Y, r):
            Z = np.r_[X, Y]
            extra = {"q": quantum_family("fidelity")(0.5)(Z)}
            return mmd_fuse_test(X, Y, n_bandwidths=2, extra=extra, n_permutations=99, seed=r).p_value
    elif name == "tuned_rbf":
        def test(X, Y, r):
            sig = median_bandwidth(X, Y)
            return tuned_mmd_test(X, Y, rbf_family(sig), [0.25, 0.5, 1, 2, 4], 99, seed=r, split_seed=r).p_value
    else:
        def test(X, Y, r):
            fam = quantum_family(name.split("_")[-1])
            return tuned_mmd_test(X, Y, fam, [0.2, 0.5, 1.0], 99, seed=r, split_seed=r).p_value
    p = null_pvalues(test)
    assert kstest(p, "uniform").pvalue > 0.01
    assert abs((p < 0.05).mean() - 0.05) < 3 * np.sqrt(0.05 * 0.95 / len(p))


def test_ks_bonferroni_is_conservative_under_no_drift():
    """Bonferroni over features is not uniform (it is conservative): its false-alarm rate stays <= alpha."""
    from qlife.methods.drift import ks_tests

    p = null_pvalues(lambda X, Y, r: ks_tests(X, Y).bonferroni_p)
    assert (p < 0.05).mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / len(p))


def test_planted_drift_is_found_by_tuned_and_fused_tests():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(120, 4))
    Y = rng.normal(size=(80, 4))
    Y[:, :2] *= 2.0  # a variance change in two features: not a mean shift
    sig = median_bandwidth(X, Y)
    tuned = tuned_mmd_test(X, Y, rbf_family(sig), [0.25, 0.5, 1, 2], 500, seed=0)
    assert tuned.p_value < 0.05 and tuned.n_test == (60, 40) and tuned.n_tune == 40
    assert tuned.bandwidth == max(tuned.criterion, key=tuned.criterion.get)
    assert mmd_fuse_test(X, Y, n_permutations=500).p_value < 0.01


def test_power_criterion_matches_its_definition():
    rng = np.random.default_rng(5)
    n = 10
    Z = np.r_[rng.normal(size=(n, 2)), rng.normal(size=(n, 2)) + 1]
    K = rbf_kernel(Z, Z, 0.5)
    h = np.array([[K[i, j] + K[n + i, n + j] - K[i, n + j] - K[j, n + i] for j in range(n)] for i in range(n)])
    mmd2 = (h.sum() - np.trace(h)) / (n * (n - 1))
    var = 4 / n**3 * (h.sum(1) ** 2).sum() - 4 / n**4 * h.sum() ** 2
    j, m2, v = power_criterion(K, n)
    assert m2 == pytest.approx(mmd2) and v == pytest.approx(var) and j == pytest.approx(mmd2 / np.sqrt(var + 1e-8))


def test_tuning_split_is_disjoint_and_paired():
    s = tuning_split(101, 40, seed=3)
    assert len(s.tune_x) == len(s.tune_y) == 20 and len(s.test_y) == 20 and len(s.test_x) == 51
    assert not set(s.tune_x) & set(s.test_x) and not set(s.tune_y) & set(s.test_y)
    assert np.array_equal(s.test_x, tuning_split(101, 40, seed=3).test_x)
    with pytest.raises(ValueError, match="at least 8 rows"):
        tuning_split(7, 40)


def test_a_reference_smaller_than_the_window_is_tuned_and_tested():
    """38 reference rows against a 400-row window (a corpus shrunk by dedup): paired tuning halves of 19, the
    tuned test runs and finds a planted shift (it used to fail on (200, 200) + (19, 19) Gram blocks)."""
    s = tuning_split(38, 400, seed=0)
    assert len(s.tune_x) == len(s.tune_y) == 19 and len(s.test_x) == 19 and len(s.test_y) == 200
    rng = np.random.default_rng(0)
    res = tuned_mmd_test(rng.normal(size=(38, 3)), rng.normal(size=(400, 3)) + 1.0, rbf_family(2.0),
                         [0.5, 1.0], n_permutations=200)
    assert res.p_value < 0.05 and res.n_tune == 19


def test_one_class_svm_flags_planted_outliers():
    rng = np.random.default_rng(6)
    ref = rng.normal(size=(200, 3))
    live = np.r_[rng.normal(size=(40, 3)), rng.normal(size=(10, 3)) + 4.0]
    truth = np.r_[np.zeros(40), np.ones(10)]
    g = 1 / (2 * median_bandwidth(ref, ref) ** 2)
    res = ocsvm_scores(rbf_kernel(ref, ref, g), rbf_kernel(live, ref, g), nu=0.05, truth=truth)
    assert res.auc > 0.95 and res.flagged[40:].all()
    assert res.reference_rate == pytest.approx(0.05, abs=0.03)
    assert ocsvm_scores(rbf_kernel(ref, ref, g), rbf_kernel(live, ref, g), truth=np.zeros(50)).auc is None
    with pytest.raises(ValueError, match="K_live_ref"):
        ocsvm_scores(rbf_kernel(ref, ref, g), rbf_kernel(live, live, g))
    with pytest.raises(ValueError, match="nu"):
        ocsvm_scores(rbf_kernel(ref, ref, g), rbf_kernel(live, ref, g), nu=0)


def test_fuse_refuses_bad_input():
    rng = np.random.default_rng(7)
    X, Y = rng.normal(size=(10, 2)), rng.normal(size=(8, 2))
    with pytest.raises(ValueError, match="expected \\(18, 18\\)"):
        mmd_fuse_test(X, Y, extra={"q": np.eye(10)})
    with pytest.raises(ValueError, match="at least one kernel"):
        mmd_fuse_test(X, Y, kernels=())
    with pytest.raises(ValueError, match="gaussian or laplace"):
        mmd_fuse_test(X, Y, kernels=("cosine",))
