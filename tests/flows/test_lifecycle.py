"""End to end on a tiny teacher: the Prefect lifecycle flow on a real local Prefect server
(prefect_test_harness) runs all seven stages in process; then the MLflow runs, the registry alias,
the pruned model, the reports and the monitoring flow are checked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params_dict


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def lifecycle_run(harness, tiny_teacher, tmp_path_factory):
    from flows.lifecycle import lifecycle

    work = tmp_path_factory.mktemp("lifecycle")
    (work / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(tiny_teacher)))
    old = os.getcwd()
    os.chdir(work)
    try:
        yield work, lifecycle(params_file="params.yaml", use_dvc=False)
    finally:
        os.chdir(old)


def test_lifecycle_flow_end_to_end(lifecycle_run):
    import mlflow

    from qlife.stage import STAGES

    work, paths = lifecycle_run
    assert list(paths) == list(STAGES)
    reports = {s: json.loads(Path(p).read_text()) for s, p in paths.items()}
    for stage, report in reports.items():
        total = report["cost"]["total"]
        assert total["wall_s"] > 0 and total["energy_kwh"] > 0, stage
    # stage 1: planted duplicates found on the tiny generated corpus
    dedup = reports["curate"]["methods"]["classical"]
    assert dedup["recall"] >= 0.8 and dedup["precision"] >= 0.8, dedup
    # stage 6: the pruned teacher is really smaller, saved, and reloadable
    deploy = reports["deploy"]["methods"]
    assert deploy["importance_topk"]["parameters"] < deploy["teacher"]["parameters"]
    assert deploy["importance_topk"]["weight_bytes"] < deploy["teacher"]["weight_bytes"]
    # summary and ledger
    summary = (work / "reports" / "summary.md").read_text()
    assert all(f"| {s} |" in summary for s in STAGES)
    ledger = json.loads((work / "metrics" / "ledger.json").read_text())
    assert set(ledger["stages"]) == set(STAGES)
    # MLflow: one run per stage under one pipeline run; champion alias set
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    runs = mlflow.search_runs(experiment_names=["qlife-test"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("qlife.kind") == "pipeline"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == sorted(STAGES)
    client = mlflow.MlflowClient()
    for name in ("qlife-student", "qlife-teacher-pruned"):
        decision = reports["deploy"]["registry"][name]
        if decision["promoted"]:
            assert int(client.get_model_version_by_alias(name, "champion").version) == decision["version"]
    assert any(d["promoted"] for d in reports["deploy"]["registry"].values())


def test_registered_student_predicts_text(lifecycle_run):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    model = mlflow.pyfunc.load_model("models:/qlife-teacher-pruned/1")
    out = model.predict(pd.DataFrame({"text": ["the striker scored twice", "a new vaccine trial"]}))
    assert list(out.columns) == ["label", "label_name", "score"] and len(out) == 2


def test_monitor_flow_alarm_and_no_retrain(lifecycle_run):
    from flows.monitor import monitor

    work, _ = lifecycle_run
    dvc_owned = (work / "metrics" / "monitor.json").read_text()
    result = monitor(params_file="params.yaml", live_dir=str(work / "data" / "live"),
                     retrain_on_drift=False, use_dvc=False)
    assert result["lifecycle"] is None and result["retrain"] == bool(result["alarms"])
    # an ad-hoc window set is scored into reports/monitoring/<time>/, never over DVC's outputs
    (out,) = (work / "reports" / "monitoring").iterdir()
    drift = json.loads((out / "drift.json").read_text())
    assert set(drift) == {"window-000", "window-001"}
    assert result["alarms"] == [w for w, r in drift.items() if r["alarm"]]
    assert (work / "metrics" / "monitor.json").read_text() == dvc_owned
    # retraining disabled: no feedback promoted into the corpus
    assert not list((work / "data" / "incoming").glob("*.jsonl"))
    # same data, same seed as the lifecycle's monitor stage: the same p-values
    staged = json.loads(dvc_owned)["methods"]["rbf_mmd"]
    assert {w: r["mmd_p_value"] for w, r in drift.items()} == {w: r["mmd_p_value"] for w, r in staged.items()}


def test_gate_keeps_champion_on_low_quality_or_open_alarm(lifecycle_run):
    import mlflow

    from qlife import tracking
    from qlife.params import Gate, Tracking

    cfg = Tracking(uri="sqlite:///mlflow.db", experiment="qlife-test")
    mlflow.set_tracking_uri(cfg.uri)
    client = mlflow.MlflowClient()
    work, paths = lifecycle_run
    registry = json.loads(Path(paths["deploy"]).read_text())["registry"]
    name = next(n for n, d in registry.items() if d["promoted"])
    before = client.get_model_version_by_alias(name, "champion").version
    source = client.get_model_version(name, before).source
    low = tracking.register_and_gate(cfg, source, name, 0.1, Gate(min_accuracy=0.5))
    assert not low["promoted"] and "min_accuracy" in low["reasons"][0]
    blocked = tracking.register_and_gate(cfg, source, name, 0.99, Gate(), ["open drift alarm on window-001"])
    assert not blocked["promoted"] and blocked["reasons"] == ["open drift alarm on window-001"]
    assert client.get_model_version_by_alias(name, "champion").version == before
    ok = tracking.register_and_gate(cfg, source, name, 0.99, Gate())
    assert ok["promoted"]
    assert int(client.get_model_version_by_alias(name, "champion").version) == ok["version"]
