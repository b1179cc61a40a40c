"""Stage 3 — architecture & hyperparameter search: random, Optuna TPE and FMQA side by side.

Inputs: `paths.encoded/tokenized` (train and val), the teacher (`train.model`).
Method: the space (`search.space`: learning rate, epochs, lengths, batch size, and the architecture: frozen
layers and the classification head) is searched by each searcher of `search.method` (qlife/methods/searchers.py:
random, tpe, fmqa), one after the other, each with the same budget (evaluations), seed and evaluator. An
evaluation is a short proxy fine-tuning on a stratified subset of `proxy_train_size` training documents (loss
weighted by `train.class_weight`), scored by the quality metric (`quality:`, macro-F1 by default) on a stratified
subset of `proxy_val_size` validation documents. Evaluations are shared through a cache: a configuration a
second searcher proposes is not retrained, but it is charged to that searcher's budget (`cached` in the
history). FMQA's QUBO is solved by `search.fmqa.solver` through the backend layer. The report gives the
majority-class baseline on the same subset: a trial at that score learned nothing but the prior.
Outputs: `paths.search/best.json` (the best configuration of all searchers: what train uses),
`paths.search/history.json` (every evaluation with its searcher), `reports/plots/search_best_so_far.json`
(DVC plot: best score so far against evaluations, one column per searcher).
Verdict: FMQA against the best classical searcher (random / TPE: the stage runs no FMQA with a classical solver
of the same QUBO), each by its best configuration's predictions on the same proxy validation documents (kept from
its proxy fine-tuning, nothing retrained), a paired bootstrap over them. `proxy` in the report: the subsets'
documents per class (a class with few validation documents cannot tell configurations apart).
With `search.batch` > 1 each searcher asks that many distinct proposals per round and the round's trainings
run through qlife.parallel (`orchestration`: serial, local workers or a Dask cluster).
Params: `search:`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qlife.io import read_json, write_json
from qlife.ledger import cpu_model_kwh, measure
from qlife.methods.finetune import ProxyData, make_evaluator
from qlife.methods.search_space import Config, config_key, latin_design, space_size
from qlife.methods.searchers import best_so_far, make_searcher, run_search
from qlife.models import check_memory, finetune_mode, finetune_options, load_tokenizer
from qlife.parallel import pmap
from qlife.params import Params
from qlife.quality import corpus_subsample, document_verdict, majority_baseline, stratified_subset
from qlife.stage import Report
from qlife.stage import main as stage_main


def proxy_data(params: Params) -> ProxyData:
    """The fixed stratified proxy subsets of the tokenized corpus."""
    import datasets

    sp = params.search
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    pad_id = load_tokenizer(params.train.model).pad_token_id or 0
    tr = stratified_subset(np.array(ds["train"]["label"]), sp.proxy_train_size, sp.seed)
    va = stratified_subset(np.array(ds["val"]["label"]), sp.proxy_val_size, sp.seed + 1)
    train, val = ds["train"].select(tr.tolist()), ds["val"].select(va.tolist())
    return ProxyData(train["input_ids"], np.array(train["label"]), val["input_ids"], np.array(val["label"]),
                     labels, pad_id)


QUANTUM_SOLVERS = ("qaoa", "dwave")  # FMQA solvers that run (or simulate) a quantum computation
FEW_VAL_DOCS = 10  # a proxy validation class below this many documents: the search cannot tell configurations apart


def proxy_evaluator(params: Params, data: ProxyData | None = None) -> Callable[[Config], float]:
    data = proxy_data(params) if data is None else data
    return make_evaluator(params.train.model, data, params.search.seed, params.train.class_weight,
                          params.quality, group_by_length=params.train.group_by_length,
                          quantum_head=params.train.quantum_head, quantum_optimizer=params.train.quantum_optimizer,
                          head_learning_rate=params.train.head_learning_rate,
                          tuning=finetune_options(params.train.model, params.train.finetune,
                                                  params.train.lora.model_dump()), pooling=params.train.pooling)


def searchers_of(params: Params, space: dict[str, list]) -> list:
    """The searchers `search.method` names, with the same seed; with `search.shared_design` all start from the
    same Latin design of FMQA's `n_init` points (trained once through the cache); TPE models after as many
    points as that design unless `search.tpe.n_startup_trials` says otherwise."""
    sp = params.search
    fm = sp.fmqa
    n_init = fm.n_init if fm.n_init is not None else max(len(v) for v in space.values())
    shared = latin_design(space, n_init, np.random.default_rng(sp.seed)) if sp.shared_design else None
    options = {
        "random": {"initial": shared},
        "tpe": {"n_startup_trials": sp.tpe.n_startup_trials or n_init, "initial": shared,
                "constant_liar": sp.batch > 1},
        "fmqa": {"rank": fm.rank, "n_init": fm.n_init, "domain_wall_min_levels": fm.domain_wall_min_levels,
                 "epochs": fm.epochs, "learning_rate": fm.learning_rate, "weight_decay": fm.weight_decay,
                 "penalty_scale": fm.penalty_scale, "window": fm.window, "subsample": fm.subsample,
                 "solver": fm.solver, "param": "search.fmqa.solver", "initial": shared},
    }
    return [make_searcher(name, space, sp.seed, options[name]) for name in sp.method]


def proxy_majority(params: Params) -> float:
    """The majority-class predictor's quality metric on the proxy validation subset."""
    import datasets

    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    va = stratified_subset(np.array(ds["val"]["label"]), params.search.proxy_val_size, params.search.seed + 1)
    return majority_baseline(np.array(ds["train"]["label"]), np.array(ds["val"]["label"])[va], labels,
                             params.quality)["quality"]


