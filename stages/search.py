"""Stage 3 — architecture & hyperparameter search.

Inputs: `paths.encoded/tokenized` (train and val), the teacher (`train.model`).
Method: random search over the discrete space in `search.space`, each evaluation a short proxy
fine-tuning on a stratified subset of `proxy_train_size` training documents (loss weighted by
`train.class_weight`), scored by the quality metric (`quality:`, macro-F1 by default) on a stratified subset
of `proxy_val_size` validation documents; the budget (number of evaluations) is fixed so other searchers
compare fairly. The report gives the majority-class baseline on the same subset: a trial at that score
learned nothing but the prior.
Outputs: `paths.search/best.json`, `paths.search/history.json` (one row per evaluation, a DVC plot).
Params: `search:`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qlife.io import read_json, write_json
from qlife.ledger import measure
from qlife.methods.finetune import TrainConfig, finetune, predict_ids
from qlife.models import load_classifier, load_tokenizer
from qlife.params import Params
from qlife.quality import evaluate as quality_eval
from qlife.quality import majority_baseline, stratified_subset
from qlife.stage import Report
from qlife.stage import main as stage_main

Config = dict[str, float | int]


def grid(space: dict[str, list]) -> list[Config]:
    keys = sorted(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def random_search(candidates: list[Config], evaluate: Callable[[Config], float], budget: int,
                  seed: int) -> list[dict]:
    """Evaluate `budget` distinct candidates drawn uniformly without replacement."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(candidates))[: min(budget, len(candidates))]
    history = []
    for trial, i in enumerate(order):
        score = evaluate(candidates[i])
        history.append({"trial": trial, "score": score, **candidates[i]})
        print(f"  search trial {trial + 1}/{len(order)}: {candidates[i]} -> {score:.4f}", flush=True)
    return history


def proxy_evaluator(params: Params) -> Callable[[Config], float]:
    """A short fine-tuning on a fixed stratified subset, scored on a fixed validation subset."""
    import datasets

    sp = params.search
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    pad_id = load_tokenizer(params.train.model).pad_token_id or 0
    tr = stratified_subset(np.array(ds["train"]["label"]), sp.proxy_train_size, sp.seed)
    va = stratified_subset(np.array(ds["val"]["label"]), sp.proxy_val_size, sp.seed + 1)
    train_ids = [ds["train"][int(i)]["input_ids"] for i in tr]
    train_y = np.array([ds["train"][int(i)]["label"] for i in tr])
    val_ids = [ds["val"][int(i)]["input_ids"] for i in va]
    val_y = np.array([ds["val"][int(i)]["label"] for i in va])

    def evaluate(cfg: Config) -> float:
        model = load_classifier(params.train.model, num_labels=len(labels))
        tc = TrainConfig(learning_rate=float(cfg["learning_rate"]), epochs=int(cfg["epochs"]),
                         batch_size=int(cfg["batch_size"]), max_length=int(cfg["max_length"]),
                         frozen_layers=int(cfg["frozen_layers"]), seed=sp.seed,
                         class_weight=params.train.class_weight)
        finetune(model, train_ids, train_y, tc, pad_id, desc="proxy")
        logits, _ = predict_ids(model, val_ids, tc.max_length, pad_id)
        return quality_eval(val_y, logits.argmax(1), labels, params.quality)["quality"]

    return evaluate


def proxy_majority(params: Params) -> float:
    """The majority-class predictor's quality metric on the proxy validation subset."""
    import datasets

    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    va = stratified_subset(np.array(ds["val"]["label"]), params.search.proxy_val_size, params.search.seed + 1)
    return majority_baseline(np.array(ds["train"]["label"]), np.array(ds["val"]["label"])[va], labels,
                             params.quality)["quality"]


def run(params: Params) -> Report:
    sp, out = params.search, Path(params.paths.search)
    candidates = grid(sp.space.model_dump())
    with measure(params.ledger) as cost:
        history = random_search(candidates, proxy_evaluator(params), sp.budget, sp.seed)
    best = max(history, key=lambda h: h["score"])  # ties: the earliest trial
    config = {k: v for k, v in best.items() if k not in ("trial", "score")}
    metric, majority = params.quality.name, proxy_majority(params)
    write_json(out / "best.json", {"method": sp.method, "metric": metric, "score": best["score"], "config": config})
    write_json(out / "history.json", history)
    scores = [h["score"] for h in history]
    above = sum(s > majority + 1e-9 for s in scores)
    return {"summary": {"best_score": best["score"], "metric": metric, "majority_score": majority,
                        "trials_above_majority": above, "evaluations": len(history),
                        "space_size": len(candidates)},
            "methods": {sp.method: {"best_score": best["score"], "mean_score": float(np.mean(scores)),
                                    "evaluations": len(history), "best_config": config}},
            "decision": {"best_config": config, "metric": metric, "score": best["score"],
                         "beats_majority": best["score"] > majority + 1e-9,
                         "why": f"highest proxy {metric} of {len(history)} {sp.method} trials "
                                f"(majority-class baseline {majority:.4f})"},
            "cost": {sp.method: cost.as_dict()}}


def main() -> None:
    stage_main("search", run)


if __name__ == "__main__":
    main()
