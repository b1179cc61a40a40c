"""The searcher interface: seeded and reproducible, no configuration evaluated twice, the shared cache."""

from __future__ import annotations

import pytest

from qlife.methods.search_space import config_key, space_size
from qlife.methods.searchers import RandomSearcher, TPESearcher, make_searcher, run_search
from tests.methods.test_fmqa import SPACE, objective

SMALL = {"a": [1, 2, 3], "b": ["x", "y"]}


def keys(history: list[dict], space: dict) -> list[tuple]:
    return [config_key(space, {k: r[k] for k in space}) for r in history]


FAST = {"fmqa": {"epochs": 50}, "bocs": {"n_gibbs": 100, "sa_sweeps": 10},
        "gp": {"n_startup_trials": 4, "deterministic_objective": True}}  # quick settings per searcher


@pytest.mark.parametrize("name", ["random", "tpe", "fmqa", "gp", "bocs"])
def test_seeded_searchers_reproduce_and_seeds_differ(name):
    budget = 7 if name == "gp" else 12  # a GP ask costs ~0.3 s (1-2 s on the loaded shared cores)
    runs = [run_search([make_searcher(name, SPACE, seed, FAST.get(name, {}))], objective, budget, log=None)[0]
            for seed in (5, 5, 6)]
    assert keys(runs[0], SPACE) == keys(runs[1], SPACE)
    assert keys(runs[0], SPACE) != keys(runs[2], SPACE)


@pytest.mark.parametrize("name", ["random", "tpe", "fmqa", "gp", "bocs"])
def test_no_configuration_is_proposed_twice_and_the_space_runs_out(name):
    s = make_searcher(name, SMALL, 0, {"epochs": 20} if name == "fmqa" else {"n_startup_trials": 2}
                      if name in ("tpe", "gp") else FAST.get(name, {}))
    history, stats = run_search([s], lambda c: c["a"] + (c["b"] == "y"), budget=10, log=None)
    assert len(history) == space_size(SMALL) == 6  # stops when exhausted, never repeats
    assert len(set(keys(history, SMALL))) == 6


def test_gp_proposes_valid_configurations_of_a_mixed_space_from_its_model():
    """Ordinal and categorical choices; after the startup trials the proposals come from the GP (Optuna's
    GPSampler), every one a level of its choice; the same seed gives the same proposals."""
    from optuna.samplers import GPSampler

    runs = []
    for _ in range(2):
        s = make_searcher("gp", SPACE, 3, {"n_startup_trials": 4})
        assert isinstance(s.study.sampler, GPSampler)
        history, _ = run_search([s], objective, 7, log=None)
        assert all(r[k] in SPACE[k] for r in history for k in SPACE)
        assert s.resources()["random_fallbacks"] == 0  # no proposal fell back to random
        runs.append(keys(history, SPACE))
    assert runs[0] == runs[1] and len(set(runs[0])) == 7


def test_unknown_searcher_names_the_known_ones():
    with pytest.raises(ValueError, match="random, tpe, fmqa, gp, bocs"):
        make_searcher("smac", SPACE, 0)


def test_tpe_duplicates_are_told_not_retrained():
    s = TPESearcher(SMALL, seed=0, n_startup_trials=1)
    calls = []
    run_search([s], lambda c: calls.append(c) or float(c["a"]), budget=6, log=None)
    assert len(calls) == 6 and len({(c["a"], c["b"]) for c in calls}) == 6
    r = s.resources()
    assert r["duplicate_proposals"] > 0  # TPE re-proposed seen configurations: Optuna was told their scores
    assert len(s.study.trials) == 6 + r["duplicate_proposals"]


def test_shared_cache_trains_once_and_charges_each_searcher():
    calls = []

    def f(c):
        calls.append(config_key(SPACE, c))
        return objective(c)

    searchers = [RandomSearcher(SPACE, 0), RandomSearcher(SPACE, 0)]  # the same seed: the same proposals
    searchers[1].name = "random2"
    history, stats = run_search(searchers, f, 8, space=SPACE, log=None)
    assert len(history) == 16 and len(calls) == 8
    assert stats["random2"]["cached"] == 8 and stats["random"]["cached"] == 0
    assert all(r["cached"] for r in history if r["searcher"] == "random2")


