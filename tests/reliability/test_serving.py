"""The served pyfunc model refuses what is not text: in-process and through MLflow's scoring server (the app
`mlflow models serve` runs), a non-string, empty or nested input is an HTTP 400 naming the bad rows, never a
confident prediction; a request over the size limits (texts per request, bytes per text) is an HTTP 413 naming
the limit. The model is logged through `qlife.tracking.log_text_model` itself, so the test holds the signature
the pipeline really registers."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from qlife.params import Tracking
from qlife.serving import ENV_MAX_TEXT_BYTES, ENV_MAX_TEXTS, MAX_TEXT_BYTES, MAX_TEXTS, Limits, input_texts
from qlife.tracking import log_text_model

LABELS = ["a", "b"]


@pytest.fixture(scope="module")
def model_dir(tiny_teacher, tmp_path_factory) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir = tmp_path_factory.mktemp("served") / "model"
    AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=2).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(tiny_teacher).save_pretrained(model_dir)
    (model_dir / "qlife.json").write_text(json.dumps({"max_length": 32, "labels": LABELS, "base_model": "tiny"}))
    return model_dir


@pytest.fixture(scope="module")
def model_uri(model_dir) -> str:
    tmp = model_dir.parent
    cfg = Tracking(uri=f"sqlite:///{tmp}/mlflow.db", experiment="serving-test")
    mlflow.set_tracking_uri(cfg.uri)
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run() as run:
        return log_text_model(cfg, "classifier", "classifier", {"model": str(model_dir)}, ["a", "b"],
                              run_id=run.info.run_id)


@pytest.fixture(scope="module")
def model(model_uri):
    return mlflow.pyfunc.load_model(model_uri)


def _app(model):
    from fastapi.testclient import TestClient
    from mlflow.environment_variables import _MLFLOW_IS_IN_SERVING_ENVIRONMENT
    from mlflow.pyfunc import scoring_server

    with pytest.MonkeyPatch.context() as mp:  # init() marks the whole process as serving: undo it after
        mp.setenv(_MLFLOW_IS_IN_SERVING_ENVIRONMENT.name, "false")
        yield TestClient(scoring_server.init(model))


@pytest.fixture(scope="module")
def client(model):
    yield from _app(model)


def _assert_predictions(out: list[dict], n: int) -> None:
    assert len(out) == n and all(set(row) == {"label", "label_name", "score"} for row in out)
    assert {row["label_name"] for row in out} <= set(LABELS) and all(0.5 <= row["score"] <= 1 for row in out)


def test_signature_comes_from_the_type_hint(model):
    assert model.metadata._is_signature_from_type_hint()
    assert model.metadata.get_input_schema().to_dict() == [{"type": "string", "required": True}]


def test_strings_predict(model):
    _assert_predictions(model.predict(["the striker scored", "a vaccine trial"]), 2)
    _assert_predictions(model.predict(pd.DataFrame({"text": ["the striker scored", "a vaccine trial"]})), 2)
    assert model.predict([]) == []


@pytest.mark.parametrize(("data", "named"), [
    (["ok", 123], "('123', 'Expected type str, but got int')"),
    ([None, "ok"], "('None', 'Expected type str, but got NoneType')"),
    (["ok", ["nested"]], "Expected type str, but got list"),
    (["ok", {"text": "x"}], "Expected type str, but got dict"),
    ("a bare string", "Expected list, but got str"),
    ({"text": ["a"]}, "Expected list, but got dict"),
    (pd.Series(["a", "b"]), "Expected list, but got Series"),
])
def test_non_text_is_refused_by_the_type_hint_in_process(model, data, named):
    with pytest.raises(MlflowException) as err:
        model.predict(data)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and named in err.value.message


@pytest.mark.parametrize("text", ["", " \n"])
def test_blank_text_is_refused_by_predict(model, text):
    with pytest.raises(MlflowException, match="1 of 2 are not: row 1: empty or blank string") as err:
        model.predict(["ok", text])
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and err.value.get_http_status_code() == 400


@pytest.mark.parametrize(("data", "named"), [
    ([123, None], "2 of 2 are not: row 0: int 123, row 1: missing (null/NaN)"),
    (["a", ["b"]], "row 1: list ['b']"),
    ([{"text": "a"}], "row 0: dict {'text': 'a'}"),
    (pd.Series(["a", 2.5]), "row 1: float 2.5"),
    ({"text": ["a", None]}, "row 1: missing (null/NaN)"),
    (["a", pd.NA, np.nan], "row 1: missing (null/NaN), row 2: missing (null/NaN)"),
    ({"text": 7}, "row 0: int 7"),
    ({"txt": ["a"]}, "got a dict with keys ['txt']"),
    (pd.DataFrame({"x": ["a"]}), "got a DataFrame with columns ['x']"),
    (np.array([["a"], ["b"]]), "got an array of shape (2, 1)"),
    ("a bare string", "got str"),
    (123, "got int"),
])
def test_input_texts_names_what_is_wrong(data, named):
    with pytest.raises(MlflowException) as err:
        input_texts(data)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE" and named in err.value.message


def test_input_texts_accepts_every_text_container():
    for data in (["a", "b"], ("a", "b"), np.array(["a", "b"]), pd.Series(["a", "b"]),
                 pd.DataFrame({"text": ["a", "b"]}), {"text": ["a", "b"]}):
        assert input_texts(data) == ["a", "b"]
    assert input_texts([]) == []
    with pytest.raises(MlflowException, match=r"12 of 12 are not: .*row 9: int 9 \(and 2 more\)$"):
        input_texts(list(range(12)))


def _post(client, body):
    return client.post("/invocations", json=body)


def test_server_answers_text_with_predictions(client):
    # the README's request
    response = _post(client, {"inputs": ["the striker scored", "a vaccine trial"]})
    assert response.status_code == 200, response.text
    _assert_predictions(response.json()["predictions"], 2)
    assert _post(client, {"inputs": []}).json() == {"predictions": []}


@pytest.mark.parametrize(("body", "named"), [
    ({"inputs": [123, None]}, "('123', 'Expected type str, but got int'), ('None', 'Expected type str, but "
                              "got NoneType')"),
    ({"inputs": ["ok", 5.5]}, "('5.5', 'Expected type str, but got float')"),
    ({"inputs": [["a"], ["b"]]}, "Expected type str, but got list"),
    ({"inputs": ["ok", {"a": 1}]}, "Expected type str, but got dict"),
    ({"inputs": ["ok", ""]}, "every text must be a non-empty string; 1 of 2 are not: row 1: empty or blank"),
    ({"inputs": "bare"}, "Expected list, but got str"),
    ({"inputs": {"text": ["ok"]}}, "Expected list, but got dict"),
    ({"instances": ["ok", 5]}, "must be a dictionary with 'inputs' key"),
    ({"dataframe_split": {"columns": ["text"], "data": [["ok"]]}}, "must be a dictionary with 'inputs' key"),
    ({"dataframe_records": [{"text": "ok"}]}, "must be a dictionary with 'inputs' key"),
])
def test_server_answers_400_naming_what_is_wrong(client, body, named):
    response = _post(client, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE" and named in error["message"], error["message"]


def test_logged_requirements_are_pinned_to_this_environment(model_uri):
    """Given explicitly (MLflow's inference re-imports the model in a subprocess per model): the served model's
    requirements pin the versions the model was built with."""
    from importlib.metadata import version

    local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
    reqs = (Path(local) / "requirements.txt").read_text().split()
    assert f"torch=={version('torch')}" in reqs and f"transformers=={version('transformers')}" in reqs


# ------------------------------------------------------------------------------------------ request limits


def _refused(response, status: int, named: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()
    assert named in error["message"], error["message"]
    return error


def test_server_answers_413_over_the_count_and_size_limits(client):
    """The defaults (256 texts, 64 KiB a text) hold on the registered model, refused before any tokenizing
    (a 1 MB text took 2.5 s to answer with no limit); the message names the limit, and the scoring server's
    echo of the request is cut, so a 1 MB text is not sent back."""
    import time

    assert (MAX_TEXTS, MAX_TEXT_BYTES) == (256, 65536)
    words = [f"text {i}" for i in range(MAX_TEXTS + 1)]
    error = _refused(_post(client, {"inputs": words}), 413, "too many texts: 257 in one request, the limit is 256")
    assert error["error_code"] == "RESOURCE_LIMIT_EXCEEDED" and ENV_MAX_TEXTS in error["message"]
    big = "word " * (1 << 18)  # 1.25 MiB
    t = time.perf_counter()
    response = _post(client, {"inputs": ["fine", big, "x" * (MAX_TEXT_BYTES + 1)]})
    assert time.perf_counter() - t < 2.0
    error = _refused(response, 413, "text too large: 2 of 3 texts are over the limit of 65,536 bytes a text")
    assert "row 1: 1,310,720 bytes, row 2: 65,537 bytes" in error["message"] and len(response.content) < 2000
    # bytes, not characters: 16,385 four-byte characters are 65,540 bytes
    _refused(_post(client, {"inputs": ["\U0001F600" * 16385]}), 413, "row 0: 65,540 bytes")
    # at the limits: answered
    response = _post(client, {"inputs": [f"text {i}" for i in range(MAX_TEXTS - 1)] + ["y" * MAX_TEXT_BYTES]})
    assert response.status_code == 200, response.text
    _assert_predictions(response.json()["predictions"], MAX_TEXTS)


def test_malformed_is_still_400_and_the_count_is_checked_first(client):
    _refused(_post(client, {"inputs": ["ok", "  "]}), 400, "row 1: empty or blank string")
    _refused(_post(client, {"inputs": ["ok", 5] * 200}), 400, "Expected type str, but got int")  # MLflow's check
    _refused(_post(client, {"inputs": ["  "] * 300}), 413, "too many texts: 300")


def test_limits_come_from_the_environment_then_the_model_config(model_uri, monkeypatch):
    """`make serve-model MAX_TEXTS=... MAX_TEXT_BYTES=...` sets the environment the server loads the model in."""
    monkeypatch.setenv(ENV_MAX_TEXTS, "2")
    monkeypatch.setenv(ENV_MAX_TEXT_BYTES, "10")
    model = mlflow.pyfunc.load_model(model_uri)
    for client in _app(model):
        assert _post(client, {"inputs": ["one", "two"]}).status_code == 200
        _refused(_post(client, {"inputs": ["one", "two", "three"]}), 413, "the limit is 2")
        _refused(_post(client, {"inputs": ["eleven char"]}), 413, "over the limit of 10 bytes")
    assert Limits.resolve({"max_texts": 5, "max_text_bytes": 7}, environ={}) == Limits(5, 7)
    assert Limits.resolve({"max_texts": 5}, environ={ENV_MAX_TEXTS: "9"}) == Limits(9, MAX_TEXT_BYTES)
    assert Limits.resolve(None, environ={}) == Limits()
    for bad in ("0", "-3", "2.5", "many"):
        with pytest.raises(ValueError, match=f"{ENV_MAX_TEXTS} must be a positive integer, got '{bad}'"):
            Limits.resolve({}, environ={ENV_MAX_TEXTS: bad})
    with pytest.raises(ValueError, match="model_config max_text_bytes must be a positive integer"):
        Limits.resolve({"max_text_bytes": True}, environ={})


def test_serving_cost_measures_a_batch_above_the_served_limit(model_dir):
    """The serving-cost step measures what it is asked to (a batch of 300), not a refusal."""
    from qlife.servecost import measure_model

    row = measure_model("classifier", {"model": str(model_dir)}, ["a short text", "z" * (MAX_TEXT_BYTES + 5)],
                        requests=2, batch=MAX_TEXTS + 44)
    assert row["batch"] == 300 and row["texts_per_s_batch"] > 0
