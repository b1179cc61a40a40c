"""Stage 5 — fine-tuning & distillation.

Inputs: `paths.features/teacher.npz` (the fine-tuned teacher's pooled hidden states and logits).
Method: a classical student (MLP on the frozen teacher embeddings) trained with
(1 - alpha) * CE + alpha * T^2 * KL against the teacher's soft labels; early stopping on validation.
Outputs: `paths.student/` (`student.safetensors`, `student.json`). Params: `distill:`.
Report: student and teacher accuracy / macro-F1 on test, agreement with the teacher, parameter counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from qlife.io import atomic_path, read_json, write_json
from qlife.ledger import measure
from qlife.methods.distill import MLPStudent, count_trainable, predict, train_student
from qlife.models import accuracy_f1
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main


def load_features(params: Params) -> dict[str, np.ndarray]:
    f = np.load(Path(params.paths.features) / "teacher.npz")
    return {f"{s}_{k}": f[f"{s}_{src}"] for s in ("train", "val", "test")
            for k, src in (("x", "hidden"), ("logits", "logits"), ("y", "label"))}


def evaluate(logits: np.ndarray, data: dict[str, np.ndarray]) -> dict[str, float]:
    pred = logits.argmax(1)
    return {**accuracy_f1(data["test_y"], pred),
            "teacher_agreement": float((pred == data["test_logits"].argmax(1)).mean())}


def save_student(student: MLPStudent, folder: str | Path, labels: list[str], extra: dict) -> None:
    with atomic_path(folder, is_dir=True) as tmp:
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, str(tmp / "student.safetensors"))
        write_json(tmp / "student.json", {"kind": "mlp", **student.config(), "labels": labels, **extra})


def run(params: Params) -> Report:
    dp = params.distill
    data = load_features(params)
    labels = read_json(Path(params.paths.curated) / "labels.json")
    student = MLPStudent(data["train_x"].shape[1], dp.hidden, len(labels))
    student.set_scaler(data["train_x"])
    with measure(params.ledger) as cost:
        result = train_student(student, data, dp.alpha, dp.temperature, dp.epochs, dp.learning_rate,
                               dp.batch_size, dp.patience, dp.seed)
    quality = {**evaluate(predict(student, data["test_x"]), data), "parameters": count_trainable(student),
               "best_epoch": result.best_epoch, "val_accuracy": result.best_val_accuracy}
    teacher = accuracy_f1(data["test_y"], data["test_logits"].argmax(1))
    save_student(student, params.paths.student, labels, {"alpha": dp.alpha, "temperature": dp.temperature})
    write_json(Path(params.paths.reports) / "plots" / "distill_curve.json", result.history)
    return {"summary": {"student_accuracy": quality["accuracy"], "teacher_accuracy": teacher["accuracy"],
                        "student_parameters": quality["parameters"],
                        "accuracy_ratio": quality["accuracy"] / max(teacher["accuracy"], 1e-9)},
            "methods": {"classical_student": quality, "teacher": teacher},
            "cost": {"classical_student": cost.as_dict()}}


def main() -> None:
    stage_main("distill", run)


if __name__ == "__main__":
    main()
