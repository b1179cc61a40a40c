"""Promote on a real SQLite registry (the served model replaced by a trivial pyfunc, so a promote takes a second):
two promotes at once leave `metrics/promote.json` naming the champion the registry names; a promote's advice
for a report it cannot use is a forced rerun (metrics are not cached by DVC); `make serve-model` with no
champion, an unknown model or version, or a busy port is one sentence and exit 1."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import mlflow
import pytest

from qlife import promote, tracking
from qlife.params import parse_params

NAME = "qlife-student"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def _fake_log(cfg, name, kind, artifacts, example, run_id=None, metrics=None, tags=None) -> str:
    """`tracking.log_text_model` without the text model: a trivial pyfunc under the same run."""
    return tracking._mlflow(cfg).pyfunc.log_model(name=name, python_model=_Echo(), pip_requirements=["mlflow"]
                                                  ).model_uri


def _deploy(quality: float = 0.9) -> dict:
    cand = {"metric": "macro_f1", "quality": quality, "accuracy": quality, "backend": "classical",
            "kind": "student", "artifacts": {}}
    return {"decision": {"majority_baseline": 0.3, "candidates": {"student": cand}}}


@pytest.fixture()
def work(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ENV_PARENT, raising=False)
    monkeypatch.setattr(tracking, "log_text_model", _fake_log)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "deploy.json").write_text(json.dumps(_deploy()))
    (metrics / "monitor.json").write_text(json.dumps({"decision": {"alarms": []}}))
    (tmp_path / "params.yaml").write_text(json.dumps({
        "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "promote-test"}}))
    return parse_params({"tracking": {"uri": "sqlite:///mlflow.db", "experiment": "promote-test"}})


def _registry_champion(params, name: str = NAME) -> int | None:
    current = tracking.champion(params.tracking, name)
    return current and current["version"]


def test_two_promotes_at_once_leave_the_report_agreeing_with_the_registry(work, monkeypatch):
    """The first promote to write its report is held in the write for a second and a half (where the second
    used to move the alias and write its own report, and the first then wrote over it, naming a champion the
    registry no longer had): both pass the gate, and the report names the version the alias names."""
    params = work
    tracking._mlflow(params.tracking)  # the store and the experiment exist before the two race
    real_write = promote.write_json
    held = threading.Event()

    def slow_first_write(path, obj):
        if not held.is_set():
            held.set()
            time.sleep(1.5)
        real_write(path, obj)

    monkeypatch.setattr(promote, "write_json", slow_first_write)
    outs, errors = [], []

    def one():
        try:
            outs.append(promote.promote(params))
        except Exception as err:  # noqa: BLE001 - the thread's failure is the test's
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(outs) == 2
    report = json.loads(Path("metrics/promote.json").read_text())["models"][NAME]
    champion = _registry_champion(params)
    assert sorted(o["models"][NAME]["version"] for o in outs) == [1, 2]
    assert all(o["models"][NAME]["promoted"] for o in outs)
    assert report["promoted"] and report["version"] == champion and report["champion"] == champion
    assert report == outs[-1]["models"][NAME]  # the report on disk is the promote that moved the alias last


def test_the_lock_sits_in_the_stores_ignored_folder_and_a_long_wait_is_a_sentence(work):
    params = work
    path = promote.lock_path(params)
    assert path == Path("mlflow.db").resolve().parent / ".qlife" / "mlflow.db.promote.lock"
    refused = []

    def second():
        try:
            with promote.registry_lock(params, timeout_s=0.2):
                pass
        except promote.PromoteError as err:
            refused.append(str(err))

    with promote.registry_lock(params):
        t = threading.Thread(target=second)
        t.start()
        t.join(10)
    assert refused == [f"another promote has held {path} for 0 s: let it finish, then run `python -m "
                       "qlife.promote` again"]


def test_a_refused_candidate_reports_the_champion_that_stays(work):
    params = work
    first = promote.promote(params)["models"][NAME]
    assert first["promoted"] and first["champion"] == first["version"] == 1
    Path("metrics/deploy.json").write_text(json.dumps(_deploy(quality=0.31)))  # at the majority baseline
    second = promote.promote(params)["models"][NAME]
    assert not second["promoted"] and second["version"] == 2 and second["champion"] == 1
    assert _registry_champion(params) == 1


def test_advice_for_an_unusable_deploy_report_is_a_forced_rerun(work, capsys):
    Path("metrics/deploy.json").write_text(json.dumps({"decision": {}}))
    with pytest.raises(SystemExit) as exit_:
        promote.main([])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "dvc repro --force deploy" in err and "dvc checkout" not in err
    Path("metrics/deploy.json").write_text('{"decision": ')  # truncated
    with pytest.raises(SystemExit):
        promote.main([])
    err = capsys.readouterr().err
    assert "metrics/deploy.json" in err and "dvc checkout" not in err and "dvc repro --force deploy" in err


# ---------------------------------------------------------------------------------------------- serve-model


def _serve(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        promote.main(["serve", *argv])
    assert exit_.value.code == 1
    return capsys.readouterr().err


def test_serve_model_with_no_champion_says_why_and_what_to_serve(work, capsys, monkeypatch):
    params = work
    assert "no MLflow store at" in _serve(["--name", NAME], capsys)  # before any run: nothing created
    assert not Path("mlflow.db").exists()
    (Path("metrics") / "monitor.json").write_text(json.dumps({"decision": {"alarms": ["window-001"]}}))
    out = promote.promote(params)  # the first run: an open drift alarm blocks the promotion, by design
    assert not out["models"][NAME]["promoted"]
    capsys.readouterr()
    err = _serve(["--name", NAME, "--alias", "champion"], capsys)  # the champion asked for by name: refused
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{NAME} has no alias 'champion': the last promote registered v1 but its gate refused it: open drift " \
           "alarm on window-001" in err
    assert f"`make serve-model NAME={NAME} VERSION=1`" in err
    assert promote.served_model_uri(params, NAME, version=1) == f"models:/{NAME}/1"
    assert "has no version 7 (its versions: 1)" in _serve(["--name", NAME, "--version", "7"], capsys)
    err = _serve(["--name", "nope"], capsys)
    assert "no registered model 'nope'" in err and f"(registered: {NAME})" in err
    assert "give ALIAS or VERSION, not both" in _serve(["--name", NAME, "--alias", "x", "--version", "1"], capsys)
    assert "its aliases: none" in _serve(["--name", NAME, "--alias", "staging"], capsys)
    Path("metrics/promote.json").unlink()
    assert "promote has not run here" in _serve(["--name", NAME, "--alias", "champion"], capsys)
    # nothing named: the first run's newest version is served, saying which and why (issue 33: the first run
    # ends usable)
    assert promote.served_model_uri(params, NAME, newest_without_champion=True) == f"models:/{NAME}/1"
    said = capsys.readouterr().err
    assert f"{NAME} has no champion (" in said and "serving its newest version, v1" in said


def test_serve_model_resolves_the_champion_refuses_a_busy_port_then_execs_mlflow(work, capsys, monkeypatch):
    params = work
    promote.promote(params)
    assert promote.served_model_uri(params, NAME) == f"models:/{NAME}@champion"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _serve(["--name", NAME, "--port", str(port)], capsys)
        assert f"port {port} on 127.0.0.1 is in use" in err and f"PORT={port + 1}" in err
    calls = []
    monkeypatch.delenv("QLIFE_SERVE_MAX_TEXT_BYTES", raising=False)
    monkeypatch.setattr(promote.os, "execvpe", lambda exe, cmd, env: calls.append((cmd, env)))
    promote.main(["serve", "--name", NAME, "--version", "1", "--port", str(port), "--max-texts", "64"])
    (cmd, env), = calls
    assert cmd[1:5] == ["models", "serve", "-m", f"models:/{NAME}/1"] and cmd[-1] == str(port)
    assert env["MLFLOW_TRACKING_URI"] == env["MLFLOW_REGISTRY_URI"] == tracking.store_uri("sqlite:///mlflow.db")
    assert env["QLIFE_SERVE_MAX_TEXTS"] == "64" and "QLIFE_SERVE_MAX_TEXT_BYTES" not in env
