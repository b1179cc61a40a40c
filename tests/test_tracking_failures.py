"""A failed stage or a failed `dvc repro` closes the MLflow pipeline run FAILED, never leaves it RUNNING,
and promotes nothing; stop-signal handlers are installed only where signals arrive (the main thread).
Signals, orphans and corrupt stores: tests/reliability/test_run_status.py."""

from __future__ import annotations

import subprocess

import mlflow
import pytest

from qlife import cli, pipeline, tracking
from qlife.params import Tracking, read_params


def _runs(cfg: Tracking):
    mlflow.set_tracking_uri(tracking.store_uri(cfg.uri))
    return mlflow.search_runs(experiment_names=[cfg.experiment], output_format="list")


def test_stage_that_raises_closes_its_runs_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ENV_PARENT, raising=False)
    cfg = Tracking(uri="sqlite:///mlflow.db", experiment="fail-test")
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.stage_run(cfg, "curate", {"x": 1}):
            raise RuntimeError("boom")
    runs = _runs(cfg)
    assert {r.data.tags["qlife.kind"]: r.info.status for r in runs} == {"pipeline": "FAILED", "stage": "FAILED"}
    assert all(r.info.end_time for r in runs)


def test_a_stage_run_in_a_worker_thread_installs_no_signal_handler(tmp_path, monkeypatch):
    """Signals reach only the main thread: a stage run in a thread (Prefect's thread runner) leaves the
    handlers alone and still ends FINISHED."""
    import signal
    import threading

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ENV_PARENT, raising=False)
    cfg = Tracking(uri="sqlite:///mlflow.db", experiment="thread-test")
    before, seen = signal.getsignal(signal.SIGTERM), []

    def stage():
        with tracking.stage_run(cfg, "curate", {"x": 1}):
            seen.append(signal.getsignal(signal.SIGTERM))

    worker = threading.Thread(target=stage)
    worker.start()
    worker.join()
    assert seen == [before]
    with tracking.stage_run(cfg, "train", {"x": 1}):  # in the main thread: installed, then restored
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert {r.info.status for r in _runs(cfg)} == {"FINISHED"}


def test_failed_dvc_repro_closes_the_pipeline_run_failed(tiny_workdir, monkeypatch):
    params = read_params("params.yaml")
    calls, real_popen = [], subprocess.Popen

    def fake_popen(cmd, **kw):  # dvc repro exits 1 as when a stage fails; promote must not run
        if cmd[0] != "dvc":
            return real_popen(cmd, **kw)
        calls.append(cmd)
        assert kw.get("start_new_session")  # a group of its own, that a stop signal is passed on to
        return real_popen(["sh", "-c", "exit 1"], **kw)

    monkeypatch.setattr(pipeline.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(pipeline, "write_summary", lambda p: pytest.fail("summary after a failure"))
    assert cli.run_pipeline(params, cli.dvc_repro([])).code == 1
    assert calls == [["dvc", "repro"]]
    (run,) = _runs(params.tracking)
    assert run.data.tags["qlife.kind"] == "pipeline" and run.info.status == "FAILED"
    assert not (tiny_workdir / "metrics" / "promote.json").exists()
