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

# the seven stages on the thread runner take ~100 s on 2 cores: `make test-slow` runs them (CI's `make test` keeps
# the flow's refusal and the gate's rules)
SLOW = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def lifecycle_run(harness, tiny_teacher, tmp_path_factory):
    """The lifecycle flow on the default task runner (threads): every step through `.submit()`, the stages' own
    parallel maps serial in their processes. The same flow on Dask: tests/flows/test_lifecycle_dask.py (slow)."""
    from flows.lifecycle import lifecycle_with_runner

    work = tmp_path_factory.mktemp("lifecycle")
    (work / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict(tiny_teacher)))
    old = os.getcwd()
    os.chdir(work)
    try:
        yield work, lifecycle_with_runner(params_file="params.yaml", use_dvc=False)
    finally:
        os.chdir(old)


@SLOW
def test_lifecycle_runs_on_the_thread_runner_by_default(lifecycle_run):
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.common import task_runner
    from qlife.params import read_params

    work, paths = lifecycle_run
    assert isinstance(task_runner(read_params(work / "params.yaml").orchestration), ThreadPoolTaskRunner)
    report = json.loads(Path(paths["monitor"]).read_text())
    assert report["summary"]["windows"] == 2 and report["parallel"]["placement"] == "serial"


@SLOW
def test_lifecycle_flow_end_to_end(lifecycle_run):
    import mlflow

    from qlife.params import read_params
    from qlife.stage import STAGES, STEPS, stage_reports

    work, paths = lifecycle_run
    assert list(paths) == list(STEPS)  # deploy's three steps (pruning, compression, serving cost) among them
    reports = stage_reports(read_params(work / "params.yaml"))  # the seven lifecycle stages, deploy's steps merged
    assert list(reports) == list(STAGES)
    for stage, report in reports.items():
        total = report["cost"]["total"]
        assert total["wall_s"] > 0 and total["energy_kwh"] > 0, stage
    # stage 1: planted duplicates found on the tiny generated corpus
    dedup = reports["curate"]["methods"]["classical"]
    assert dedup["recall"] >= 0.8 and dedup["precision"] >= 0.8, dedup
    # stage 6: the pruned teacher is really smaller, saved, and reloadable; QUBO pruning beside every baseline
    # at equal sparsity, per unit kind
    deploy = reports["deploy"]["methods"]
    assert deploy["pruned"]["parameters"] < deploy["teacher"]["parameters"]
    assert deploy["pruned"]["weight_bytes"] < deploy["teacher"]["weight_bytes"]
    from qlife.loading import load_saved
    from qlife.methods.pruning import head_counts

    saved = load_saved(work / "data" / "models" / "pruned")
    assert saved.kind == "pruned" and head_counts(saved.model) == [1, 1]  # 2 heads per layer at sparsity 0.5
    for kind, rep in reports["deploy"]["units"].items():
        methods = rep["sparsity"]["0.5"]["methods"]
        assert set(methods) == {"magnitude", "activation", "wanda", "random", "diagonal", "qubo"}, kind
        assert len({tuple(m["kept_per_layer"]) for m in methods.values()}) == 1, kind  # equal sparsity
        assert methods["qubo"]["raw_feasible"] and methods["qubo"]["energy_gap"] >= -1e-9
    # stage 6 compression: MPO, MPO + disentanglers, SVD and FFN pruning at the same parameter budget; the saved
    # compressed model reloads through load_saved with the same logits and carries its circuits
    comp = reports["deploy"]["compression"]["ratios"]["3"]["methods"]
    assert set(comp) == {"mpo", "mpo_disentangled", "prune"}  # the quick profile (svd: the full one)
    dense = reports["deploy"]["compression"]["dense_parameters"]
    for m, row in comp.items():
        assert row["compressed_layer_parameters"] <= dense / 3 + 1e-9 and row["ratio_achieved"] >= 3 - 1e-9, m
        assert 0 <= row["accuracy"] <= 1, m
    assert comp["mpo_disentangled"]["circuits"]["statevector_max_abs_diff"] < 1e-5
    compressed = deploy["compressed"]
    assert compressed["reload_max_abs_logit_diff"] <= 1e-5 and compressed["circuit_files"] == 4  # 2 layers x 2
    assert compressed["parameters"] < deploy["teacher"]["parameters"]
    assert load_saved(work / "data" / "models" / "compressed").model.config.qlife_compressed
    assert plot_rows(work, "compress") and {"parameters", "accuracy", "method"} <= set(plot_rows(work, "compress")[0])
    # stage 7: the held-out reference, quality without labels beside the truth, the stream's first two windows
    mon = reports["monitor"]
    assert reports["curate"]["splits"]["reference"] > 0
    for role in ("teacher", "student_static"):
        q = mon["quality"][role]
        assert 0 <= q["val_accuracy"] <= 1 and q["calibration"]["method"] == "temperature"
        for w in ("window-000", "window-001"):
            row = q["windows"][w]
            assert row["ci95"][0] <= row["estimate"] <= row["ci95"][1]
            assert row["labelled"]["n"] == 120 and 0 <= row["labelled"]["true"] <= 1  # the generator's labels
    assert mon["stream"]["windows_since_reset"] == 2 and not mon["stream"]["alarm"]
    assert mon["methods"]["domain_classifier"]["per_document"]["auc_drifted_vs_clean"] is not None
    assert set(mon["methods"]["rff"]["p_values"]) == {"window-000", "window-001"}
    # summary and ledger
    summary = (work / "reports" / "summary.md").read_text()
    assert all(f"| {s} |" in summary for s in STAGES)
    ledger = json.loads((work / "metrics" / "ledger.json").read_text())
    assert set(ledger["stages"]) == set(STAGES)
    for key in ("wall_s", "energy_kwh"):  # the ledger sums what each stage measured
        assert ledger["total"][key] == pytest.approx(sum(r["cost"]["total"][key] for r in reports.values())), key
    # MLflow: one run per stage under one pipeline run; champion alias set
    mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    runs = mlflow.search_runs(experiment_names=["qlife-test"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("qlife.kind") == "pipeline"]
    assert len(parents) == 1
    # the pipeline run shows the verdict table whole (its description), a short verdict per stage, the page
    pipe = parents[0]
    assert "| stage | quantum | classical twin |" in pipe.data.tags["mlflow.note.content"]
    assert {f"qlife.verdict.{s}" for s in ("curate", "encode", "train", "distill", "deploy")} <= set(pipe.data.tags)
    assert pipe.data.tags["qlife.verdict.deploy"].split(":")[0] in ("ahead", "tie", "behind")
    page = (work / "reports" / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 8 and "https://" not in page
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(pipe.info.run_id)}
    assert {"summary.md", "energy.md", "index.html"} <= logged
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["stage"] for r in children) == sorted([*STEPS, "promote"])
    client = mlflow.MlflowClient()
    # promotion ran after the stages (never inside deploy), under the same pipeline run, FINISHED
    promoted = json.loads((work / "metrics" / "promote.json").read_text())
    assert set(promoted["models"]) == {"qlife-student", "qlife-vqc-student", "qlife-teacher-pruned",
                                       "qlife-teacher-compressed",
                                       "qlife-student-static", "qlife-vqc-student-static"}
    assert "registry" not in reports["deploy"] and "candidates" in reports["deploy"]["decision"]
    serving = reports["deploy"]["serving"]["models"]  # every candidate and the teacher, through the pyfunc
    assert set(serving) == {"teacher", *reports["deploy"]["decision"]["candidates"]}
    assert all(r["ms_per_request_batch1"] > 0 and "speedup_vs_teacher" in r for r in serving.values())
    assert reports["deploy"]["serving"]["pareto"] and "worth_deploying" in reports["deploy"]["serving"]
    # tiny params: in process (RSS growth is then shared with the flow's other threads: any sign)
    assert all(not r["isolated"] and isinstance(r["rss_growth_mb"], float) for r in serving.values())
    for name, decision in promoted["models"].items():
        version = client.get_model_version(name, str(decision["version"]))
        assert version.tags["metric"] == "macro_f1" and version.tags["data_hash"]
        assert version.tags["git_commit"] and version.tags["dvc_lock_deploy_inputs"]
        if decision["promoted"]:
            assert int(client.get_model_version_by_alias(name, "champion").version) == decision["version"]
        else:
            assert decision["reasons"] and version.tags["gate"] != "passed"
    assert parents[0].info.status == "FINISHED"
    promote_runs = [r for r in children if r.data.tags["stage"] == "promote"]
    assert len(promote_runs) == 1


