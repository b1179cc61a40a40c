"""Every MLflow run ends with a status (issue 35 item 2): SIGTERM/SIGINT close a stage's run and its own parent
KILLED, SIGTERM on the pipeline driver stops its steps' process group and closes the pipeline run KILLED, a
SIGKILLed process's runs are closed by the next start (runs of other hosts or of live processes are not), and an
unusable store or a refused shared store is one sentence with exit 1, before any work."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from qlife import cli, tracking
from qlife.params import Tracking
from tests.conftest import tiny_params_dict

ROOT = Path(__file__).resolve().parents[2]
TRACKING = tiny_params_dict("unused")["tracking"]  # sqlite:///mlflow.db in the test's cwd


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> bytes:
    """An MLflow SQLite store with its schema and no experiment of ours (creating the schema takes seconds;
    each test starts from a copy)."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db.read_bytes()


@pytest.fixture()
def cfg(tmp_path, monkeypatch, empty_store) -> Tracking:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ENV_PARENT, raising=False)
    (tmp_path / "mlflow.db").write_bytes(empty_store)
    return Tracking(**TRACKING)


def _runs(cfg: Tracking) -> dict[str, mlflow.entities.Run]:
    """Every run of the experiment by kind (pipeline, stage); one of each expected unless told."""
    mlflow.set_tracking_uri(tracking.store_uri(cfg.uri))
    return {r.data.tags["qlife.kind"]: r
            for r in mlflow.search_runs(experiment_names=[cfg.experiment], output_format="list")}


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(tracking.ENV_PARENT, None)
    return env


HOLD = """
import pathlib, time
from qlife import tracking
from qlife.params import Tracking
with tracking.stage_run(Tracking(**{cfg!r}), "curate", {{"x": 1}}):
    pathlib.Path("ready").write_text("1")
    time.sleep(120)
"""


def _stoppable() -> None:
    """The child starts with SIGINT's default action: run from a non-interactive shell's background job (make
    in CI), the tests inherit SIGINT ignored, and qlife leaves an ignored signal ignored (as nohup asks)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _hold_stage_run(tmp_path: Path) -> subprocess.Popen:
    """A process with a real `tracking.stage_run` open (its own parent too), once both runs exist."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD.format(cfg=TRACKING)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_stoppable)
    deadline = time.monotonic() + 90
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "the stage run never opened"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_closes_the_stage_run_and_its_own_parent_killed(cfg, tmp_path, sig):
    proc = _hold_stage_run(tmp_path)
    running = _runs(cfg)
    assert {k: r.info.status for k, r in running.items()} == {"pipeline": "RUNNING", "stage": "RUNNING"}
    for run in running.values():  # tagged with the opening process
        assert run.data.tags["qlife.pid"] == str(proc.pid)
        assert run.data.tags["qlife.host"] == socket.gethostname() and run.data.tags["qlife.process_start"]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert f"curate: stopped by {sig.name}" in err and "Traceback" not in err
    runs = _runs(cfg)
    assert {k: r.info.status for k, r in runs.items()} == {"pipeline": "KILLED", "stage": "KILLED"}
    for run in runs.values():
        assert run.info.end_time is not None and run.info.end_time >= run.info.start_time
        assert "qlife.closed_by" not in run.data.tags  # closed by the process itself, not found orphaned


def test_sigkilled_stage_runs_are_closed_by_the_next_start(cfg, tmp_path):
    proc = _hold_stage_run(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    orphans = _runs(cfg)
    assert {k: r.info.status for k, r in orphans.items()} == {"pipeline": "RUNNING", "stage": "RUNNING"}
    live = tracking.start_pipeline(cfg, "next")  # the next start, in this (live) process
    client = mlflow.MlflowClient()
    for run in orphans.values():
        after = client.get_run(run.info.run_id)
        assert after.info.status == "KILLED" and after.info.end_time is not None
        assert after.data.tags["qlife.closed_by"].startswith(
            f"next start: process {proc.pid} on host {socket.gethostname()} is gone")
    # a stage of the live pipeline (as under `qlife.cli run`) closes nothing of a live process
    os.environ[tracking.ENV_PARENT] = live
    try:
        with tracking.stage_run(cfg, "train", {"x": 1}):
            assert client.get_run(live).info.status == "RUNNING"
    finally:
        del os.environ[tracking.ENV_PARENT]
    assert client.get_run(live).info.status == "RUNNING"


def test_only_runs_of_gone_processes_of_this_host_are_closed(cfg):
    tracking.start_pipeline(cfg, "create the store")
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(cfg.experiment).experiment_id
    dead_pid = subprocess.Popen(["true"])  # a pid that has exited (and was reaped)
    dead_pid.wait()
    me, host = tracking.owner_tags(), socket.gethostname()
    cases = {  # name: (tags, closed?)
        "gone": ({**me, "qlife.pid": str(dead_pid.pid)}, True),
        "pid reused": ({**me, "qlife.process_start": f"{float(me['qlife.process_start']) - 3600:.2f}"}, True),
        "other host": ({**me, "qlife.pid": str(dead_pid.pid), "qlife.host": f"not-{host}"}, False),
        "other pid namespace": ({**me, "qlife.pid": str(dead_pid.pid), "qlife.pid_namespace": "pid:[1]"}, False),
        "held open": ({**me, "qlife.pid": str(dead_pid.pid), "qlife.held_open": "pipeline-start"}, False),
        "alive": (me, False),
        "no process tags": ({}, False),
    }
    ids = {name: client.create_run(exp, run_name=name, tags=tags).info.run_id for name, (tags, _) in cases.items()}
    with tracking.stage_run(cfg, "curate", {"x": 1}):
        pass
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {name: "KILLED" if closed else "RUNNING" for name, (_, closed) in cases.items()}
    assert "process_start" not in client.get_run(ids["gone"]).data.tags["qlife.closed_by"]


DRIVER = """
import pathlib, sys
from qlife.params import read_params
from qlife.pipeline import run_child, run_pipeline
child = ("import os, pathlib, subprocess, sys, time; "
         "os.dup2(os.open(os.devnull, os.O_WRONLY), 2); "  # the steps' own KeyboardInterrupt tracebacks
         "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
         "pathlib.Path('pids.tmp').write_text(f'{os.getpid()} {g.pid}'); pathlib.Path('pids.tmp').rename('pids'); "
         "time.sleep(120)")
run_pipeline(read_params("params.yaml"), lambda run_id: run_child([sys.executable, "-c", child]))
pathlib.Path("returned").write_text("1")
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"  # reaped by init soon after


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_pipeline_driver_stops_its_steps_and_closes_the_run_killed(cfg, tmp_path, sig):
    """SIGINT too: polars (imported by MLflow) wraps SIGINT with SA_RESTART, so a blocking wait on the steps
    would run the handler only when they end."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": TRACKING}))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_stoppable)
    deadline = time.monotonic() + 90
    while not (tmp_path / "pids").exists():  # the steps (a child and its own child) are running
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    child, grandchild = map(int, (tmp_path / "pids").read_text().split())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig and f"run: stopped by {sig.name}" in err, err[-2000:]
    assert "Traceback" not in err
    assert not (tmp_path / "returned").exists()
    deadline = time.monotonic() + 10
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)  # the signal reached the steps' whole process group
    (run,) = _runs(cfg).values()
    assert run.data.tags["qlife.kind"] == "pipeline" and run.info.status == "KILLED" and run.info.end_time


