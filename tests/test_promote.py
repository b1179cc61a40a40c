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


def _fake_log(cfg, name, kind, artifacts, example, run_id=None, metrics=None, tags=None, inference=None) -> str:
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
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "deploy.json").write_text(json.dumps(_deploy()))
    (reports / "monitor.json").write_text(json.dumps({"decision": {"alarms": []}}))
    (tmp_path / "params.yaml").write_text(json.dumps({
        "tracking": {"uri": "sqlite:///mlflow.db", "experiment": "promote-test"}}))
    return parse_params({"tracking": {"uri": "sqlite:///mlflow.db", "experiment": "promote-test"}})


def _registry_champion(params, name: str = NAME) -> int | None:
    current = tracking.champion(params.tracking, name)
    return current and current["version"]


@pytest.mark.slow  # ~22 s: make test-slow
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
    Path("reports/deploy.json").write_text(json.dumps(_deploy(quality=0.31)))  # at the majority baseline
    second = promote.promote(params)["models"][NAME]
    assert not second["promoted"] and second["version"] == 2 and second["champion"] == 1
    assert _registry_champion(params) == 1


def test_advice_for_an_unusable_deploy_report_is_a_forced_rerun(work, capsys):
    Path("reports/deploy.json").write_text(json.dumps({"decision": {}}))
    with pytest.raises(SystemExit) as exit_:
        promote.main([])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and "dvc repro --force deploy" in err and "dvc checkout" not in err
    Path("reports/deploy.json").write_text('{"decision": ')  # truncated
    with pytest.raises(SystemExit):
        promote.main([])
    err = capsys.readouterr().err
    assert "reports/deploy.json" in err and "dvc checkout" not in err and "dvc repro --force deploy" in err


# ------------------------------------------------------------------------------------------------ evidence


def _verdict(quantum: str, twin: str, best: str, values: dict[str, list[float]], metric: str = "macro_f1") -> dict:
    from qlife.verdict import paired_seeds, verdict

    return verdict(paired_seeds(values, metric), quantum, twin, classical=[twin, best])


def _lineage_reports(tmp: Path) -> dict[str, dict]:
    """Every step's report as the stages write them (a verdict each; deploy's and compress's decisions)."""
    folder = tmp / "students" / "vqc"
    folder.mkdir(parents=True)
    (folder / "student.json").write_text(json.dumps({"kind": "vqc", "n_qubits": 6, "layers": 2, "input": "teacher"}))
    cand = {"metric": "macro_f1", "quality": 0.9, "accuracy": 0.9, "backend": "torch-cpu", "kind": "classifier"}
    deploy = {"stage": "deploy", "decision": {
        "applied": "qubo_heads0.5_ffn0.3", "method": "qubo", "heads_sparsity": 0.5, "ffn_sparsity": 0.3,
        "recovery_steps": 0, "majority_baseline": 0.3, "candidates": {
            "pruned_teacher": {**cand, "artifacts": {"model": "data/models/pruned"}},
            "vqc_student": {**cand, "kind": "student", "backend": "statevector",
                            "artifacts": {"model": "data/models/teacher", "student": str(folder)}}}},
        "verdict": _verdict("qubo", "diagonal", "wanda", {"qubo": [0.912, 0.914, 0.913], "diagonal": [0.90, 0.90, 0.90],
                                                          "wanda": [0.905, 0.90, 0.91]})}
    compress = {"stage": "compress", "decision": {"applied": "mpo_disentangler_x4", "candidates": {
        "compressed_teacher": {**cand, "artifacts": {"model": "data/models/compressed"}}}},
        "verdict": _verdict("mpo_disentangler", "mpo", "svd", {"mpo_disentangler": [0.80, 0.82, 0.81],
                                                               "mpo": [0.84, 0.85, 0.86], "svd": [0.83, 0.84, 0.85]})}
    seeds = {"q": [0.71, 0.70, 0.72], "twin": [0.70, 0.71, 0.72], "other": [0.60, 0.61, 0.62]}
    out = {step: {"stage": step, "verdict": _verdict("q", "twin", "other", seeds)}
           for step in ("curate", "encode", "search", "train", "distill")}
    out["curate"]["decision"] = {"applied": "quantum"}
    out["search"]["decision"] = {"found_by": "fmqa"}
    out["train"]["summary"] = {"head": "quantum", "finetune": "full"}
    out["distill"]["verdict"] = _verdict("vqc_student", "vqc_classical_twin", "classical_student",
                                         {"vqc_student": [0.60, 0.61, 0.62], "vqc_classical_twin": [0.70, 0.71, 0.72],
                                          "classical_student": [0.80, 0.81, 0.82]})
    from qlife.verdict import no_verdict

    out["monitor"] = {"stage": "monitor", "decision": {"alarms": []},
                      "verdict": no_verdict("quantum_fidelity", "rbf_median", "no ground truth",
                                            metric="balanced_accuracy")}
    return {**out, "deploy": deploy, "compress": compress}