@SLOW
def test_registered_student_predicts_text(lifecycle_run):
    from types import SimpleNamespace

    import mlflow

    from qlife.serving import QlifeTextModel

    mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    work, _ = lifecycle_run
    texts = ["the striker scored twice", "a new vaccine trial"]
    out = mlflow.pyfunc.load_model("models:/qlife-teacher-pruned/1").predict(texts)
    assert len(out) == 2 and all(set(row) == {"label", "label_name", "score"} for row in out)
    # the registered model is deploy's pruned model on disk: the same labels and scores, served in process
    served = QlifeTextModel()
    served.load_context(SimpleNamespace(model_config={"kind": "classifier"},
                                        artifacts={"model": str(work / "data" / "models" / "pruned")}))
    local = served.predict(None, texts)
    assert [r["label"] for r in out] == [r["label"] for r in local]
    assert [r["score"] for r in out] == pytest.approx([r["score"] for r in local], abs=1e-6)


@SLOW
def test_monitor_flow_alarm_and_no_retrain(lifecycle_run):
    from flows.monitor import monitor

    work, _ = lifecycle_run
    dvc_owned = [(work / d / "monitor.json").read_text() for d in ("metrics", "reports")]
    result = monitor(params_file="params.yaml", live_dir=str(work / "data" / "live"),
                     retrain_on_drift=False, use_dvc=False)
    assert result["lifecycle"] is None and result["retrain"] == bool(result["alarms"])
    # an ad-hoc window set is scored into reports/monitoring/<time>/, never over DVC's outputs
    (out,) = (work / "reports" / "monitoring").iterdir()
    drift = json.loads((out / "drift.json").read_text())
    assert set(drift) == {"window-000", "window-001"}
    adhoc = json.loads((out / "monitor.json").read_text())
    assert result["alarms"] == adhoc["decision"]["alarms"]  # the stream's or an estimated quality drop's
    assert adhoc["decision"]["per_window_alarms"] == [w for w, r in drift.items() if r["alarm"]]
    assert adhoc["stream"]["restarted"] == "first run" and (out / "state" / "monitor_stream.json").exists()
    assert [(work / d / "monitor.json").read_text() for d in ("metrics", "reports")] == dvc_owned
    # retraining disabled: no feedback promoted into the corpus
    assert not list((work / "data" / "incoming").glob("*.jsonl"))
    # same data, same seed as the lifecycle's monitor stage: the same p-values
    staged = json.loads(dvc_owned[1])["methods"]
    assert {w: r["mmd_p_value"] for w, r in drift.items()} == staged["rbf"]["p_values"]
    for t in staged:  # every configured test, not only the alarm's (ocsvm, residual, new_words: per-document scores)
        if "p_values" in staged[t]:
            assert {w: r["tests"][t]["p_value"] for w, r in drift.items()} == staged[t]["p_values"]