def _store_with_runs(cfg: Tracking) -> Path:
    with tracking.stage_run(cfg, "curate", {"x": 1}):
        tracking.log_report({"summary": {"f1": 0.9}, "more": list(range(3))})
    return Path("mlflow.db")


def _damage_a_page(db: Path) -> None:
    """Random bytes over one page in the middle (a damaged sector): MLflow opens such a store and a stage ran
    on it with exit 0."""
    data = bytearray(db.read_bytes())
    start = (len(data) // 4096 // 2) * 4096
    data[start:start + 4096] = os.urandom(4096)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "a damaged page"])
def test_a_corrupt_store_is_refused_before_work(cfg, tmp_path, monkeypatch, capsys, damage):
    db = _store_with_runs(cfg)
    if damage == "random bytes":
        db.write_bytes(os.urandom(64 * 1024))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    else:
        _damage_a_page(db)
    monkeypatch.setattr(tracking, "_READY", set())  # a new process: the store is checked at its first use
    capsys.readouterr()
    worked = []
    with pytest.raises(tracking.TrackingError, match=r"^mlflow\.db is not a usable MLflow store \(sqlite") as err:
        with tracking.stage_run(cfg, "train", {"x": 1}):
            worked.append(1)
    assert not worked and "mv mlflow.db mlflow.db.bad" in str(err.value)
    # the command line: one sentence, exit 1; the way out it names works
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": TRACKING}))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["pipeline-start"])
    out = capsys.readouterr()
    assert exit_.value.code == 1 and out.err.startswith("pipeline-start: mlflow.db is not a usable MLflow store")
    assert "Traceback" not in out.err and out.err.count("\n") == 1


def test_the_way_out_of_a_corrupt_store_works(cfg, tmp_path, capsys):
    """What the sentence says (`mv mlflow.db mlflow.db.bad` and rerun) gives a new store."""
    Path("mlflow.db").write_bytes(os.urandom(64 * 1024))  # before this process's MLflow ever opened it
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": TRACKING}))
    with pytest.raises(SystemExit):
        cli.main(["pipeline-start"])
    assert "`mv mlflow.db mlflow.db.bad`" in capsys.readouterr().err
    subprocess.run(["mv", "mlflow.db", "mlflow.db.bad"], check=True)
    cli.main(["pipeline-start"])
    run_id = capsys.readouterr().out.strip()
    assert _runs(cfg)["pipeline"].info.run_id == run_id  # in a new store


def test_a_store_shared_with_another_clone_is_a_sentence_from_run(tmp_path, monkeypatch, capsys):
    shared = {"uri": f"sqlite:///{tmp_path}/shared.db", "experiment": "shared"}
    for clone in ("a", "b"):
        (tmp_path / clone).mkdir()
        (tmp_path / clone / "params.yaml").write_text(yaml.safe_dump({"tracking": shared}))
    monkeypatch.delenv(tracking.ENV_PARENT, raising=False)
    monkeypatch.chdir(tmp_path / "a")
    tracking.start_pipeline(Tracking(**shared))
    monkeypatch.chdir(tmp_path / "b")
    monkeypatch.setattr(cli, "run_child", lambda *a, **k: pytest.fail("dvc ran on a refused store"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("run: MLflow experiment 'shared'") and "another clone" in err
    assert "tracking.experiment" in err and "Traceback" not in err


def test_summary_of_a_truncated_report_is_a_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": TRACKING}))
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "train.json").write_text('{"summary": {"f1": 0.9}, "cost": {"tot')
    with pytest.raises(SystemExit) as exit_:
        cli.main(["summary"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.startswith("summary: reports/train.json is not valid JSON")
    assert "dvc repro --force train" in err
