"""MLflow pyfunc model (the "models from code" form): text in, label out.

kind "classifier": a Hugging Face sequence classifier (the teacher or the pruned teacher).
kind "student": the fine-tuned teacher's encoder gives mean-pooled features, the distilled student
classifies them: an MLP, or the VQC student (projection -> circuit on the torch simulator -> head; with
`model_config={"shots": N}` its readout is sampled with N shots, as hardware would return it).
kind "static_student": a student on the static input (qlife.methods.static_embed): the tokenizer
(`tokenizers`), the embedding table and the student, from artifacts "static" (the table's folder) and
"student"; no teacher is loaded, no encoder runs.
Every artifact folder is loaded by `qlife.loading.load_saved`, the one loader of the models the pipeline saves.

Input: a list of strings. `predict` is type-hinted (`model_input: list[str]`), so MLflow 3 infers the
signature from the hint and, on the scoring server, hands the request's `inputs` value to `predict` unparsed
(`{"inputs": ["text", ...]}`; other keys are refused by MLflow with 400): no cast to string on the way, so
123 or null stays what it is. MLflow's type-hint validation refuses a non-list or a non-string item
before `predict`; `input_texts` then refuses empty or blank strings (and anything that reaches it some
other way: a DataFrame's `text` column, a Series, an array) with an MlflowException INVALID_PARAMETER_VALUE
naming the bad rows; the scoring server answers both with HTTP 400.
Output: a list of {"label", "label_name", "score"} records.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

_SHOWN = 10  # bad rows named in an error message


class QlifeTextModel(PythonModel):
    def load_context(self, context) -> None:
        from qlife.loading import load_saved  # the one loader of saved models (lazy: this module stays light)

        self.kind = context.model_config["kind"]
        shots = context.model_config.get("shots")
        if self.kind == "static_student":  # no teacher: the table, its tokenizer and the student
            saved = load_saved(context.artifacts["student"], shots=shots, static=context.artifacts["static"])
            self.static, self.student, self.labels = saved.static, saved.model, saved.labels
            return
        saved = load_saved(context.artifacts["model"])
        self.max_length, self.labels = saved.max_length, saved.labels
        self.tokenizer, self.model = saved.tokenizer, saved.model
        if self.kind == "student":
            self.student = load_saved(context.artifacts["student"], shots=shots).model

    @torch.no_grad()
    def predict(self, context, model_input: list[str], params=None) -> list[dict[str, Any]]:
        from qlife.models import pool, resolve_pooling

        texts = input_texts(model_input)
        if self.kind == "static_student":
            logits = self.student(torch.as_tensor(self.static.encode_texts(texts)))
            return _records(torch.softmax(logits.float(), -1).numpy(), self.labels)
        probs = []
        for i in range(0, len(texts), 64):
            batch = self.tokenizer(texts[i:i + 64], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt")
            out = self.model(**batch, output_hidden_states=self.kind == "student")
            logits = out.logits
            if self.kind == "student":
                logits = self.student(pool(out.hidden_states[-1], batch["attention_mask"],
                                           resolve_pooling(self.model.config)))
            probs.append(torch.softmax(logits.float(), -1).numpy())
        return _records(np.concatenate(probs) if probs else np.zeros((0, len(self.labels))), self.labels)


def _records(p: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    return [{"label": int(i), "label_name": labels[i], "score": float(row[i])} for row, i in zip(p, p.argmax(1))]


def _invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def _describe(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "missing (null/NaN)"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _as_list(values, expected: str) -> list:
    if isinstance(values, pd.Series):
        return values.tolist()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise _invalid(f"{expected}; got an array of shape {values.shape}")
        return values.tolist()
    if isinstance(values, (list, tuple)):
        return list(values)
    raise _invalid(f"{expected}; got {type(values).__name__}")


def input_texts(model_input) -> list[str]:
    """The texts of a request: a DataFrame's `text` column, a dict's "text" list, a Series, a 1-D array or a
    list; every item a non-empty string (not only whitespace). Anything else: an INVALID_PARAMETER_VALUE
    MlflowException naming the bad rows and their types."""
    expected = "expected a DataFrame with a 'text' column of strings, or a list of strings"
    if isinstance(model_input, pd.DataFrame):
        if "text" not in model_input.columns:
            raise _invalid(f"{expected}; got a DataFrame with columns {list(model_input.columns)}")
        values = model_input["text"].tolist()
    elif isinstance(model_input, dict):
        if set(model_input) != {"text"}:
            raise _invalid(f"{expected}; got a dict with keys {sorted(map(str, model_input))}")
        column = model_input["text"]
        values = _as_list(column, expected) if isinstance(column, (list, tuple, np.ndarray, pd.Series)) \
            else [column]
    else:
        values = _as_list(model_input, expected)
    bad = [(i, "empty or blank string" if isinstance(v, str) else _describe(v))
           for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        shown = ", ".join(f"row {i}: {what}" for i, what in bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
        raise _invalid(f"every text must be a non-empty string; {len(bad)} of {len(values)} are not: "
                       f"{shown}{more}")
    return values


mlflow.models.set_model(QlifeTextModel())
