"""A failed stage or a failed `dvc repro` closes the MLflow pipeline run FAILED, never leaves it RUNNING,
and promotes nothing."""

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


def test_failed_dvc_repro_closes_the_pipeline_run_failed(tiny_workdir, monkeypatch):
    params = read_params("params.yaml")
    calls, real_run = [], subprocess.run

    def fake_run(cmd, **kw):  # dvc repro exits 1 as when a stage fails; promote must not run
        if cmd[0] != "dvc":
            return real_run(cmd, **kw)
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    monkeypatch.setattr(pipeline, "write_summary", lambda p: pytest.fail("summary after a failure"))
    assert cli.run_pipeline(params, cli.dvc_repro([])).code == 1
    assert calls == [["dvc", "repro"]]
    (run,) = _runs(params.tracking)
    assert run.data.tags["qlife.kind"] == "pipeline" and run.info.status == "FAILED"
    assert not (tiny_workdir / "metrics" / "promote.json").exists()
