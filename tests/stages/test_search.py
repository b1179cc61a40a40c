"""Stage 3: the three searchers side by side on one evaluator and budget; the report, history, plot and verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.params import parse_params
from tests.methods.test_fmqa import SPACE, objective

VAL_Y = np.arange(60) % 3  # the planted proxy validation labels, 20 per class


def planted(cfg: dict) -> np.ndarray:
    """Validation predictions of a configuration: the first documents wrong, fewer the higher its objective."""
    wrong = int(round(len(VAL_Y) * (0.7 - objective(cfg)) / 3))
    pred = VAL_Y.copy()
    pred[:wrong] = (pred[:wrong] + 1) % 3
    return pred


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One search of the three searchers on a planted evaluator (module-scoped: the tests only read it)."""
    import stages.search as search
    from qlife.methods.finetune import ProxyData, ProxyScore

    calls = []

    def fake_evaluator(params, data):
        def evaluate(cfg):
            calls.append(dict(cfg))
            return ProxyScore(objective(cfg) / 10 + 0.5, planted(cfg))

        return evaluate

    tmp_path = tmp_path_factory.mktemp("search")
    paths = {k: str(tmp_path / k) for k in ("search", "reports", "metrics")}
    params = parse_params({"paths": paths, "search": {
        "budget": 10, "space": {**SPACE, "head": ["linear", "mlp"]}, "fmqa": {"epochs": 100}}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search, "proxy_data", lambda params: ProxyData([], np.arange(30) % 3, [], VAL_Y,
                                                                  ["a", "b", "c"], 0))
        mp.setattr(search, "proxy_evaluator", fake_evaluator)
        mp.setattr(search, "proxy_majority", lambda params: 0.4)
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


def test_verdict_fmqa_against_the_best_classical_searcher_on_the_same_documents(report):
    from qlife.quality import scores

    rep, _, _ = report
    v, methods = rep["verdict"], rep["methods"]
    assert v["quantum"]["method"] == "fmqa" and v["metric"] == "macro_f1"
    assert "over 60 proxy validation documents" in v["spread"]
    twin = max(("random", "tpe"), key=lambda m: (methods[m]["best_score"], -methods[m]["found_at_evaluation"]))
    assert v["twin"]["method"] == twin and v["best_classical"]["method"] in ("random", "tpe")
    for who, m in (("quantum", "fmqa"), ("twin", twin)):  # each best configuration's own predictions
        assert v[who]["value"] == pytest.approx(scores(VAL_Y, planted(methods[m]["best_config"]))["macro_f1"])
        assert v[who]["ci95"][0] <= v[who]["value"] <= v[who]["ci95"][1]
    d = v["difference"]["quantum_minus_twin"]
    if methods["fmqa"]["best_config"] == methods[twin]["best_config"]:  # the same predictions: exactly 0
        assert d == {"value": 0.0, "ci95": [0.0, 0.0]} and v["verdict"] == "tie"
    else:
        assert d["ci95"][0] <= d["value"] <= d["ci95"][1]
    assert v["quantum"]["cost"]["qpu_s_est"] == methods["fmqa"]["quantum"]["qpu_seconds_est"] > 0
    assert v["twin"]["cost"]["qpu_s_est"] == 0.0 and v["twin"]["cost"]["wall_s"] == rep["cost"][twin]["wall_s"]
    assert "qaoa (a quantum solver)" in v["note"]
    assert rep["proxy"] == {"train_docs": 30, "val_docs": 60, "train_per_class": {"a": 10, "b": 10, "c": 10},
                            "val_per_class": {"a": 20, "b": 20, "c": 20}, "smallest_val_class": 20}


def test_no_verdict_without_fmqa_or_predictions():
    from stages.search import search_verdict

    params = parse_params({})
    methods = {"random": {"best_config": {"epochs": 1}, "best_score": 0.5, "found_at_evaluation": 1}}
    assert search_verdict(params, methods, {(0,): np.zeros(3)}, None, {"epochs": [1]}, {}) is None


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
