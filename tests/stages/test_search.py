"""Stage 3: the three searchers side by side on one evaluator and budget; the report, history and plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.params import parse_params
from tests.methods.test_fmqa import SPACE, objective


@pytest.fixture()
def report(tmp_path: Path, monkeypatch):
    import stages.search as search

    calls = []

    def fake_evaluator(params):
        def evaluate(cfg):
            calls.append(dict(cfg))
            return objective(cfg) / 10 + 0.5

        return evaluate

    monkeypatch.setattr(search, "proxy_evaluator", fake_evaluator)
    monkeypatch.setattr(search, "proxy_majority", lambda params: 0.4)
    paths = {k: str(tmp_path / k) for k in ("search", "reports", "metrics")}
    params = parse_params({"paths": paths, "search": {
        "budget": 10, "space": {**SPACE, "head": ["linear", "mlp"]}, "fmqa": {"epochs": 100}}})
    return search.run(params), params, calls


def test_three_searchers_side_by_side(report):
    rep, params, calls = report
    assert list(rep["methods"]) == ["random", "tpe", "fmqa"]
    history = json.loads((Path(params.paths.search) / "history.json").read_text())
    # every recorded score is the evaluator's, cached or not
    for h in history:
        assert h["score"] == pytest.approx(objective(h) / 10 + 0.5), h
    for name, m in rep["methods"].items():
        rows = [h for h in history if h["searcher"] == name]
        scores = [h["score"] for h in rows]
        assert m["evaluations"] == len(rows) == 10 and [h["evaluation"] for h in rows] == list(range(1, 11))
        # the best is its history's maximum, found at the first evaluation that reached it
        first = scores.index(max(scores))
        assert m["best_score"] == max(scores) and m["mean_score"] == pytest.approx(np.mean(scores))
        assert m["found_at_evaluation"] == rows[first]["evaluation"]
        assert m["best_config"] == {k: rows[first][k] for k in (*SPACE, "head")}
        assert rep["cost"][name]["wall_s"] == pytest.approx(m["eval_wall_s"] + m["overhead_wall_s"])
    assert rep["summary"]["best_score"] == max(h["score"] for h in history)
    assert rep["decision"]["beats_majority"] == (rep["summary"]["best_score"] > 0.4)
    fm = rep["methods"]["fmqa"]
    assert fm["quantum"]["qubo_variables"] == 14 and fm["quantum"]["solver"] == "qaoa"
    # hardware-equivalent: every angle-search evaluation would be a circuit of 1,024 shots, plus one sampling each
    q = fm["quantum"]
    assert q["qubits"] == 14 and q["circuits"] > 7 and q["shots"] == q["circuits"] * 1024 and q["qpu_seconds_est"] > 0
    assert fm["searcher"]["initial_design"] == 3 and fm["searcher"]["rounds"] == 7
    # one training per distinct configuration, each searcher charged its full budget
    assert len(history) == 30 and rep["summary"]["trained"] == len(calls)
    distinct = {json.dumps({k: h[k] for k in (*SPACE, "head")}, sort_keys=True) for h in history}
    assert len(calls) == len(distinct)
    assert sum(h["cached"] for h in history) == 30 - len(calls)
    # the shared Latin design: the same 3 first configurations for every searcher, trained once
    first = {m: [json.dumps({k: h[k] for k in (*SPACE, "head")}) for h in history if h["searcher"] == m][:3]
             for m in ("random", "tpe", "fmqa")}
    assert first["random"] == first["tpe"] == first["fmqa"]
    assert all(h["cached"] for h in history if h["searcher"] != "random" and h["evaluation"] <= 3)


def test_best_config_goes_to_train_and_plot_has_each_searcher(report):
    rep, params, _ = report
    best = json.loads((Path(params.paths.search) / "best.json").read_text())
    assert best["score"] == max(m["best_score"] for m in rep["methods"].values())
    assert best["method"] == rep["decision"]["found_by"]
    assert best["config"] == rep["methods"][best["method"]]["best_config"] == rep["decision"]["best_config"]
    assert best["score"] == pytest.approx(objective(best["config"]) / 10 + 0.5)  # the config scores what it says
    plot = json.loads((Path(params.paths.reports) / "plots" / "search_best_so_far.json").read_text())
    assert len(plot) == 10 and set(plot[0]) == {"evaluation", "random", "tpe", "fmqa"}
    for m in ("random", "tpe", "fmqa"):
        curve = [row[m] for row in plot]
        assert np.all(np.diff(curve) >= 0) and curve[-1] == rep["methods"][m]["best_score"]


def test_unknown_space_name_or_searcher_is_a_params_error():
    from qlife.params import ParamsError

    with pytest.raises(ParamsError, match=r"search\.space\.dropout"):
        parse_params({"search": {"space": {"dropout": [0.1]}}})
    with pytest.raises(ParamsError, match=r"search\.method"):
        parse_params({"search": {"method": ["random", "grid"]}})
    with pytest.raises(ParamsError, match=r"search\.space\.head"):
        parse_params({"search": {"space": {"head": ["transformer"]}}})
    assert parse_params({"search": {"method": "tpe"}}).search.method == ["tpe"]
    with pytest.raises(ParamsError, match=r"n_init = 2 cannot set every bit"):
        parse_params({"search": {"fmqa": {"n_init": 2}}})  # frozen_layers has 3 levels


def test_a_space_too_big_for_qaoa_is_refused_before_training():
    from qlife.params import ParamsError

    big = {"learning_rate": [i * 1e-5 for i in range(1, 13)], "epochs": [1, 2],  # 12 + 2 + 2 + 2 + 3 one-hot
           "batch_size": [16, 32]}  # bits = 21
    with pytest.raises(ParamsError, match=r"qaoa works on all 2\^n states .* 21 bits"):
        parse_params({"search": {"space": big}})
    # the same space in domain-wall bits (11 + 1 + 1 + 1 + 2 = 16), or on an annealer, is fine
    parse_params({"search": {"space": big, "fmqa": {"domain_wall_min_levels": 2}}})
    parse_params({"search": {"space": big, "fmqa": {"solver": "sa"}}})
    parse_params({"search": {"space": big, "method": ["random", "tpe"]}})


def test_make_evaluator_trains_each_head(tiny_teacher):
    from qlife.methods.finetune import ProxyData, make_evaluator
    from qlife.params import Quality

    rng = np.random.default_rng(0)
    ids = [[101, *rng.integers(1000, 2000, 6).tolist(), 102] for _ in range(24)]
    y = np.arange(24) % 2
    data = ProxyData(ids, y, ids, y, ["a", "b"], 0)
    ev = make_evaluator(tiny_teacher, data, 0, "balanced", Quality(), {"max_length": 16})
    base = {"learning_rate": 1e-3, "epochs": 1, "batch_size": 8, "frozen_layers": 0}
    scores = [ev({**base, "head": h}) for h in ("linear", "mlp", "quantum")]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert ev({**base, "head": "mlp"}) == scores[1]  # seeded: the same config scores the same
