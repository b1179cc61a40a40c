"""The static-input student is served through the same pyfunc as every registered model, without the teacher:
no teacher weights in its artifacts, `load_teacher` never called, the answer equal to the student on the table."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from qlife.params import Tracking
from qlife.tracking import log_text_model

LABELS = ["neg", "pos"]
TEXTS = ["a fine film", "dull and slow", "great acting , bad plot"]


@pytest.fixture(scope="module")
def served(tiny_teacher, tmp_path_factory):
    from safetensors.torch import save_file
    from transformers import AutoModel

    from qlife.methods.distill import MLPStudent
    from qlife.methods.static_embed import distill_static
    from qlife.models import load_tokenizer

    tmp = tmp_path_factory.mktemp("served-static")
    tok = load_tokenizer(tiny_teacher)
    ids = [tok(t)["input_ids"] for t in TEXTS]
    emb = distill_static(AutoModel.from_pretrained(tiny_teacher), tok, ids, dims=6, vocabulary="corpus")
    folder = tmp / "static"
    emb.save(folder, tok)
    torch.manual_seed(0)
    mlp = MLPStudent(6, 4, 2)
    mlp.set_scaler(emb.encode_ids(ids))
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(folder / "student.safetensors"))
    (folder / "student.json").write_text(json.dumps({"kind": "mlp", **mlp.config(), "labels": LABELS}))
    cfg = Tracking(uri=f"sqlite:///{tmp}/mlflow.db", experiment="serving-static")
    mlflow.set_tracking_uri(cfg.uri)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run() as run:
        uri = log_text_model(cfg, "static", "static_student", {"static": str(folder), "student": str(folder)},
                             TEXTS[:2], run_id=run.info.run_id)
    return uri, mlp.eval(), emb, folder


def test_answers_without_loading_the_teacher(served, monkeypatch):
    import qlife.classifiers

    uri, mlp, emb, _ = served

    def no_teacher(*_a, **_k):
        raise AssertionError("the static student must not load the teacher")

    monkeypatch.setattr(qlife.classifiers, "load_teacher", no_teacher)
    model = mlflow.pyfunc.load_model(uri)
    out = model.predict(TEXTS)
    with torch.no_grad():
        p = torch.softmax(mlp(torch.as_tensor(emb.encode_texts(TEXTS))), -1).numpy()
    assert [r["label"] for r in out] == list(p.argmax(1))
    np.testing.assert_allclose([r["score"] for r in out], p.max(1), rtol=1e-5)
    assert {r["label_name"] for r in out} <= set(LABELS)
    files = {f.name for f in Path(mlflow.artifacts.download_artifacts(uri)).rglob("*")}
    assert "model.safetensors" not in files and "static.safetensors" in files


def test_refuses_blank_text_like_every_served_model(served):
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(served[0])
    with pytest.raises(MlflowException, match="row 1"):
        model.predict(["fine", "  "])


@pytest.mark.slow  # a fresh process per model; the lifecycle flow test measures every candidate the same way
def test_serving_cost_is_measured_through_the_pyfunc(served, tiny_teacher, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from qlife.servecost import measure_all

    folder = served[3]
    teacher = tmp_path / "teacher"
    AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=2).save_pretrained(teacher)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(teacher)
    (teacher / "qlife.json").write_text(json.dumps({"max_length": 32, "labels": LABELS}))
    rows = measure_all({"teacher": {"kind": "classifier", "artifacts": {"model": str(teacher)}},
                        "static": {"kind": "static_student", "artifacts": {"static": str(folder),
                                                                          "student": str(folder)}}},
                       TEXTS, requests=6, batch=4)
    for row in rows.values():
        assert row["ms_per_request_batch1"] > 0 and row["p95_ms_batch1"] >= row["ms_per_request_batch1"]
        assert row["texts_per_s_batch"] > 0 and row["energy_kwh_per_1000_requests"] > 0
        assert row["requests"] == 6 and row["batch"] == 4
    assert rows["teacher"]["speedup_vs_teacher"] == 1.0
    # each in its own process: the serving process's peak memory, and its growth from loading and answering
    for row in rows.values():
        assert row["isolated"] and row["peak_rss_mb"] > row["peak_rss_growth_mb"] >= 0
    # not the parent's peak (execve keeps ru_maxrss): the processes differ by what they load
    assert rows["teacher"]["peak_rss_mb"] != rows["static"]["peak_rss_mb"]
    # the teacher's weights travel with its model; the static student's folder is the table and a small MLP
    assert rows["static"]["model_bytes"] < rows["teacher"]["model_bytes"]


def test_pareto_front_keeps_only_undominated_models():
    from stages.serving import pareto_front

    pts = {"teacher": (0.90, 20.0), "pruned": (0.89, 10.0), "static": (0.80, 0.5), "worse": (0.79, 1.0),
           "tie": (0.80, 0.5)}
    assert pareto_front(pts) == {"teacher", "pruned", "static", "tie"}
