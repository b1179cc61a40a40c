"""MLflow pyfunc model (the "models from code" form): text in, label out.

kind "classifier": a Hugging Face sequence classifier (the teacher or the pruned teacher).
kind "student": the fine-tuned teacher's encoder gives mean-pooled features, the distilled student
classifies them: an MLP, or the VQC student (projection -> circuit on the torch simulator -> head; with
`model_config={"shots": N}` its readout is sampled with N shots, as hardware would return it).
Input: a DataFrame with a `text` column (or a list of strings).
Output: a DataFrame with `label`, `label_name`, `score`.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel


class QlifeTextModel(PythonModel):
    def load_context(self, context) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.kind = context.model_config["kind"]
        model_dir = Path(context.artifacts["model"])
        meta = json.loads((model_dir / "qlife.json").read_text())
        self.max_length, self.labels = meta["max_length"], meta["labels"]
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        if self.kind == "student":
            self.student = load_student(Path(context.artifacts["student"]), context.model_config.get("shots"))

    @torch.no_grad()
    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from qlife.models import mean_pool

        texts = list(model_input["text"]) if isinstance(model_input, pd.DataFrame) else list(model_input)
        probs = []
        for i in range(0, len(texts), 64):
            batch = self.tokenizer(texts[i:i + 64], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt")
            out = self.model(**batch, output_hidden_states=self.kind == "student")
            logits = out.logits
            if self.kind == "student":
                logits = self.student(mean_pool(out.hidden_states[-1], batch["attention_mask"]))
            probs.append(torch.softmax(logits.float(), -1).numpy())
        p = np.concatenate(probs) if probs else np.zeros((0, len(self.labels)))
        label = p.argmax(1)
        return pd.DataFrame({"label": label, "label_name": [self.labels[i] for i in label],
                             "score": p.max(1) if len(p) else []})


def load_student(folder: Path, shots: int | None = None) -> torch.nn.Module:
    from safetensors.torch import load_file

    from qlife.methods.distill import MLPStudent

    cfg = json.loads((folder / "student.json").read_text())
    if cfg["kind"] == "vqc":  # projection -> circuit on the torch simulator (or `shots` samples) -> head
        from qlife.methods.vqc import VQCStudent

        student = VQCStudent.from_config(cfg)
        student.shots = shots
    elif cfg["kind"] == "mlp":
        student = MLPStudent(cfg["in_dim"], cfg["hidden"], cfg["n_classes"])
    else:
        raise ValueError(f"unknown student kind {cfg['kind']!r} in {folder}")
    student.load_state_dict(load_file(str(folder / "student.safetensors")))
    return student.eval()


mlflow.models.set_model(QlifeTextModel())