@SLOW
def test_a_drifted_window_in_place_for_many_runs_retrains_once(lifecycle_run, monkeypatch):
    """The hourly schedule sees the same drifted window again and again: its labelled records join the corpus once
    and the lifecycle retrains once; later runs find the window answered."""
    import flows.monitor as monitor_flow
    from qlife.params import read_params

    work, _ = lifecycle_run
    raw = yaml.safe_load((work / "params.yaml").read_text())
    # two windows are too few for the stream alarm, and the tiny teacher's random features hide the drift: decide
    # per window at a level where (almost) any window alarms
    raw["monitor"].update(decide="per_window", alpha=0.99)
    (work / "hourly.yaml").write_text(yaml.safe_dump(raw))
    assert read_params(work / "hourly.yaml").monitor.decide == "per_window"
    started: list[str] = []
    monkeypatch.setattr(monitor_flow, "lifecycle_with_runner",
                        lambda params_file, use_dvc: started.append(params_file) or {"retrained": True})
    incoming = work / "data" / "incoming"
    runs = [monitor_flow.monitor(params_file="hourly.yaml", use_dvc=False) for _ in range(3)]
    alarmed = runs[0]["alarms"]
    assert alarmed and all(r["alarms"] == alarmed for r in runs), [r["alarms"] for r in runs]
    assert started == ["hourly.yaml"] and [r["retrained"] for r in runs] == [True, False, False]
    assert runs[0]["feedback"]["added"] == alarmed
    assert runs[1]["feedback"]["already"] == runs[2]["feedback"]["already"] == alarmed
    assert sorted(f.stem for f in incoming.glob("*.jsonl")) == sorted(alarmed)
    for f in incoming.glob("*.jsonl"):  # the module's other tests see no feedback
        f.unlink()


