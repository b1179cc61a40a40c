"""Drift tests: MMD permutation test and per-feature KS on seeded synthetic samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlife.methods.drift import (
    DriftReport,
    detect_drift,
    kernel_mmd_test,
    ks_tests,
    median_bandwidth,
    mmd2_from_kernel,
    mmd_permutation_test,
    rbf_kernel,
    rbf_mmd_test,
    reference_subsample,
)


def gauss(n: int, d: int = 4, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def mixture(n: int, w: float, seed: int) -> np.ndarray:
    """Two well separated clusters with weight ``w`` on the first: a topic-mix change, not a mean shift."""
    rng = np.random.default_rng(seed)
    first = rng.random(n) < w
    centers = np.where(first[:, None], -2.0, 2.0)
    return centers + rng.normal(size=(n, 3))


def naive_mmd2(K: np.ndarray, n: int) -> float:
    kxx, kyy, kxy = K[:n, :n], K[n:, n:], K[:n, n:]
    m = len(K) - n
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def test_rbf_kernel_and_bandwidth() -> None:
    A, B = gauss(5, seed=1), gauss(7, seed=2)
    K = rbf_kernel(A, B, gamma=0.3)
    brute = np.exp(-0.3 * ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(K, brute, rtol=1e-12)
    np.testing.assert_allclose(np.diag(rbf_kernel(A, A, 0.3)), 1.0)
    assert median_bandwidth(A, B) > 0
    assert median_bandwidth(np.ones((3, 2)), np.ones((3, 2))) == 1.0  # degenerate sample: harmless default


def test_mmd2_matches_naive_and_is_near_zero_for_same_distribution() -> None:
    X, Y = gauss(300, seed=1), gauss(200, seed=2)
    Z = np.concatenate([X, Y])
    K = rbf_kernel(Z, Z, gamma=1.0 / (2 * median_bandwidth(X, Y) ** 2))
    assert mmd2_from_kernel(K, 300) == pytest.approx(naive_mmd2(K, 300), abs=1e-12)
    assert abs(mmd2_from_kernel(K, 300)) < 5e-3
    Ys = gauss(200, shift=1.0, seed=2)
    Zs = np.concatenate([X, Ys])
    assert mmd2_from_kernel(rbf_kernel(Zs, Zs, 0.1), 300) > 0.05


def test_mean_shift_is_detected() -> None:
    res = rbf_mmd_test(gauss(300, seed=1), gauss(200, shift=0.5, seed=2), n_permutations=300)
    assert res.p_value < 0.05 and res.mmd2 > 0
    assert res.p_value == pytest.approx(1 / 301)  # no permutation beat the observed split
    assert res.gamma is not None and res.gamma > 0 and res.n_permutations == 300


def test_mixture_change_is_detected() -> None:
    res = rbf_mmd_test(mixture(400, 0.5, seed=1), mixture(200, 0.8, seed=2), n_permutations=300)
    assert res.p_value < 0.05


def test_same_distribution_is_not_flagged() -> None:
    res = rbf_mmd_test(gauss(400, seed=3), gauss(200, seed=4), n_permutations=300)
    assert 0.05 < res.p_value <= 1.0
    report = detect_drift(mixture(800, 0.5, seed=5), mixture(200, 0.5, seed=6), n_permutations=300)
    assert not report.alarm and not report.ks_alarm


def test_permutation_p_value_range_and_determinism() -> None:
    X, Y = gauss(30, seed=1), gauss(30, seed=2)
    Z = np.concatenate([X, Y])
    K = rbf_kernel(Z, Z, 0.5)
    a = mmd_permutation_test(K, 30, n_permutations=200, seed=7)
    b = mmd_permutation_test(K, 30, n_permutations=200, seed=7)
    assert a == b
    assert 1 / 201 <= a.p_value <= 1.0
    # A constant kernel makes every split tie with the observed one: p is exactly 1.
    assert mmd_permutation_test(np.ones((20, 20)), 10, n_permutations=50).p_value == 1.0


def test_permutation_null_is_calibrated() -> None:
    # Under the null, p-values are roughly uniform: about alpha of them fall below alpha.
    ps = [
        rbf_mmd_test(gauss(40, seed=s), gauss(40, seed=100 + s), n_permutations=99).p_value for s in range(60)
    ]
    assert 0.0 <= np.mean(np.array(ps) < 0.1) <= 0.25
    assert 0.35 < np.mean(ps) < 0.65


def test_injected_kernel_is_used() -> None:
    X, Y = gauss(100, seed=1), gauss(80, shift=0.7, seed=2)
    linear = kernel_mmd_test(X, Y, kernel=lambda A, B: A @ B.T, n_permutations=200)
    assert linear.p_value < 0.05 and linear.gamma is None
    report = detect_drift(X, Y, kernel=lambda A, B: A @ B.T, n_permutations=200)
    assert report.mmd == linear and report.to_dict()["gamma"] is None


def test_ks_catches_a_single_shifted_feature() -> None:
    X = gauss(500, d=8, seed=1)
    Y = gauss(300, d=8, seed=2)
    Y[:, 5] += 0.5
    res = ks_tests(X, Y)
    assert res.statistics.shape == res.p_values.shape == (8,)
    assert int(np.argmin(res.p_values)) == 5 and res.p_values[5] < 1e-4
    assert res.min_p == res.p_values[5]
    assert res.bonferroni_p == pytest.approx(min(1.0, 8 * res.min_p))
    assert np.all(np.delete(res.p_values, 5) > 1e-3)


def test_detect_drift_report_and_speed_sizes() -> None:
    X_ref, X_live = gauss(2000, d=16, seed=1), gauss(400, d=16, shift=0.15, seed=2)
    report = detect_drift(X_ref, X_live, n_permutations=500, seed=0)
    assert isinstance(report, DriftReport)
    # the whole reference by default: no subsample, so no seed moves it
    assert report.alarm and report.n_ref == 2000 and report.n_live == 400
    d = report.to_dict()
    json.dumps(d)  # JSON-safe
    assert d["alarm"] is True and d["mmd_p_value"] < 0.05 and len(d["ks_p_values"]) == 16
    # a clear drift reads the floor 1/(n_permutations+1): the report says so
    assert d["mmd_p_value"] == d["p_value_floor"] == pytest.approx(1 / 501) and d["n_permutations"] == 500
    assert d["n_ref"] == d["n_ref_available"] == 2000
    assert d["bandwidth"] > 0 and d["gamma"] == pytest.approx(1 / (2 * d["bandwidth"] ** 2))
    assert detect_drift(X_ref, X_live, n_permutations=500, seed=0).to_dict() == d  # seeded: same report twice
    assert detect_drift(X_ref, X_live, n_permutations=50).mmd.n_permutations == 50
    sub = detect_drift(X_ref, X_live, max_ref=1000, n_permutations=50).to_dict()
    assert sub["n_ref"] == 1000 and sub["n_ref_available"] == 2000


def test_p_values_stable_across_permutation_seeds() -> None:
    # The reported failure: with a seed-drawn 1,000-row reference the same in-distribution window gave
    # p from 0.006 to 0.45 across seeds. Now the seed only draws permutations: Monte Carlo error alone.
    # A sample whose p sits near 0.5, where the Monte Carlo error sqrt(p(1-p)/2000) ~ 0.011 is largest.
    X_ref, X_live = gauss(1500, d=16, seed=100), gauss(300, d=16, seed=200)
    reports = [detect_drift(X_ref, X_live, n_permutations=2000, seed=s) for s in range(10)]
    ps = [r.mmd.p_value for r in reports]
    assert 0.3 < np.mean(ps) < 0.7 and max(ps) - min(ps) < 0.05, ps
    assert not any(r.alarm for r in reports)
    # the statistic, bandwidth and reference do not depend on the seed at all
    assert len({r.mmd.mmd2 for r in reports}) == 1 and len({r.mmd.bandwidth for r in reports}) == 1
    assert {r.n_ref for r in reports} == {1500}
    assert all(r.mmd.p_value_floor == 1 / 2001 for r in reports)


def test_reference_subsample_is_fixed_by_ref_seed_not_seed() -> None:
    X_ref, X_live = gauss(1200, d=4, seed=1), gauss(200, d=4, seed=2)
    a = detect_drift(X_ref, X_live, n_permutations=100, seed=0, max_ref=500, ref_seed=3)
    b = detect_drift(X_ref, X_live, n_permutations=100, seed=9, max_ref=500, ref_seed=3)
    c = detect_drift(X_ref, X_live, n_permutations=100, seed=0, max_ref=500, ref_seed=4)
    assert a.n_ref == b.n_ref == c.n_ref == 500
    assert a.mmd.mmd2 == b.mmd.mmd2 and a.mmd.bandwidth == b.mmd.bandwidth  # same rows, whatever the seed
    assert a.mmd.mmd2 != c.mmd.mmd2  # another ref_seed: another (fixed) subsample
    np.testing.assert_array_equal(reference_subsample(1200, 500, 3), reference_subsample(1200, 500, 3))
    np.testing.assert_array_equal(reference_subsample(1200, None, 3), np.arange(1200))
    np.testing.assert_array_equal(reference_subsample(300, 500, 3), np.arange(300))


def test_bandwidth_ignores_the_permutation_seed() -> None:
    X, Y = gauss(2500, seed=1), gauss(800, seed=2)  # pooled 3,300 rows: above the all-pairs limit
    sigmas = {rbf_mmd_test(X, Y, n_permutations=10, seed=s).bandwidth for s in range(3)}
    assert len(sigmas) == 1
    assert rbf_mmd_test(X[:300], Y[:300], n_permutations=10, gamma=0.5).bandwidth == pytest.approx(1.0)


def test_pooled_sample_too_large_for_the_kernel_is_refused(monkeypatch) -> None:
    from qlife.methods import drift

    monkeypatch.setattr(drift, "MAX_POOLED_ROWS", 500)
    with pytest.raises(ValueError, match="max_ref"):
        detect_drift(gauss(600), gauss(100), n_permutations=10)
    assert detect_drift(gauss(600), gauss(100), n_permutations=10, max_ref=300).n_ref == 300


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="columns"):
        detect_drift(gauss(10, d=3), gauss(10, d=4))
    with pytest.raises(ValueError, match="NaN"):
        ks_tests(np.full((5, 2), np.nan), gauss(5, d=2))
    with pytest.raises(ValueError, match="square"):
        mmd2_from_kernel(np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match="at least 2"):
        mmd_permutation_test(np.ones((5, 5)), 4)
