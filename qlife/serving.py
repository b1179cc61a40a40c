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
Limits: a request of more than `max_texts` texts (default 256), or with a text of more than `max_text_bytes`
bytes in UTF-8 (default 65,536), is refused before any tokenizing with HTTP 413 and a message naming the limit
(1,000 texts took 39 s and a 1 MB text 2.5 s on 2 cores with no limit). The limits are the server's: the
environment variables QLIFE_SERVE_MAX_TEXTS and QLIFE_SERVE_MAX_TEXT_BYTES (`make serve-model MAX_TEXTS=...
MAX_TEXT_BYTES=...` sets them), else `max_texts` / `max_text_bytes` in the model config the model was saved
with, else the defaults; read when the model loads, a value that is not a positive integer stops the load.
The status codes: MLflow's scoring server answers an MlflowException raised by `predict` with the exception's
`get_http_status_code()` (its error code through `mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS`, where no code
maps to 413), so the refusals are `RequestRefused`, an MlflowException that carries its own status.
Inference: `model_config={"inference": {"runtime", "precision"}}` (params `inference:`, written by
`qlife.tracking.pyfunc_model` where it is not torch float32) runs the teacher through `qlife.inference.accelerate`.
Output: a list of {"label", "label_name", "score"} records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_LIMIT_EXCEEDED
from mlflow.pyfunc import PythonModel

_SHOWN = 10  # bad rows named in an error message
_ECHO = 200  # characters of the request kept where the scoring server repeats it in an error message
MAX_TEXTS = 256  # texts in one request
MAX_TEXT_BYTES = 64 * 1024  # UTF-8 bytes of one text
ENV_MAX_TEXTS, ENV_MAX_TEXT_BYTES = "QLIFE_SERVE_MAX_TEXTS", "QLIFE_SERVE_MAX_TEXT_BYTES"


class RequestRefused(MlflowException):
    """A request the served model does not run: HTTP `status` (400 malformed, 413 over a limit) from MLflow's
    scoring server, which answers with `get_http_status_code()`. The server prefixes the message with the whole
    request ("Failed to predict data '<data>'"): that echo is cut to its first characters (a 1 MB text is not
    sent back)."""

    def __init__(self, message: str, status: int, error_code: int):
        self.status = status
        super().__init__(message, error_code=error_code)

    def get_http_status_code(self) -> int:
        return self.status

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        head, sep, error = value.rpartition("\nError: ")
        if sep and head.startswith("Failed to predict data '") and len(head) > _ECHO + 40:
            value = f"{head[:_ECHO]}...' ({len(head)} characters). {sep}{error}"
        self._message = value


@dataclass(frozen=True)
class Limits:
    """What one request may hold (see the module's docstring)."""

    max_texts: int = MAX_TEXTS
    max_text_bytes: int = MAX_TEXT_BYTES

    @classmethod
    def resolve(cls, model_config: dict | None = None, environ=None) -> Limits:
        """The environment's values, else the model config's, else the defaults; each a positive integer."""
        environ = os.environ if environ is None else environ
        config = model_config or {}
        values = {}
        for key, env in (("max_texts", ENV_MAX_TEXTS), ("max_text_bytes", ENV_MAX_TEXT_BYTES)):
            raw, where = (environ[env], env) if environ.get(env) else (config.get(key), f"model_config {key}")
            if raw is None:
                continue
            try:
                value = int(raw)
            except (TypeError, ValueError):
                value = 0
            if value < 1 or str(raw).strip() not in (str(value), f"{value}.0"):
                raise ValueError(f"{where} must be a positive integer, got {raw!r}")
            values[key] = value
        return cls(**values)


