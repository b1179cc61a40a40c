"""Stage 6 — pruning, inference & deployment.

Inputs: `paths.teacher/`, `paths.encoded/tokenized`, `paths.student/`.
Method: structured pruning of the teacher's feed-forward neurons: importance per neuron
(activation x down-projection norm on calibration documents, or weight magnitude), the top
`keep_ratio` per layer kept, the rest physically removed (smaller matrices, not masks).
Outputs: `paths.pruned/` (safetensors + tokenizer). The student and the pruned teacher are logged as
MLflow pyfunc models and registered; alias `champion` moves only when `deploy.gate` passes.
Params: `deploy:`. Report: parameters, size, latency and accuracy of teacher vs pruned, promotion.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np

from qlife import tracking
from qlife.io import atomic_path
from qlife.ledger import measure
from qlife.methods.finetune import collate, predict_ids
from qlife.methods.pruning import (
    count_parameters,
    ffn_activation_importance,
    ffn_magnitude_importance,
    prune_ffn,
    topk_keep,
)
from qlife.models import accuracy_f1
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main


def evaluate(model, ids: list[list[int]], y: np.ndarray, max_length: int, pad_id: int) -> dict:
    t0 = time.perf_counter()
    logits, _ = predict_ids(model, ids, max_length, pad_id)
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(ids))
    return {**accuracy_f1(y, logits.argmax(1)), "ms_per_doc": ms, "parameters": count_parameters(model)}


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


def open_drift_alarms(params: Params) -> list[str]:
    """Windows the last monitor run flagged that the training data does not include yet.

    Read from the previous run's monitor output (not a DVC dependency: monitor runs after deploy)."""
    flag = Path(params.paths.monitor) / "retrain.json"
    if not params.deploy.gate.block_on_open_drift or not flag.exists():
        return []
    alarmed = json.loads(flag.read_text()).get("windows", [])
    return [f"open drift alarm on {w} (not in {params.paths.incoming} yet)" for w in alarmed
            if not (Path(params.paths.incoming) / f"{w}.jsonl").exists()]


def register(params: Params, test_docs: list[str], quality: dict[str, float]) -> dict:
    dp, cfg = params.deploy, params.tracking
    decisions, blockers = {}, open_drift_alarms(params)
    models = {dp.student_model_name: ("student", {"model": params.paths.teacher, "student": params.paths.student}),
              dp.pruned_model_name: ("classifier", {"model": params.paths.pruned})}
    students, distill_json = Path(params.paths.student), Path(params.paths.metrics) / "distill.json"
    if not (students / "student.json").exists():  # distill.method: quantum trains no classical student
        models.pop(dp.student_model_name)
    if (students / "vqc" / "student.json").exists() and distill_json.exists():  # VQC student, same gate
        models["qlife-vqc-student"] = ("student", {"model": params.paths.teacher, "student": str(students / "vqc")})
        quality = {**quality, "qlife-vqc-student":
                   json.loads(distill_json.read_text())["methods"]["vqc_student"]["accuracy"]}
    for name, (kind, artifacts) in models.items():
        uri = tracking.log_text_model(cfg, name, kind, artifacts, test_docs)
        if uri is not None:
            decisions[name] = tracking.register_and_gate(cfg, uri, name, quality[name], dp.gate, blockers)
    return decisions


def run(params: Params) -> Report:
    import datasets
    from transformers import AutoModelForSequenceClassification

    teacher_dir = Path(params.paths.teacher)
    meta = json.loads((teacher_dir / "qlife.json").read_text())
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    from qlife.models import load_tokenizer

    pad_id = load_tokenizer(str(teacher_dir)).pad_token_id or 0
    max_length = meta["max_length"]
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    with measure(params.ledger) as cost:
        pruned = prune(teacher, params, ds["train"]["input_ids"], max_length, pad_id)
    test_ids, test_y = ds["test"]["input_ids"], np.array(ds["test"]["label"])
    teacher_q = evaluate(teacher, test_ids, test_y, max_length, pad_id)
    pruned_q = evaluate(pruned, test_ids, test_y, max_length, pad_id)
    pruned_q["weight_bytes"] = save_model(pruned, teacher_dir, params.paths.pruned)
    teacher_q["weight_bytes"] = sum(f.stat().st_size for f in teacher_dir.glob("*.safetensors"))
    student_acc = json.loads((Path(params.paths.metrics) / "distill.json").read_text())["methods"].get(
        "classical_student", {}).get("accuracy", 0.0) if (Path(params.paths.metrics) / "distill.json").exists() \
        else 0.0
    decisions = {}
    if params.deploy.register_models:
        test_docs = [json.loads(x)["text"] for x in open(Path(params.paths.curated) / "test.jsonl")][:2]
        decisions = register(params, test_docs, {params.deploy.student_model_name: student_acc,
                                                 params.deploy.pruned_model_name: pruned_q["accuracy"]})
    return {"summary": {"teacher_accuracy": teacher_q["accuracy"], "pruned_accuracy": pruned_q["accuracy"],
                        "param_ratio": pruned_q["parameters"] / teacher_q["parameters"],
                        "speedup": teacher_q["ms_per_doc"] / max(pruned_q["ms_per_doc"], 1e-9),
                        "promoted": sum(d["promoted"] for d in decisions.values())},
            "methods": {"teacher": teacher_q, "importance_topk": pruned_q},
            "registry": decisions, "cost": {"importance_topk": cost.as_dict()}}


def main() -> None:
    stage_main("deploy", run)


if __name__ == "__main__":
    main()
