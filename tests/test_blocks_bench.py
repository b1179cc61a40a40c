"""bench/blocks.py's scoring of one model, seed and k against the truth: with a truth that is the QUBO's own
energy, the ground state is the best subset, Spearman is 1 and every answer's rank is where its loss puts it; with
a truth that reverses two subsets, the excited state that beats the ground state is found."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from bench.blocks import summarise, table
from qlife.methods.blocks import BlockCalibration

N, K = 5, 2


def calibration(seed: int = 0) -> BlockCalibration:
    rng = np.random.default_rng(seed)
    single = rng.uniform(0.1, 1.0, N)
    pair = single[:, None] + single[None, :] + np.triu(rng.normal(0, 0.2, (N, N)), 1)
    pair = np.triu(pair, 1) + np.triu(pair, 1).T
    np.fill_diagonal(pair, single)
    return BlockCalibration(2.0, {"loss": single, "kl": single / 2}, {"loss": pair, "kl": pair / 2},
                            rng.uniform(0, 1, N), 32, 32)


def truth_of(cal: BlockCalibration, swap: bool = False) -> dict:
    subsets = list(combinations(range(N), K))
    loss = np.array([cal.base_loss + cal.energy(s) for s in subsets])
    if swap:  # the second-lowest energy becomes the truly best subset
        order = np.argsort(loss)
        loss[order[1]] = loss[order[0]] - 0.01
    return {"subsets": subsets, "loss": loss, "accuracy": 1 - loss / 10, "wall_s": 0.0}


def test_a_truth_equal_to_the_energy_ranks_the_ground_state_first():
    from bench.blocks import study

    cal = calibration()
    res = study(truth_of(cal), cal, np.arange(N, dtype=float), N, K, seed=0)
    assert res["subsets"] == 10 and res["spearman_energy_loss"] == pytest.approx(1.0)
    gs = res["answers"]["ground_state"]
    assert gs["rank"] == 1 and gs["better_share"] == 0.0 and gs["energy_rank"] == 1
    assert res["answers"]["exact"]["removed"] == gs["removed"] and res["low_energy"]["ground_state_is_best"]
    # the baselines remove the k lowest of their scores; each answer's rank is its loss's place among all subsets
    assert res["answers"]["magnitude"]["removed"] == [0, 1]
    assert res["answers"]["influence"]["removed"] == sorted(np.argsort(cal.influence)[:K].tolist())
    assert res["answers"]["diagonal"]["removed"] == sorted(np.argsort(cal.single["loss"])[:K].tolist())
    for a in res["answers"].values():
        assert a["better_share"] == pytest.approx((a["rank"] - 1) / 10)
    assert res["goal"]["ground_in_best_5pct"]


def test_an_excited_state_that_beats_the_ground_state_is_found_and_summarised():
    from bench.blocks import study

    cal = calibration(1)
    res = study(truth_of(cal, swap=True), cal, np.ones(N), N, K, seed=1)
    low = res["low_energy"]
    assert not low["ground_state_is_best"] and low["best_by_loss"]["energy_rank"] == 2
    assert low["loss_gain_over_ground"] == pytest.approx(0.01)
    assert res["answers"]["ground_state"]["rank"] == 2 and res["best"]["energy_rank"] == 2
    summary = summarise({"toy": {str(K): {"1": res}}})
    s = summary[f"toy k={K}"]
    assert s["low_energy_beats_ground"] == 1 and s["in_best_5pct"]["ground_state"] == 0
    assert "toy k=2" in table(summary)