def proxy_classes(data: ProxyData) -> dict:
    """Documents per class in the proxy subsets, and the smallest validation class."""
    count = {s: np.bincount(np.asarray(y), minlength=len(data.labels)) for s, y in (("train", data.train_y),
                                                                                     ("val", data.val_y))}
    out = {f"{s}_per_class": dict(zip(data.labels, map(int, c))) for s, c in count.items()}
    return {"train_docs": len(data.train_y), "val_docs": len(data.val_y), **out,
            "smallest_val_class": int(count["val"].min())}


def search_verdict(params: Params, methods: dict, predictions: dict, data: ProxyData, space: dict,
                   cost: dict) -> dict | None:
    """FMQA against the best classical searcher (see the module docstring); None without FMQA, without a classical
    searcher, or when an evaluator gave no predictions."""
    sp = params.search
    classical = [m for m in methods if m != "fmqa"]
    keys = {m: config_key(space, methods[m]["best_config"]) for m in methods}
    if "fmqa" not in methods or not classical or any(k not in predictions for k in keys.values()):
        return None
    twin = max(classical, key=lambda m: (methods[m]["best_score"], -methods[m]["found_at_evaluation"],
                                         -sp.method.index(m)))
    kind = sp.fmqa.solver.kind
    solver = "a quantum solver" if kind in QUANTUM_SOLVERS else "a classical solver: nothing quantum ran"
    shared = "the same initial design, " if sp.shared_design else ""
    note = (f"FMQA's QUBO solved by {kind} ({solver}). The stage runs no FMQA with a classical solver of the same "
            f"QUBO, so the twin is the best classical searcher ({twin} of {', '.join(classical)}: {shared}the same "
            f"evaluator, budget ({sp.budget}) and seed). Each searcher's best configuration is scored by its proxy "
            f"fine-tuning's predictions on the same {len(data.val_y)} validation documents it was selected on "
            "(nothing retrained: each best is a little optimistic, the bootstrap resamples documents, not "
            "trainings); searchers whose best is the same configuration differ by exactly 0. Cost: a configuration "
            "another searcher trained first is free to the later one.")
    v = document_verdict(data.val_y, {m: predictions[keys[m]] for m in methods}, data.labels, params.quality,
                         "fmqa", twin, classical=classical, cost=cost, seed=sp.seed, note=note)
    return {**v, "spread": v["spread"].replace("test documents", "proxy validation documents")}


def _verdict_cost(params: Params, cost: dict, search_cost: dict) -> dict:
    """Per searcher: wall and CPU seconds, kWh (the ledger's CPU model, or its share of the measured search's
    energy by wall seconds), estimated QPU seconds."""
    wall = sum(c["wall_s"] for c in cost.values()) or 1.0
    return {m: {"wall_s": c["wall_s"], "cpu_s": c["cpu_s"],
                "energy_kwh": cpu_model_kwh(c["cpu_s"], c["wall_s"], params.ledger) if params.ledger.energy ==
                "cpu_model" else search_cost["energy_kwh"] * c["wall_s"] / wall,
                "qpu_s_est": c.get("quantum", {}).get("qpu_seconds_est", 0.0)} for m, c in cost.items()}


def _searcher_report(name: str, rows: list[dict], stats: dict, searcher: Any) -> dict:
    scores = [r["score"] for r in rows]
    best = max(range(len(rows)), key=lambda i: (scores[i], -i))  # ties: the earliest
    keys = [k for k in rows[0] if k not in ("searcher", "evaluation", "score", "cached", "eval_s", "overhead_s")]
    n = len(rows)
    fresh = n - stats["cached"]
    per_eval = stats["eval_wall_s"] / fresh if fresh else None
    out = {"best_score": scores[best], "found_at_evaluation": rows[best]["evaluation"],
           "mean_score": float(np.mean(scores)), "evaluations": n, "cached_evaluations": stats["cached"],
           "best_config": {k: rows[best][k] for k in keys},
           "eval_wall_s": stats["eval_wall_s"], "eval_cpu_s": stats["eval_cpu_s"],
           "overhead_wall_s": stats["overhead_wall_s"], "overhead_cpu_s": stats["overhead_cpu_s"],
           "overhead_per_proposal_s": stats["overhead_wall_s"] / max(n, 1),
           "overhead_vs_one_evaluation": (stats["overhead_wall_s"] / max(n, 1) / per_eval) if per_eval else None}
    extra = searcher.resources()
    quantum = extra.pop("quantum", None) if isinstance(extra, dict) else None
    out["searcher"] = extra
    if quantum is not None:
        out["quantum"] = {"qubo_variables": extra.get("bits"), "qubits": quantum["qubits"],
                          "circuits": quantum["circuits"], "shots": quantum["shots"], "reads": extra.get("samples"),
                          "qpu_seconds_est": quantum["qpu_seconds_est"], "executed_on": quantum["executed_on"],
                          "solver": extra.get("solver")}
    return out


