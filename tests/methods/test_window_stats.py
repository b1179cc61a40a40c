"""The per-window drift statistic for the sequential alarm (qlife.methods.window_stats): the estimator's
definition, a fixed function of (reference, window), its direction under a clustered drift that a median-bandwidth
MMD^2 barely sees, and its inputs refused with a sentence. Small seeded Gaussians, well under a second."""

from __future__ import annotations

import numpy as np
import pytest

from qlife.methods import sequential as sq
from qlife.methods.drift import median_bandwidth, mmd2_from_kernel, rbf_kernel
from qlife.methods.window_stats import knn_divergence, knn_log_ratios

D = 8


def sample(rng: np.random.Generator, n: int, drift: float = 0.0, where: float = 0.0) -> np.ndarray:
    """n rows of N(0, I_D); a share `drift` replaced by a tight cluster at `where` on the first axis (a new topic:
    inside the reference's support, crowded together)."""
    x = rng.standard_normal((n, D))
    k = int(round(drift * n))
    if k:
        x[:k] = 0.15 * rng.standard_normal((k, D))
        x[:k, 0] += where
    return x


def brute(reference: np.ndarray, window: np.ndarray, k: int) -> float:
    """The Wang-Kulkarni-Verdu estimator written out row by row."""
    n, (m, d) = len(reference), window.shape
    total = 0.0
    for i, y in enumerate(window):
        rho = np.sort(np.linalg.norm(reference - y, axis=1))[k - 1]
        nu = np.sort(np.linalg.norm(np.delete(window, i, axis=0) - y, axis=1))[k - 1]
        total += np.log(rho / nu)
    return d * total / m + np.log(n / (m - 1))


def test_matches_the_estimator_written_out():
    rng = np.random.default_rng(0)
    ref, win = sample(rng, 120), sample(rng, 40, 0.2)
    for k in (1, 5, 20):
        assert knn_divergence(ref, win, k) == pytest.approx(brute(ref, win, k), rel=1e-9, abs=1e-9)
    lr = knn_log_ratios(ref, win, 5)
    assert lr.shape == (40,)
    assert knn_divergence(ref, win, 5) == pytest.approx(D * lr.mean() + np.log(120 / 39))


def test_a_fixed_function_of_reference_and_window():
    """The same rows give the same number, whatever their order (ranks over windows need a fixed function)."""
    rng = np.random.default_rng(1)
    ref, win = sample(rng, 150), sample(rng, 50, 0.1)
    v = knn_divergence(ref, win)
    assert knn_divergence(ref[rng.permutation(150)], win[rng.permutation(50)]) == pytest.approx(v, rel=1e-12)
    assert knn_divergence(ref.copy(), win.copy()) == v


def test_clustered_drift_raises_it_where_median_bandwidth_mmd_barely_moves():
    """10% of the window crowded near the reference's centre: the kNN divergence moves several null standard
    deviations; the RBF MMD^2 at the median-heuristic bandwidth (stage 7's statistic) far less. With k below the
    cluster's size, the drifted rows rank first by their log ratios."""
    rng = np.random.default_rng(2)
    ref = sample(rng, 300)

    def stats(drift: float) -> tuple[float, float]:
        w = sample(rng, 100, drift)
        gamma = 1.0 / (2.0 * median_bandwidth(ref, w) ** 2)
        z = np.concatenate([ref, w])
        return knn_divergence(ref, w), mmd2_from_kernel(rbf_kernel(z, z, gamma), len(ref))

    null = np.array([stats(0.0) for _ in range(40)])
    drifted = np.array([stats(0.1) for _ in range(10)])
    shift = (drifted.mean(0) - null.mean(0)) / null.std(0, ddof=1)
    assert shift[0] > 4.0 and shift[0] > 2.0 * shift[1], shift
    w = sample(rng, 100, 0.1)
    top = np.argsort(-knn_log_ratios(ref, w, 5))[:10]
    assert (top < 10).mean() >= 0.8  # rows 0..9 are the drifted ones


def test_repeated_rows_stay_finite():
    rng = np.random.default_rng(3)
    ref = sample(rng, 60)
    win = np.repeat(sample(rng, 2), 15, axis=0)  # 30 rows, two documents repeated
    assert np.isfinite(knn_divergence(ref, win, 5))


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k must be"), (dict(k=2.5), "k must be"), (dict(k=True), "k must be"),
    (dict(k=30), "needs at least"), (dict(window=np.zeros((10, D + 1))), "same columns"),
    (dict(window=np.full((10, D), np.nan)), "finite"),
])
def test_refuses_bad_inputs_with_a_sentence(bad, match):
    rng = np.random.default_rng(4)
    args = {"reference": sample(rng, 40), "window": sample(rng, 10), "k": 3, **bad}
    with pytest.raises(ValueError, match=match):
        knn_divergence(**args)


def test_feeds_the_sequential_detector():
    """The stage's wiring: the window's statistic into sequential.update (conformal, larger = drift) with the
    default settings; a clustered drift after 60 clean windows raises the alarm within a few windows."""
    rng = np.random.default_rng(5)
    ref = sample(rng, 300)
    state = sq.init_state({"sim_streams": 500})
    for t in range(60):
        state, dec = sq.update(state, knn_divergence(ref, sample(rng, 100)), f"w{t}")
        assert not dec["alarm"]
    for t in range(60, 72):
        state, dec = sq.update(state, knn_divergence(ref, sample(rng, 100, 0.2)), f"w{t}")
        if dec["alarm"]:
            break
    assert dec["alarm"] and t - 60 + 1 <= 6, t


def test_residual_top_is_the_mean_of_the_largest_values_and_refuses_too_few():
    from qlife.methods.window_stats import residual_top

    rng = np.random.default_rng(5)
    r = rng.normal(size=200)
    assert residual_top(r, 20) == pytest.approx(np.sort(r)[-20:].mean())
    assert residual_top(r[::-1], 20) == residual_top(r, 20)  # order-free
    lifted = r.copy()
    lifted[:20] += 3.0  # a tenth of the window off the subspace
    assert residual_top(lifted, 20) > residual_top(r, 20) + 1.0
    for bad in (0, 201, 2.5, True):
        with pytest.raises(ValueError):
            residual_top(r, bad)
    with pytest.raises(ValueError, match="finite"):
        residual_top(np.r_[r, np.nan], 5)
