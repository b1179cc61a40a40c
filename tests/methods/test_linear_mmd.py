"""Linear-time MMD tests: the RFF statistic converges to the exact Gaussian V-statistic, every null rejects at
alpha without drift and finds a planted mean shift, and a 20,000-document window runs without an n x n matrix."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from qlife.methods.drift import median_bandwidth, mmd2_from_kernel, rbf_kernel
from qlife.methods.linear_mmd import (
    block_mmd_test,
    rff_features,
    rff_frequencies,
    rff_mmd2,
    rff_mmd_test,
)

TESTS = {
    "rff_permutation": lambda X, Y, s: rff_mmd_test(X, Y, n_frequencies=32, n_permutations=100, seed=s),
    "rff_asymptotic": lambda X, Y, s: rff_mmd_test(X, Y, n_frequencies=32, null="asymptotic", seed=s,
                                                   null_draws=2000),
    "block_linear": lambda X, Y, s: block_mmd_test(X, Y, seed=s),
    "block_10": lambda X, Y, s: block_mmd_test(X, Y, block_size=10, seed=s),
}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1):  # a shared 2-core box: BLAS threads oversubscribe it
        yield


def gauss(n: int, d: int = 4, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def v_statistic(X: np.ndarray, Y: np.ndarray, sigma: float) -> float:
    """The exact quadratic-time biased MMD^2 of the Gaussian kernel."""
    g = 1.0 / (2.0 * sigma**2)
    return float(rbf_kernel(X, X, g).mean() + rbf_kernel(Y, Y, g).mean() - 2.0 * rbf_kernel(X, Y, g).mean())


def test_random_features_approximate_the_gaussian_kernel() -> None:
    A, B = gauss(20, seed=1), gauss(20, seed=2)
    sigma = 1.7
    W = rff_frequencies(4, 8192, sigma, seed=0)
    K = rff_features(A, W) @ rff_features(B, W).T
    assert np.abs(K - rbf_kernel(A, B, 1.0 / (2.0 * sigma**2))).max() < 0.05
    np.testing.assert_allclose((rff_features(A, W) ** 2).sum(1), 1.0)  # phi(x).phi(x) = cos^2 + sin^2 = 1


def test_rff_mmd2_converges_to_the_exact_v_statistic_as_d_grows() -> None:
    X, Y = gauss(200, seed=3), gauss(150, shift=0.5, seed=4)
    sigma = median_bandwidth(X, Y)
    exact = v_statistic(X, Y, sigma)
    err = {D: np.mean([abs(rff_mmd2(X, Y, sigma, D, feature_seed=s) - exact) for s in range(5)]) / exact
           for D in (16, 256, 4096)}
    # measured: 0.20, 0.024, 0.011 (error ~ 1 / sqrt(D))
    assert err[16] > err[256] > err[4096]
    assert err[4096] < 0.03
    # the test's statistic is the same estimate (float32 features)
    res = rff_mmd_test(X, Y, n_frequencies=256, feature_seed=1, bandwidth=sigma)
    assert res.mmd2 == pytest.approx(rff_mmd2(X, Y, sigma, 256, feature_seed=1), rel=1e-4)


@pytest.mark.parametrize("name", list(TESTS))
def test_false_alarm_rate_over_100_in_distribution_draws(name: str) -> None:
    test, rejections = TESTS[name], 0
    for s in range(100):
        rng = np.random.default_rng([41, s])
        rejections += test(rng.normal(size=(100, 4)), rng.normal(size=(60, 4)), s).p_value < 0.05
    # 95% binomial interval of 100 draws at 0.05: [0.016, 0.11]; measured 0.02-0.05
    assert rejections / 100 <= 0.10


@pytest.mark.parametrize("name", list(TESTS))
def test_planted_mean_shift_is_detected(name: str) -> None:
    test = TESTS[name]
    rejections = sum(test(gauss(400, seed=100 + s), gauss(200, shift=0.5, seed=200 + s), s).p_value < 0.05
                     for s in range(10))
    assert rejections >= 8


def test_asymptotic_and_permutation_p_values_agree() -> None:
    """The weighted chi-square null against the exact permutation null on the same statistic and features."""
    gaps = []
    for s in range(10):
        X, Y = gauss(300, seed=300 + s), gauss(300, shift=0.15 * (s % 2), seed=400 + s)
        perm = rff_mmd_test(X, Y, n_frequencies=32, n_permutations=500, seed=s).p_value
        asym = rff_mmd_test(X, Y, n_frequencies=32, null="asymptotic", seed=s).p_value
        gaps.append(abs(perm - asym))
    assert np.mean(gaps) < 0.03 and max(gaps) < 0.08


def test_block_statistic_is_the_mean_unbiased_mmd2_of_its_blocks() -> None:
    X, Y = gauss(10, seed=5), gauss(11, shift=0.3, seed=6)
    sigma = 1.3
    res = block_mmd_test(X, Y, block_size=5, bandwidth=sigma, seed=7)
    rng = np.random.default_rng(7)  # the test's shuffles: X, then Y; 2 blocks of 5 rows (Y's 11th row dropped)
    Xb, Yb = X[rng.permutation(10)].reshape(2, 5, 4), Y[rng.permutation(11)[:10]].reshape(2, 5, 4)
    g = 1.0 / (2.0 * sigma**2)
    per_block = [mmd2_from_kernel(rbf_kernel(np.r_[a, b], np.r_[a, b], g), 5) for a, b in zip(Xb, Yb)]
    assert res.mmd2 == pytest.approx(np.mean(per_block), rel=1e-10)
    assert res.n_blocks == 2 and res.block_size == 5


def test_a_20000_document_window_needs_no_n_by_n_matrix() -> None:
    X, Y = gauss(20_000, d=16, seed=8), gauss(20_000, d=16, seed=9)
    tracemalloc.start()
    try:
        rff = rff_mmd_test(X, Y, n_permutations=50)
        block = block_mmd_test(X, Y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20  # the pooled Gram matrix alone would take 40,000^2 x 8 B = 12 GiB
    assert 0 < rff.p_value <= 1 and 0 < block.p_value <= 1


def test_seeded_and_json_safe() -> None:
    X, Y = gauss(120, seed=10), gauss(90, shift=0.2, seed=11)
    for make in (lambda: rff_mmd_test(X, Y, n_frequencies=32, n_permutations=99, seed=4),
                 lambda: rff_mmd_test(X, Y, n_frequencies=32, null="asymptotic", seed=4),
                 lambda: block_mmd_test(X, Y, seed=4)):
        a, b = make(), make()
        assert a == b and a.p_value >= a.p_value_floor
        d = json.loads(json.dumps(a.to_dict()))
        assert d["n_ref"] == 120 and d["n_live"] == 90 and d["bandwidth"] > 0
    assert rff_mmd_test(X, Y, n_permutations=99).p_value_floor == pytest.approx(0.01)


@pytest.mark.parametrize("call,match", [
    (lambda: rff_mmd_test(np.zeros((5, 3)), np.zeros((5, 2))), "same number of columns"),
    (lambda: rff_mmd_test(np.full((5, 2), np.inf), np.zeros((5, 2))), "NaN or infinite"),
    (lambda: rff_mmd_test(gauss(5), gauss(5), null="bootstrap"), "null 'bootstrap'"),
    (lambda: rff_mmd_test(gauss(5), gauss(5), n_frequencies=0), "n_frequencies"),
    (lambda: rff_mmd_test(gauss(5), gauss(5), n_permutations=0), "n_permutations"),
    (lambda: rff_mmd_test(gauss(5), gauss(5), null="asymptotic", null_draws=0), "null_draws"),
    (lambda: rff_mmd_test(gauss(5), gauss(5), bandwidth=-1.0), "bandwidth must be > 0"),
    (lambda: block_mmd_test(gauss(5), gauss(5), block_size=1), "block_size must be >= 2"),
    (lambda: block_mmd_test(gauss(5), gauss(3)), "at least 2 blocks"),
])
def test_bad_input_raises_with_a_sentence(call, match) -> None:
    with pytest.raises(ValueError, match=match):
        call()
