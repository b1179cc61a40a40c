"""params `inference:` reaches the served model: the registered pyfunc's config carries it (only where it is not
torch float32), and qlife.serving runs the teacher through qlife.inference (torch int8, ONNX Runtime) with
predictions that follow the float32 model's."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qlife.inference import served_config
from qlife.tracking import pyfunc_model

TEXTS = ["a fine film", "dull and long", "the plot holds", "nothing works here", "bright, warm and funny"]


@pytest.fixture(scope="module")
def classifier(tiny_teacher, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("served") / "model"
    AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=2).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(folder)
    (folder / "qlife.json").write_text(json.dumps({"max_length": 32, "labels": ["neg", "pos"], "base_model": "t"}))
    return folder


def _served(folder: Path, how: dict | None):
    from qlife.serving import QlifeTextModel

    model = QlifeTextModel()
    model.load_context(SimpleNamespace(model_config={"kind": "classifier", **served_config(how)},
                                       artifacts={"model": str(folder)}))
    return model


def test_the_default_leaves_the_model_config_as_it_was():
    assert served_config(None) == {} and served_config({"runtime": "torch", "precision": "float32"}) == {}
    spec = pyfunc_model("classifier", {"model": "m"}, {"runtime": "torch", "precision": "float32"})
    assert spec["model_config"] == {"kind": "classifier"}
    assert not any(r.startswith("onnxruntime==") for r in spec["pip_requirements"])


def test_an_onnx_runtime_setting_is_saved_with_the_model_and_its_requirements():
    spec = pyfunc_model("student", {"model": "m", "student": "s"}, {"runtime": "onnxruntime", "precision": "int8"})
    assert spec["model_config"] == {"kind": "student", "inference": {"runtime": "onnxruntime", "precision": "int8"}}
    assert any(r.startswith("onnxruntime==") for r in spec["pip_requirements"])
    assert any(r.startswith("onnx==") for r in spec["pip_requirements"])


@pytest.mark.parametrize("how, atol", [({"runtime": "torch", "precision": "int8"}, 0.05),
                                       ({"runtime": "onnxruntime", "precision": "float32"}, 1e-4)])
def test_the_served_teacher_runs_as_params_say(classifier, how, atol, tmp_path, monkeypatch):
    monkeypatch.setenv("QLIFE_CACHE_DIR", str(tmp_path))  # the exported graph's cache
    plain, fast = _served(classifier, None), _served(classifier, how)
    assert getattr(plain.model, "qlife_inference", None) is None
    assert fast.model.qlife_inference == how  # the accelerated model, not the one as loaded
    p, q = plain.probabilities(TEXTS), fast.probabilities(TEXTS)
    assert p.shape == q.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(q, p, atol=atol)
    assert [r["label"] for r in fast.predict(None, TEXTS)] == list(q.argmax(1))