def test_predictions_of_each_trained_configuration_are_kept_through_a_worker_process():
    """A ProxyScore's predictions survive pickling (a worker process, a Dask cluster) and run_search keeps them per
    configuration, trained once; searchers are told plain floats."""
    import pickle

    import numpy as np

    from qlife.methods.finetune import ProxyScore

    s = ProxyScore(0.25, [0, 1, 1])
    back = pickle.loads(pickle.dumps(s))
    assert back == 0.25 and type(back) is ProxyScore and back.predictions.tolist() == [0, 1, 1]
    searchers = [RandomSearcher(SMALL, 0), RandomSearcher(SMALL, 0)]
    searchers[1].name = "random2"
    kept: dict = {}
    history, _ = run_search(searchers, lambda c: ProxyScore(c["a"] / 10, np.full(3, c["a"])), 4, space=SMALL,
                            log=None, predictions=kept)
    assert set(kept) == set(keys(history, SMALL)) and len(kept) == 4
    assert all(kept[k].tolist() == [k[0] + 1] * 3 for k in kept)  # key: level indices; a = index + 1
    assert all(type(v) is float for v in searchers[0].told.values())


def test_told_twice_or_non_finite_is_an_error():
    s = RandomSearcher(SMALL, 0)
    c = s.ask(1)[0]
    s.tell(c, 1.0)
    with pytest.raises(ValueError, match="already told"):
        s.tell(c, 1.0)
    with pytest.raises(ValueError, match="not finite"):
        s.tell(s.ask(1)[0], float("nan"))


def test_bad_space_and_unknown_searcher():
    with pytest.raises(ValueError, match="empty"):
        RandomSearcher({"a": []})
    with pytest.raises(ValueError, match="repeats"):
        RandomSearcher({"a": [1, 1]})
    with pytest.raises(ValueError, match="unknown searcher"):
        make_searcher("grid", SMALL, 0)


def test_tpe_falls_back_to_an_unseen_configuration_and_optuna_sees_it():
    s = TPESearcher(SMALL, seed=0, n_startup_trials=1, max_retries=0)
    history, _ = run_search([s], lambda c: float(c["a"]), budget=6, log=None)
    assert len({(h["a"], h["b"]) for h in history}) == 6
    r = s.resources()
    assert r["random_fallbacks"] > 0
    told = [t for t in s.study.trials if t.state.name == "COMPLETE"]
    # every evaluated configuration is a completed Optuna trial with its score (fallbacks enqueued, not lost)
    assert {(SMALL["a"][t.params["a"]], t.params["b"]) for t in told} >= {(h["a"], h["b"]) for h in history}


@pytest.mark.parametrize("name", ["random", "tpe", "fmqa"])
def test_batched_rounds_ask_distinct_proposals_and_evaluate_them_together(name):
    """search.batch: each round asks `batch` distinct configurations (FMQA: distinct low-energy states, TPE: constant
    liar) and evaluates them in one call (the stage's is qlife.parallel); the budget holds exactly."""
    from qlife.parallel import pmap
    from qlife.params import Orchestration

    options = {"epochs": 50} if name == "fmqa" else {"constant_liar": True} if name == "tpe" else {}
    rounds: list[int] = []

    def many(configs):
        rounds.append(len(configs))
        return pmap(objective, configs, Orchestration(workers=2), "test search evaluations")

    history, stats = run_search([make_searcher(name, SPACE, 3, options)], objective, 11, log=None, batch=4,
                                evaluate_many=many)
    assert len(history) == 11 and stats[name]["evaluations"] == 11
    assert len(set(keys(history, SPACE))) == 11  # no configuration twice, within or across rounds
    assert rounds == [4, 4, 3]  # the last round asks only what is left of the budget
    assert [r["score"] for r in history] == [objective({k: r[k] for k in SPACE}) for r in history]
    serial, _ = run_search([make_searcher(name, SPACE, 3, options)], objective, 11, log=None, batch=4)
    assert keys(serial, SPACE) == keys(history, SPACE)  # where the round ran changes nothing