def run(params: Params) -> Report:
    sp, out = params.search, Path(params.paths.search)
    space = sp.space.model_dump()
    searchers = searchers_of(params, space)
    tp = params.train
    check_memory(tp.model, "search", finetune_mode(tp.model, tp.finetune),
                 max(space.get("batch_size") or [tp.batch_size]), max(space.get("max_length") or [tp.max_length]),
                 tp.max_memory_share)
    data = proxy_data(params)
    proxy = proxy_classes(data)
    if proxy["smallest_val_class"] < FEW_VAL_DOCS:
        print(f"search: warning: a class has {proxy['smallest_val_class']} of the {proxy['val_docs']} proxy validation "
              f"documents ({proxy['val_per_class']}): its F1 moves in steps too coarse to tell configurations apart; "
              "raise search.proxy_val_size", flush=True)
    evaluate = proxy_evaluator(params, data)
    print(f"search: {', '.join(sp.method)} x {sp.budget} evaluations over {space_size(space)} configurations",
          flush=True)
    predictions: dict = {}  # configuration key -> its proxy's validation predictions (the verdict)
    with measure(params.ledger) as cost:  # a round's proposals are independent trainings: qlife.parallel
        history, stats = run_search(searchers, evaluate, sp.budget, space=space, batch=sp.batch,
                                    evaluate_many=lambda configs: pmap(evaluate, configs, params.orchestration,
                                                                       "search evaluations"),
                                    predictions=predictions)
    by = {s.name: [h for h in history if h["searcher"] == s.name] for s in searchers}
    methods = {s.name: _searcher_report(s.name, by[s.name], stats[s.name], s) for s in searchers if by[s.name]}
    winner = max(methods, key=lambda m: (methods[m]["best_score"], -methods[m]["found_at_evaluation"],
                                         -sp.method.index(m)))
    best_score, config = methods[winner]["best_score"], methods[winner]["best_config"]
    metric, majority = params.quality.name, proxy_majority(params)
    write_json(out / "best.json", {"method": winner, "metric": metric, "score": best_score, "config": config})
    write_json(out / "history.json", history)
    curves = {m: best_so_far([r["score"] for r in by[m]]) for m in methods}
    write_json(Path(params.paths.reports) / "plots" / "search_best_so_far.json",
               [{"evaluation": i + 1, **{m: float(c[i]) for m, c in curves.items() if i < len(c)}}
                for i in range(max(len(c) for c in curves.values()))])
    quantum = {s.name: (s.quantum.to_dict() if getattr(s, "quantum", None) is not None else None) for s in searchers}
    scores = [h["score"] for h in history]
    above = sum(s > majority + 1e-9 for s in scores)
    fresh = sum(1 for h in history if not h["cached"])
    per = {m: {"wall_s": methods[m]["eval_wall_s"] + methods[m]["overhead_wall_s"],
               "cpu_s": methods[m]["eval_cpu_s"] + methods[m]["overhead_cpu_s"],
               **({"quantum": quantum[m]} if quantum.get(m) else {})} for m in methods}
    with measure(params.ledger) as v_cost:
        verdict = search_verdict(params, methods, predictions, data, space, _verdict_cost(params, per,
                                                                                          cost.as_dict()))
    return {"summary": {"best_score": best_score, "found_by": winner, "metric": metric, "majority_score": majority,
                        "trials_above_majority": above, "evaluations": len(history), "trained": fresh,
                        "space_size": space_size(space),
                        **{f"{m}_best": methods[m]["best_score"] for m in methods}},
            "methods": methods,
            "verdict": verdict,
            "proxy": proxy,
            # encode.max_docs's cut of the corpus; the proxy subsets (proxy) are drawn from what it kept
            "subsample": {"corpus": corpus_subsample(Path(params.paths.encoded) / "tokenized")},
            "decision": {"best_config": config, "metric": metric, "score": best_score, "found_by": winner,
                         "beats_majority": best_score > majority + 1e-9,
                         "why": f"highest proxy {metric} of {len(history)} evaluations by {', '.join(methods)} "
                                f"({sp.budget} each, {fresh} trained, the rest shared; majority-class baseline "
                                f"{majority:.4f})"},
            "cost": {"search": cost.as_dict(), **per, "verdict_bootstrap": v_cost.as_dict()}}


def main() -> None:
    stage_main("search", run)


if __name__ == "__main__":
    main()