class QlifeTextModel(PythonModel):
    def load_context(self, context) -> None:
        from qlife.loading import load_saved  # the one loader of saved models (lazy: this module stays light)

        self.kind = context.model_config["kind"]
        self.limits = Limits.resolve(context.model_config)
        shots = context.model_config.get("shots")
        if self.kind == "static_student":  # no teacher: the table, its tokenizer and the student
            saved = load_saved(context.artifacts["student"], shots=shots, static=context.artifacts["static"])
            self.static, self.student, self.labels = saved.static, saved.model, saved.labels
            return
        saved = load_saved(context.artifacts["model"])
        self.max_length, self.labels = saved.max_length, saved.labels
        self.tokenizer, self.model = saved.tokenizer, saved.model
        how = context.model_config.get("inference")
        if how:  # ONNX Runtime and / or int8 (params `inference:`, saved with the model): qlife.inference
            from qlife.inference import accelerate

            self.model = accelerate(self.model, how["runtime"], how["precision"])
        if self.kind == "student":
            self.student = load_saved(context.artifacts["student"], shots=shots).model

    def predict(self, context, model_input: list[str], params=None) -> list[dict[str, Any]]:
        return _records(self.probabilities(input_texts(model_input, self.limits)), self.labels)

    @torch.no_grad()
    def probabilities(self, texts: list[str]) -> np.ndarray:
        """(len(texts), classes) softmax probabilities (the monitor's quality estimate reads them whole)."""
        from qlife.models import pool, resolve_pooling

        if self.kind == "static_student":
            logits = self.student(torch.as_tensor(self.static.encode_texts(texts)))
            return torch.softmax(logits.float(), -1).numpy()
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
        return np.concatenate(probs) if probs else np.zeros((0, len(self.labels)))


def _records(p: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    return [{"label": int(i), "label_name": labels[i], "score": float(row[i])} for row, i in zip(p, p.argmax(1))]


def _invalid(message: str) -> MlflowException:
    return RequestRefused(message, 400, INVALID_PARAMETER_VALUE)


def _too_large(message: str) -> MlflowException:
    return RequestRefused(message, 413, RESOURCE_LIMIT_EXCEEDED)


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


def input_texts(model_input, limits: Limits | None = None) -> list[str]:
    """The texts of a request: a DataFrame's `text` column, a dict's "text" list, a Series, a 1-D array or a
    list; every item a non-empty string (not only whitespace). Anything else: an INVALID_PARAMETER_VALUE
    MlflowException naming the bad rows and their types (HTTP 400). With `limits`, more texts than
    `max_texts` (checked first) or a text over `max_text_bytes` is a RESOURCE_LIMIT_EXCEEDED one (HTTP 413)
    naming the limit."""
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
    if limits is not None and len(values) > limits.max_texts:
        raise _too_large(f"too many texts: {len(values)} in one request, the limit is {limits.max_texts} "
                         f"({ENV_MAX_TEXTS}); send them in requests of at most {limits.max_texts}")
    bad = [(i, "empty or blank string" if isinstance(v, str) else _describe(v))
           for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        shown = ", ".join(f"row {i}: {what}" for i, what in bad[:_SHOWN])
        more = f" (and {len(bad) - _SHOWN} more)" if len(bad) > _SHOWN else ""
        raise _invalid(f"every text must be a non-empty string; {len(bad)} of {len(values)} are not: "
                       f"{shown}{more}")
    if limits is not None:
        cap = limits.max_text_bytes
        big = [(i, n) for i, v in enumerate(values) if len(v) > cap // 4 and (n := len(v.encode("utf-8"))) > cap]
        if big:
            shown = ", ".join(f"row {i}: {n:,} bytes" for i, n in big[:_SHOWN])
            more = f" (and {len(big) - _SHOWN} more)" if len(big) > _SHOWN else ""
            raise _too_large(f"text too large: {len(big)} of {len(values)} texts are over the limit of {cap:,} "
                             f"bytes a text (UTF-8; {ENV_MAX_TEXT_BYTES}): {shown}{more}")
    return values


mlflow.models.set_model(QlifeTextModel())
