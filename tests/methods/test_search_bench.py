"""bench.search's problems and statistics: the contamination objective against a scalar transcription of
Contamination.m, the BQP optimum against enumeration, the paired tests and the issue's goal on planted runs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

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


def _planted(seeds: int, fmqa_better: bool) -> list[dict]:
    runs = []
    for seed in range(seeds):
        hi = 3.0 + seed / 100
        for name, best in (("fmqa_sa", hi if fmqa_better else 2.0), ("bocs", 2.0 if fmqa_better else hi)):
            runs.append({"problem": "bqp20", "searcher": name, "seed": seed, "scores": [1.0, best], "optimum": 4.0,
                         "overhead_s": [0.1, 0.1], "violations": 0, "neighbour_proposals": 0, "random_proposals": 0})
    return runs


def test_every_test_carries_its_holm_p_over_the_runs_family_and_the_word_follows_it():
    """12 of 12 wins is p ~ 0.0005 raw; over this run's two tests (budgets 1 and 2) Holm doubles the smallest."""
    from bench.search import word

    _, tests = summarize(_planted(12, True), 1.0, budgets=(1, 2))
    at1, at2 = sorted(tests, key=lambda t: t["budget"])
    assert at2["holm_p"] == pytest.approx(min(1.0, 2 * at2["wilcoxon_p"])) and at1["holm_p"] == 1.0
    assert word(at2) == "ahead" and word(at1) == "tie"
    # a raw p just under 0.05 in a family of 144 is a tie by Holm, and the word says so
    edge = {**at2, "wilcoxon_p": 0.03, "holm_p": 1.0}
    assert word(edge, "wilcoxon_p") == "ahead" and word(edge) == "tie"


def test_replication_sets_each_common_test_beside_the_other_runs_and_names_the_disagreements(tmp_path):
    """Two runs of the same grid: one where FMQA wins every seed, one where BOCS does; the words differ at budget 2
    and agree (tie) at budget 1, and another run's JSON without holm_p gets it computed over its own family."""
    from bench.search import load_other, replication

    _, ours = summarize(_planted(12, True), 1.0, budgets=(1, 2))
    _, theirs = summarize(_planted(12, False), 1.0, budgets=(1, 2))
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"created": "then", "tests": [{k: v for k, v in t.items() if k != "holm_p"}
                                                             for t in theirs]}))
    rep = replication(ours, load_other(str(path)), str(path))
    assert rep["common_tests"] == 2 and rep["family_sizes"] == [2, 2]
    assert rep["raw_agree"] == 1 and rep["holm_agree"] == 1 and rep["holm_not_tie_in_both"] == []
    assert rep["holm_differ"] == ["bqp20 fmqa_sa vs bocs @2: ahead here, behind there"]
    at2 = next(r for r in rep["tests"] if r["budget"] == 2)
    assert at2["holm_p"][1] == pytest.approx(min(1.0, 2 * at2["p"][1]))
    with pytest.raises(SystemExit, match="neither a file nor a git object"):
        load_other(str(tmp_path / "missing.json"))
