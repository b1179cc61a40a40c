"""bench/calibration.py's arithmetic: the exact binomial interval, the range a test at alpha gives, the draws' row
sets (disjoint; the two regimes' fit sets differ only in the reference) and the per-test summary."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from bench.calibration import REGIMES, binomial_range, clopper_pearson, fit_set, split_rows, summarise


@pytest.mark.parametrize("k,n", [(0, 200), (1, 200), (10, 200), (17, 200), (200, 200), (3, 7)])
def test_clopper_pearson_is_scipys_exact_interval(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_alpha_inside_the_interval_exactly_when_the_count_is_in_the_binomial_range_at_200_draws():
    assert binomial_range(200, 0.05) == (4, 16)
    inside = [k for k in range(201) if clopper_pearson(k, 200)[0] <= 0.05 <= clopper_pearson(k, 200)[1]]
    assert inside == list(range(4, 17))  # 4 to 16 false alarms in 200 draws: both rules say "calibrated"


def test_a_draw_has_disjoint_rows_and_the_regimes_differ_only_by_the_reference():
    rows = split_rows(5000, 200, 600, 2000, [0, 1, 2])
    sizes = {k: len(v) for k, v in rows.items()}
    assert sizes == {"window": 200, "reference": 600, "other": 1400, "extra": 600}
    every = np.concatenate(list(rows.values()))
    assert len(np.unique(every)) == len(every)
    fitted, held = set(fit_set(rows, "fitted")), set(fit_set(rows, "held_out"))
    assert len(fitted) == len(held) == 2000
    assert set(rows["reference"]) <= fitted and not set(rows["reference"]) & held
    assert not set(rows["window"]) & (fitted | held)
    assert np.array_equal(split_rows(5000, 200, 600, 2000, [0, 1, 2])["window"], rows["window"])
    with pytest.raises(ValueError, match="distinct rows"):
        split_rows(2500, 200, 600, 2000, [0])


def test_summary_counts_rejections_below_alpha_per_regime_size_and_test():
    p = np.full((200, len(REGIMES), 1, 2), 0.5)
    p[:10, 0, 0, 0] = 0.01  # fitted, test a: 10 / 200
    p[:40, 1, 0, 1] = 0.049  # held_out, test b: 40 / 200
    rows = {(r["regime"], r["test"]): r for r in summarise(p, ["a", "b"], [600], 0.05)}
    assert rows["fitted", "a"]["rejections"] == 10 and rows["fitted", "a"]["alpha_in_ci"]
    assert rows["held_out", "b"]["rate"] == 0.2 and not rows["held_out", "b"]["alpha_in_ci"]
    assert rows["fitted", "b"]["rejections"] == 0 and not rows["fitted", "b"]["alpha_in_ci"]
    assert rows["fitted", "a"]["rate_at_0.01"] == 0.0 and rows["fitted", "a"]["rate_at_0.1"] == 0.05
