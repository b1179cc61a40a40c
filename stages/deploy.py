"""Stage 6 — pruning, inference & deployment.

Inputs: `paths.teacher/`, `paths.encoded/tokenized`, `paths.student/`, `paths.metrics/distill.json`.
Method: structured pruning of the teacher's feed-forward neurons: importance per neuron
(activation x down-projection norm on calibration documents, or weight magnitude), the top
`keep_ratio` per layer kept, the rest physically removed (smaller matrices, not masks).
Outputs: `paths.pruned/` (safetensors + tokenizer). No registry here: the report's `decision.candidates`
(pruned teacher, students from `metrics/distill.json`, with their quality metric) and the majority-class
baseline are what `qlife.promote` registers and gates after `dvc repro`.
Params: `deploy:`, `quality:`. Report: parameters, size, latency and quality of teacher vs pruned.
"""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import numpy as np

from qlife.io import atomic_path, read_json
from qlife.ledger import measure
from qlife.methods.finetune import collate, predict_ids
from qlife.methods.pruning import (
    count_parameters,
    ffn_activation_importance,
    ffn_magnitude_importance,
    prune_ffn,
    topk_keep,
)
from qlife.models import load_teacher, load_tokenizer
from qlife.params import Params
from qlife.quality import evaluate as quality_eval
from qlife.quality import majority_baseline
from qlife.stage import Report
from qlife.stage import main as stage_main


def evaluate(model, ids: list[list[int]], y: np.ndarray, max_length: int, pad_id: int, labels: list[str],
             params: Params) -> dict:
    t0 = time.perf_counter()
    logits, _ = predict_ids(model, ids, max_length, pad_id)
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(ids))
    return {**quality_eval(y, logits.argmax(1), labels, params.quality), "ms_per_doc": ms,
            "parameters": count_parameters(model)}


def calibration_batches(ids: list[list[int]], n: int, seed: int, max_length: int, pad_id: int):
    order = np.random.default_rng(seed).permutation(len(ids))[:n]
    return [collate([ids[i] for i in order[j:j + 32]], max_length, pad_id) for j in range(0, len(order), 32)]


def prune(teacher, params: Params, ids, max_length: int, pad_id: int):
    dp = params.deploy
    if dp.importance == "activation":
        scores = ffn_activation_importance(teacher, calibration_batches(ids, dp.calib_docs, dp.seed,
                                                                        max_length, pad_id))
    else:
        scores = ffn_magnitude_importance(teacher)
    return prune_ffn(copy.deepcopy(teacher), topk_keep(scores, dp.keep_ratio))


def save_model(model, source_dir: Path, target: str | Path) -> int:
    """save_pretrained plus the tokenizer and qlife.json copied from the teacher; returns weight bytes."""
    with atomic_path(target, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        for f in source_dir.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "special_tokens", "qlife")):
                shutil.copy(f, tmp / f.name)
    return sum(f.stat().st_size for f in Path(target).glob("*.safetensors"))


def distill_methods(params: Params) -> dict:
    path = Path(params.paths.metrics) / "distill.json"
    return read_json(path).get("methods", {}) if path.exists() else {}


def candidates(params: Params, pruned_q: dict) -> dict[str, dict]:
    """The models this run offers for promotion: artifacts, serving kind, quality on the test split.

    `qlife.promote` (after `dvc repro`, never inside a DVC stage) registers them and applies the gate."""
    paths, students = params.paths, Path(params.paths.student)
    out = {"pruned_teacher": {"kind": "classifier", "artifacts": {"model": paths.pruned}, "backend": "torch-cpu",
                              **_quality(pruned_q)}}
    distilled = distill_methods(params)
    if (students / "student.json").exists() and "classical_student" in distilled:
        out["student"] = {"kind": "student", "artifacts": {"model": paths.teacher, "student": paths.student},
                          "backend": "torch-cpu", **_quality(distilled["classical_student"])}
    if (students / "vqc" / "student.json").exists() and "vqc_student" in distilled:
        out["vqc_student"] = {"kind": "student", "artifacts": {"model": paths.teacher,
                                                               "student": str(students / "vqc")},
                              "backend": "statevector", **_quality(distilled["vqc_student"])}
    return out


def _quality(m: dict) -> dict:
    return {"quality": m["quality"], "metric": m["metric"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def run(params: Params) -> Report:
    import datasets
    teacher_dir = Path(params.paths.teacher)
    meta = read_json(teacher_dir / "qlife.json")
    labels = meta["labels"]
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    pad_id = load_tokenizer(str(teacher_dir)).pad_token_id or 0
    max_length = meta["max_length"]
    teacher = load_teacher(teacher_dir)
    with measure(params.ledger) as cost:
        pruned = prune(teacher, params, ds["train"]["input_ids"], max_length, pad_id)
    test_ids, test_y = ds["test"]["input_ids"], np.array(ds["test"]["label"])
    teacher_q = evaluate(teacher, test_ids, test_y, max_length, pad_id, labels, params)
    pruned_q = evaluate(pruned, test_ids, test_y, max_length, pad_id, labels, params)
    pruned_q["weight_bytes"] = save_model(pruned, teacher_dir, params.paths.pruned)
    teacher_q["weight_bytes"] = sum(f.stat().st_size for f in teacher_dir.glob("*.safetensors"))
    majority = majority_baseline(np.array(ds["train"]["label"]), test_y, labels, params.quality)
    offered = candidates(params, pruned_q)
    metric = params.quality.name
    return {"summary": {f"teacher_{metric}": teacher_q["quality"], f"pruned_{metric}": pruned_q["quality"],
                        f"majority_{metric}": majority["quality"],
                        "param_ratio": pruned_q["parameters"] / teacher_q["parameters"],
                        "speedup": teacher_q["ms_per_doc"] / max(pruned_q["ms_per_doc"], 1e-9),
                        "candidates": len(offered)},
            "methods": {"teacher": teacher_q, "importance_topk": pruned_q, "majority_class": majority},
            "decision": {"applied": "importance_topk", "keep_ratio": params.deploy.keep_ratio,
                         "metric": metric, "majority_baseline": majority["quality"], "candidates": offered,
                         "why": "candidates for `qlife.promote`: registered after dvc repro, gated there"},
            "cost": {"importance_topk": cost.as_dict()}}

def main() -> None:
    stage_main("deploy", run)


if __name__ == "__main__":
    main()