def test_each_version_carries_its_methods_verdicts_and_hashes(work, tmp_path):
    params = work
    reports = _lineage_reports(tmp_path)
    for step, report in reports.items():
        (tmp_path / "reports" / f"{step}.json").write_text(json.dumps(report))
    out = promote.promote(params)["models"]
    client = mlflow.MlflowClient(tracking_uri=tracking.store_uri("sqlite:///mlflow.db"))
    tags = {name: client.get_model_version(name, str(m["version"])).tags for name, m in out.items()}
    pruned, compressed, vqc = (tags[n] for n in ("qlife-teacher-pruned", "qlife-teacher-compressed",
                                                 "qlife-vqc-student"))
    # which methods made it
    assert pruned["qlife.method"] == "pruning qubo: heads 0.5, ffn 0.3 (qubo_heads0.5_ffn0.3)"
    assert compressed["qlife.method"] == "compression mpo_disentangler_x4"
    assert vqc["qlife.method"] == "distillation: vqc student, 6 qubits, 2 layers, input teacher"
    assert vqc["qlife.student_kind"] == "vqc" and "qlife.student_kind" not in pruned
    assert pruned["qlife.lineage"] == ("curate (quantum) > encode > search (found by fmqa) > train (head quantum, "
                                       "finetune full) > deploy (qubo_heads0.5_ffn0.3); monitor")
    # the verdicts of its lineage, in short form, with the figures of the reports
    lo, hi = reports["deploy"]["verdict"]["difference"]["quantum_minus_twin"]["ci95"]
    assert pruned["qlife.verdict.deploy"] == (f"ahead: qubo 0.913 vs diagonal 0.900 (+0.013 [{lo:+.3f}, {hi:+.3f}]) "
                                              "macro_f1; vs best classical wanda 0.905: tie")
    assert 0 < lo < 0.013 < hi
    assert compressed["qlife.verdict.compress"].startswith("behind: mpo_disentangler 0.810 vs mpo 0.850 (-0.040 [")
    assert vqc["qlife.verdict.distill"].startswith("behind: vqc_student 0.610 vs vqc_classical_twin 0.710 (-0.100")
    assert "vs best classical classical_student 0.810: behind" in vqc["qlife.verdict.distill"]
    assert pruned["qlife.verdict.train"].startswith("tie: q 0.710 vs twin 0.710 (+0.000 [")
    for t in tags.values():  # monitor's verdict on every version; each lineage's steps, and no other
        assert t["qlife.verdict.monitor"] == "no ground truth: quantum_fidelity vs rbf_median not judged"
        assert all(len(v) <= 500 for v in t.values())
    assert {k for k in pruned if k.startswith("qlife.verdict.")} == {
        f"qlife.verdict.{s}" for s in ("curate", "encode", "search", "train", "deploy", "monitor")}
    assert "qlife.verdict.deploy" not in compressed and "qlife.verdict.compress" in compressed
    assert {"qlife.verdict.distill", "qlife.verdict.deploy"} <= set(vqc) and "qlife.verdict.compress" not in vqc
    assert vqc["qlife.lineage"].endswith("> train (head quantum, finetune full) > distill > deploy (offered); monitor")
    # the data and code hashes: the same for every version of the run, and what their definitions give
    from qlife import evidence
    from qlife.stage import data_hash

    digest, n = evidence.code_hash()
    assert n > 50 and all(t["qlife.code_hash"] == digest for t in tags.values())
    assert all(t["data_hash"] == data_hash(params) and t["git_commit"] for t in tags.values())
    assert pruned["qlife.code_state"].startswith(("clean at git ", "uncommitted changes in qlife/, stages/ since git",
                                                  "not a git checkout"))
    # the same as evidence.json on the version's run
    run_id = client.get_model_version("qlife-teacher-pruned", str(out["qlife-teacher-pruned"]["version"])).run_id
    record = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/evidence.json"))
    assert record["tags"] == {k: v for k, v in pruned.items() if k != "gate"}  # the gate is judged after
    assert record["method"] == pruned["qlife.method"]
    assert [s["step"] for s in record["lineage"]] == ["curate", "encode", "search", "train", "deploy", "monitor"]
    assert record["lineage"][4]["verdict"] == reports["deploy"]["verdict"]
    assert record["code"]["code_hash"] == digest and "md5sum" in record["code"]["code_hash_of"]


def test_a_step_without_a_report_is_said_so_on_the_version(work):
    params = work  # only deploy's and monitor's reports exist (no verdict in either)
    out = promote.promote(params)["models"][NAME]
    tags = mlflow.MlflowClient(tracking_uri=tracking.store_uri("sqlite:///mlflow.db")).get_model_version(
        NAME, str(out["version"])).tags
    assert tags["qlife.verdict.curate"] == "(not run: no reports/curate.json)"
    assert tags["qlife.verdict.deploy"] == tags["qlife.verdict.monitor"] == "(no verdict in this step's report)"
    assert tags["qlife.method"] == "distillation: mlp student" and tags["qlife.student_kind"] == "mlp"


def test_code_hash_is_md5sum_of_the_files_md5sums(tmp_path):
    """The definition the tag's documentation gives, checked against coreutils on a small tree."""
    import shutil
    import subprocess

    from qlife import evidence

    for rel, text in (("qlife/a.py", "a\n"), ("qlife/sub/b.py", "b"), ("stages/c.py", "c"),
                      ("qlife/__pycache__/a.cpython-312.pyc", "junk")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    digest, n = evidence.code_hash(tmp_path)
    assert n == 3
    if shutil.which("md5sum"):
        shell = subprocess.run("find qlife stages -type f ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs md5sum "
                               "| md5sum", shell=True, cwd=tmp_path, capture_output=True, text=True, check=True)
        assert shell.stdout.split()[0][:12] == digest
    (tmp_path / "qlife/sub/b.py").write_text("b2")
    assert evidence.code_hash(tmp_path)[0] != digest


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
    (Path("reports") / "monitor.json").write_text(json.dumps({"decision": {"alarms": ["window-001"]}}))
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
