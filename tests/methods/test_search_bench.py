"""bench.search's problems and statistics: the contamination objective against a scalar transcription of
Contamination.m, the BQP optimum against enumeration, the paired tests and the issue's goal on planted runs."""

from __future__ import annotations

import itertools

import numpy as np

from bench.search import (
    bqp_instance,
    bqp_optimum,
    bqp_value,
    contamination_instance,
    contamination_value,
    goal,
    left_out,
    summarize,
)


def test_contamination_matches_the_reference_recursion():
    z0, lam, gam = contamination_instance(3, d=6, draws=40)
    rng = np.random.default_rng(0)
    for x in rng.integers(0, 2, (5, 6)):
        within, z = [], list(z0)
        for i in range(6):  # Contamination.m, one stage at a time, one draw at a time
            z = [lam[i, k] * (1 - x[i]) * (1 - z[k]) + (1 - gam[i, k] * x[i]) * z[k] for k in range(40)]
            within.append(np.mean(np.array(z) <= 0.1) - 0.95)
        expected = -(x.sum() - sum(within) + 0.01 * x.sum())
        np.testing.assert_allclose(contamination_value((z0, lam, gam), x)[0], expected, rtol=1e-12)


def test_bqp_optimum_is_the_best_of_every_point():
    q, lam = bqp_instance(2, d=8)
    grid = np.array(list(itertools.product([0, 1], repeat=8)))
    np.testing.assert_allclose(bqp_optimum(q, lam), bqp_value(q, lam, grid).max(), rtol=1e-9)
    q10, _ = bqp_instance(0)
    assert q10.shape == (10, 10) and bqp_instance(0, d=20)[0].shape == (20, 20)


def test_qaoa_is_left_out_only_above_its_qubit_limit():
    assert left_out("bqp", "fmqa_qaoa") is None and left_out("sst2", "fmqa_qaoa") is None
    assert "20 qubits" in left_out("bqp20", "fmqa_qaoa")
    assert "24-variable" in left_out("contamination", "fmqa_exact") and left_out("bqp20", "fmqa_exact") is None


def test_paired_statistics_and_the_goal_follow_the_runs():
    """FMQA beats BOCS on 12 of 12 seeds at budget 2 and ties at budget 1: ahead at 2, a tie at 1."""
    runs = []
    for seed in range(12):
        runs.append({"problem": "bqp20", "searcher": "fmqa_sa", "seed": seed, "scores": [1.0, 3.0 + seed / 100],
                     "optimum": 4.0, "overhead_s": [0.1, 0.1], "violations": 0, "neighbour_proposals": 0,
                     "random_proposals": 0})
        runs.append({"problem": "bqp20", "searcher": "bocs", "seed": seed, "scores": [1.0, 2.0],
                     "optimum": 4.0, "overhead_s": [0.2, 0.2], "violations": None, "neighbour_proposals": 0,
                     "random_proposals": 0})
    rows, tests = summarize(runs, 1.0, budgets=(1, 2))
    at2 = next(t for t in tests if t["budget"] == 2)
    assert (at2["fmqa_wins"], at2["peer_wins"], at2["pairs"]) == (12, 0, 12) and at2["wilcoxon_p"] < 0.01
    row = next(r for r in rows if r["searcher"] == "bocs" and r["budget"] == 2)
    assert row["mean_regret"] == 2.0 and row["sd_regret"] == 0.0
    assert goal(rows, tests, budget=2)["solvers"]["fmqa_sa"]["verdict"] == "ahead"
    tie = goal(rows, tests, budget=1)["solvers"]["fmqa_sa"]
    assert tie["verdict"] == "tie" and tie["met"]