def test_gate_refuses_majority_only_low_quality_and_open_alarm():
    from qlife.params import Gate
    from qlife.promote import gate

    g = Gate()  # margin 0.05 over the majority-class baseline, 0.02 below the champion, alarms block
    # a model that predicts only the majority class scores exactly the majority baseline: refused
    majority_only = gate(0.45, majority=0.45, champion=None, alarms=[], g=g, metric="macro_f1")
    assert majority_only and "majority-class baseline" in majority_only[0]
    assert gate(0.80, 0.45, champion=None, alarms=[], g=g, metric="macro_f1") == []
    assert "champion" in gate(0.80, 0.45, champion=0.90, alarms=[], g=g, metric="macro_f1")[0]
    blocked = gate(0.99, 0.45, None, ["window-001"], g, "macro_f1")
    assert len(blocked) == 1 and "window-001" in blocked[0]
    assert gate(0.99, 0.45, None, ["window-001"], Gate(block_on_open_drift=False), "macro_f1") == []


@SLOW
def test_promote_keeps_champion_on_a_majority_only_candidate(lifecycle_run):
    """A candidate at the majority baseline is registered but not promoted; the champion stays."""
    import mlflow

    from qlife import promote
    from qlife.io import write_json
    from qlife.params import read_params

    work, paths = lifecycle_run
    params = read_params(work / "params.yaml")
    mlflow.set_tracking_uri(f"sqlite:///{Path('mlflow.db').resolve()}")
    client = mlflow.MlflowClient()
    name = "qlife-teacher-pruned"
    before = promote.tracking.champion(params.tracking, name)
    deploy = json.loads(Path(paths["deploy"]).read_text())
    cand = deploy["decision"]["candidates"]["pruned_teacher"]
    majority = deploy["decision"]["majority_baseline"]
    deploy["decision"]["candidates"] = {"pruned_teacher": {**cand, "quality": majority}}
    write_json(paths["deploy"], deploy)
    out = promote.promote(params)
    decision = out["models"][name]
    assert not decision["promoted"] and "majority-class baseline" in decision["reasons"][0]
    after = promote.tracking.champion(params.tracking, name)
    assert (after and after["version"]) == (before and before["version"])
    assert client.get_model_version(name, str(decision["version"])).tags["gate"].startswith("macro_f1")


def plot_rows(work: Path, name: str) -> list[dict]:
    return json.loads((work / "reports" / "plots" / f"{name}.json").read_text())


def test_the_flow_refuses_before_any_step(tmp_path, tiny_teacher, monkeypatch):
    """The lifecycle flow runs the preflight first: a VQC the simulator cannot hold stops it before curate writes
    anything (the flow's own function, no Prefect server needed)."""
    from flows.lifecycle import lifecycle
    from qlife.preflight import PreflightError

    raw = tiny_params_dict(tiny_teacher)
    raw["distill"]["qubits"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PreflightError, match=r"distill\.qubits"):
        lifecycle.fn("params.yaml", use_dvc=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()
