"""bench/monitoring.py's residual: its window statistics, and the two ways several statistics share a detector."""

from __future__ import annotations

import numpy as np
import pytest


def test_residual_values_read_the_last_column_and_the_knn_divergence_its_weighted_copy():
    from bench.monitoring_stats import RES_NAMES, TOP, residual_values
    from qlife.methods.window_stats import knn_divergence

    rng = np.random.default_rng(0)
    ref, W = rng.standard_normal((300, 5)), rng.standard_normal((100, 5))
    v = dict(zip(RES_NAMES, residual_values(ref, W)))
    x = W[:, -1]
    assert v["res_mean"] == pytest.approx(x.mean()) and v["res_top"] == pytest.approx(np.sort(x)[-TOP:].mean())
    grid = np.sort(np.r_[ref[:, -1], x])
    ks = max((ref[:, -1] <= g).mean() - (x <= g).mean() for g in grid)
    assert v["res_ks"] == pytest.approx(ks)
    w2 = np.r_[np.ones(4), 2.0]
    assert v["kl_k20_res_w2"] == pytest.approx(knn_divergence(ref * w2, W * w2, 20))
    lifted = W.copy()
    lifted[:10, -1] += 4.0  # a tenth of the window off the subspace
    up = dict(zip(RES_NAMES, residual_values(ref, lifted)))
    assert up["res_top"] > v["res_top"] + 1.0 and up["res_ks"] >= v["res_ks"]
    with pytest.raises(ValueError, match="unknown residual statistic"):
        residual_values(ref, W, ["res_max"])


def test_several_statistics_share_a_detector_in_one_p_value_or_split_the_rate():
    from bench.monitoring import detector

    rng = np.random.default_rng(1)
    values = rng.standard_normal((50, 200, 2))
    values[:, 150:, 1] += 3.0  # the second statistic moves from window 150
    for combine in ("bag", "any"):
        al = detector({"sim_streams": 500}, values, seed=0, combine=combine)
        assert al.shape == (50, 200)
        assert al[:, :150].any(1).mean() <= 0.2  # false alarms: at most the rate (0.1) and its noise
        assert al[:, 150:160].any(1).mean() > 0.9, combine
    one = detector({"sim_streams": 500}, values[..., :1], seed=0)  # one column: the plain detector
    np.testing.assert_array_equal(one, detector({"sim_streams": 500}, values[..., 0], seed=0))
