"""The one place that talks to MLflow: runs, metrics, artifacts, models, the registry and its gate.

One pipeline run (parent) groups one run per stage. `make run` opens the parent before `dvc repro` and
passes its id to the stage processes in QLIFE_PIPELINE_RUN_ID; a stage run on its own opens its own
parent. Models are logged as pyfunc "models from code" (qlife/serving.py), registered, and the alias
`champion` moves only when the gate passes. Tokens come from the environment and are never logged.

Every run ends with a status. Each run qlife opens is tagged with its process (`qlife.pid`, `qlife.host`,
`qlife.process_start`); SIGTERM, SIGINT and SIGHUP while a stage run (or `qlife.pipeline.run_pipeline`) is
open close its runs KILLED and the process exits 128 + the signal (143, 130, 129: `Killed`); a run still
RUNNING whose process is gone (SIGKILL, a lost machine) is closed KILLED by the next `start_pipeline` or
`stage_run` on the same host (`close_orphans`, tag `qlife.closed_by`). A SQLite store is checked
(`PRAGMA quick_check`) before its first use in a process: a corrupt one is refused with a sentence before work.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qlife.params import Tracking

ENV_PARENT = "QLIFE_PIPELINE_RUN_ID"
CHAMPION = "champion"
_SERVING_CODE = str(Path(__file__).with_name("serving.py"))


def store_uri(uri: str) -> str:
    """A relative `sqlite:///x.db` made absolute from the working directory: MLflow caches one engine per
    URI string, so the same relative URI used from two folders in one process would share one database."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


class TrackingError(RuntimeError):
    """The MLflow store cannot be used as configured (the message says what to change)."""


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _artifact_root(cfg: Tracking) -> str:
    return cfg.artifact_location or str(Path("mlartifacts").resolve())


def _local(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(location[len("file://"):])
    return Path(location) if "://" not in location else None


def _mlflow(cfg: Tracking):
    """mlflow, pointed at the store and the experiment. A new SQLite store is created under a file lock (two
    pipelines starting at once would race on its schema); a new experiment stores artifacts in this project
    (or `tracking.artifact_location`); an existing one whose artifacts live in another folder is refused."""
    import mlflow
    from filelock import FileLock

    uri = store_uri(cfg.uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    key = (uri, cfg.experiment, os.getcwd())  # the location check depends on the project folder
    if key in _READY:  # store and experiment checked once per process and folder
        mlflow.set_experiment(cfg.experiment)
        return mlflow
    db = _sqlite_file(uri)
    lock = FileLock(f"{db}.lock", timeout=300) if db is not None else None
    if lock is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        if db is not None:
            check_store(db)
        try:
            experiment = mlflow.get_experiment_by_name(cfg.experiment)
            if experiment is None:
                mlflow.create_experiment(cfg.experiment, artifact_location=_artifact_root(cfg))
            else:
                _check_location(cfg, experiment.artifact_location)
            mlflow.set_experiment(cfg.experiment)
        except Exception as err:  # sqlalchemy's or MLflow's own kinds: a store quick_check passed but MLflow cannot use
            if db is None or not _is_database_error(err):
                raise
            raise TrackingError(_unusable(db, str(err).splitlines()[0])) from None
        _READY.add(key)
    finally:
        if lock is not None:
            lock.release()
    return mlflow


_READY: set[tuple[str, str, str]] = set()


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _unusable(db: Path, why: str) -> str:
    name = _shown(db)
    return (f"{name} is not a usable MLflow store ({why}): move it aside (`mv {name} {name}.bad`) and rerun; a new "
            "store is created (the runs and registered models of the old one are not carried over)")


def _is_database_error(err: BaseException) -> bool:
    """sqlite's DatabaseError (corrupt, not a database), through sqlalchemy or wrapped by MLflow."""
    import sqlalchemy.exc

    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (sqlite3.DatabaseError, sqlalchemy.exc.DatabaseError)):
            return "locked" not in str(err) and "busy" not in str(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def check_store(db: Path) -> None:
    """Refuse a SQLite store that SQLite itself finds corrupt (`PRAGMA quick_check`: every page of every table
    and index, ~0.25 s per 140 MB). MLflow reads only the pages it needs, so a store with a damaged metrics or
    registry page opens, and a stage runs on it and exits 0 until a later write lands there. An empty or missing
    file is a new store; a store locked by a live writer for 30 s is left to MLflow."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as err:
        if "locked" in str(err) or "busy" in str(err):
            return
        raise TrackingError(_unusable(db, f"sqlite: {err}")) from None
    if rows != [("ok",)]:
        first = str(rows[0][0]).replace("*** in database main ***", "").strip().splitlines()[0]
        raise TrackingError(_unusable(db, f"sqlite quick_check: {first}"))


def _check_location(cfg: Tracking, location: str) -> None:
    where = _local(location)
    if where is None or cfg.artifact_location is not None:
        return
    here = Path.cwd().resolve()
    if where.resolve() != here and here not in where.resolve().parents:
        raise TrackingError(f"MLflow experiment {cfg.experiment!r} in {cfg.uri} stores its artifacts in {where}, "
                            f"outside this project ({here}): another clone shares this store. Set "
                            "tracking.experiment to a new name, or tracking.artifact_location to use that folder")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- whose run is it

TAG_PID, TAG_HOST, TAG_START, TAG_PIDNS = "qlife.pid", "qlife.host", "qlife.process_start", "qlife.pid_namespace"
TAG_HELD = "qlife.held_open"  # a run meant to outlive its opener (`qlife.cli pipeline-start`): never an orphan
TAG_CLOSED_BY = "qlife.closed_by"


def _pid_namespace(pid: int | str = "self") -> str:
    try:  # containers sharing a host name and a store each have their own pids
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def owner_tags() -> dict[str, str]:
    """This process as run tags: pid, host, the process's start time (a reused pid has another) and pid
    namespace."""
    start = _process_start(os.getpid())
    return {TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname(),
            TAG_START: "" if start is None else f"{start:.2f}", TAG_PIDNS: _pid_namespace()}


def _gone(tags: dict[str, str]) -> bool:
    """Whether the process that opened a run of this host is gone: no such pid, a zombie, or a pid reused
    (another start time)."""
    import psutil

    pid = int(tags[TAG_PID])
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):  # not ours to look at: alive
        return False
    recorded = tags.get(TAG_START)
    return bool(recorded) and abs(started - float(recorded)) > 1.0


def close_orphans(client: Any) -> list[str]:
    """Close KILLED every RUNNING run in the store (all experiments) opened by a process of this host that is
    gone, tagged `qlife.closed_by`; runs of other hosts, of another pid namespace, held open on purpose, or
    without qlife's process tags are left alone. Returns the ids closed."""
    host, pidns = socket.gethostname(), _pid_namespace()
    experiments = [e.experiment_id for e in _pages(client.search_experiments)]
    if not experiments:
        return []
    query = f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}'"
    closed = []
    for run in _pages(lambda **kw: client.search_runs(experiments, query, **kw)):
        tags = run.data.tags
        if TAG_PID not in tags or TAG_HELD in tags or tags.get(TAG_PIDNS, pidns) != pidns or not _gone(tags):
            continue
        with deferred():
            client.set_tag(run.info.run_id, TAG_CLOSED_BY,
                           f"next start: process {tags[TAG_PID]} on host {host} is gone "
                           f"(closed by process {os.getpid()} at {time.strftime('%Y-%m-%d %H:%M:%S')})")
            client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def _pages(search: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


# ----------------------------------------------------------------------------- signals

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class Killed(SystemExit):
    """A stop signal arrived while a qlife run was open (raised in the main thread by `stoppable`). It is a
    SystemExit: `except Exception` does not swallow it, `finally` blocks run, and the process exits
    128 + the signal number (143 SIGTERM, 130 SIGINT, 129 SIGHUP) without a traceback."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


class _SignalState:
    depth = 0  # nested `stoppable` blocks
    defer = 0  # nested `deferred` blocks
    got: int | None = None  # the first stop signal
    raised = False  # Killed raised for it
    repeats = 0  # stop signals after the first (ignored; `qlife.pipeline.run_child` escalates on them)


_SIG = _SignalState()


def _on_signal(signum: int, frame: Any) -> None:
    if _SIG.got is not None:
        _SIG.repeats += 1
        return
    _SIG.got = signum
    if _SIG.defer == 0:
        _SIG.raised = True
        raise Killed(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def signal_repeats() -> int:
    return _SIG.repeats


def _rearm() -> None:
    """Our handlers back at the C level. A library imported inside the block can wrap one in its own handler
    with SA_RESTART (polars, imported by MLflow, does so for SIGINT): a blocking call (waitpid, a read) then
    resumes instead of returning, and ours runs only when that call ends (a stage's whole run)."""
    if _SIG.depth and _in_main_thread():
        for sig in SIGNALS:
            if signal.getsignal(sig) is _on_signal:
                signal.signal(sig, _on_signal)


@contextmanager
def stoppable() -> Iterator[None]:
    """While the block runs, SIGTERM, SIGINT and SIGHUP raise `Killed` in the main thread (a signal the process
    ignores, e.g. under nohup, stays ignored; elsewhere than the main thread this does nothing). The previous
    handlers come back after the block."""
    if not _in_main_thread():
        yield
        return
    previous = {}
    for sig in SIGNALS:
        old = signal.getsignal(sig)
        if old is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, _on_signal)
    _SIG.depth += 1
    try:
        yield
    finally:
        _SIG.depth -= 1
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        if _SIG.depth == 0:
            pending = None if _SIG.raised else _SIG.got
            _SIG.got, _SIG.raised, _SIG.repeats = None, False, 0
            if pending is not None:
                raise Killed(pending)


@contextmanager
def deferred() -> Iterator[None]:
    """A stop signal arriving inside the block is raised (`Killed`) when the block ends: opening or closing a
    run is never cut in half."""
    if not _in_main_thread():
        yield
        return
    _SIG.defer += 1
    try:
        yield
    finally:
        _SIG.defer -= 1
        _rearm()  # the block may have imported what wraps our handlers (MLflow's first calls do)
        if _SIG.defer == 0 and _SIG.got is not None and not _SIG.raised:
            _SIG.raised = True
            raise Killed(_SIG.got)


# ----------------------------------------------------------------------------- runs


def start_pipeline(cfg: Tracking, name: str | None = None, held_open: bool = False) -> str:
    """Open a parent run (left RUNNING for the stage processes) and return its id, after closing the runs of
    this host whose process is gone. `held_open`: the run outlives this process (`qlife.cli pipeline-start`),
    so it is never closed as an orphan; `pipeline-finish` closes it."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    close_orphans(client)
    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    tags = {"qlife.kind": "pipeline", "git_commit": git_commit(), **owner_tags()}
    if held_open:
        tags[TAG_HELD] = "opened by qlife.cli pipeline-start: closed by pipeline-finish"
    run = client.create_run(experiment.experiment_id, run_name=name or time.strftime("pipeline-%Y%m%d-%H%M%S"),
                            tags=tags)
    return run.info.run_id


def finish_pipeline(cfg: Tracking, run_id: str, summary: dict[str, Any] | None = None,
                    status: str = "FINISHED", note: str | None = None, tags: dict[str, str] | None = None,
                    files: list[Path] | None = None) -> None:
    """Close the pipeline run: FINISHED, FAILED when a stage (or DVC itself) failed, KILLED on a signal. `note`:
    the run's description (markdown the UI renders whole on the run's page: the verdict table); `tags` (one short
    verdict per stage); `files`: logged as the run's artifacts (summary, energy report, the report page)."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    for key, value in (summary or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            client.log_metric(run_id, key, float(value))
    for key, value in {**(tags or {}), **({"mlflow.note.content": note} if note else {})}.items():
        client.set_tag(run_id, key, value[:5000])
    for path in files or []:
        if Path(path).exists():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status)


def _end(mlflow: Any, run_id: str, status: str) -> None:
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:  # ended or replaced on the fluent stack by the code inside: close it by id
        mlflow.MlflowClient().set_terminated(run_id, status)


@contextmanager
def _open_run(mlflow: Any, **start: Any) -> Iterator[Any]:
    """`mlflow.start_run(**start)` with this process's tags, closed FINISHED, FAILED (an exception) or KILLED
    (`Killed`); opening and closing are not cut by a signal."""
    start["tags"] = {**start.get("tags", {}), **owner_tags()}
    run, status = None, "FAILED"
    try:
        with deferred():
            run = mlflow.start_run(**start)
        yield run
        status = "FINISHED"
    except Killed:
        status = "KILLED"
        raise
    finally:
        if run is not None:
            with deferred():
                _end(mlflow, run.info.run_id, status)


@contextmanager
def stage_run(cfg: Tracking, stage: str, params: dict[str, Any], data_hash: str = "") -> Iterator[Any]:
    """An MLflow run for one stage under the pipeline run; yields None when tracking is disabled.

    An exception closes the stage run FAILED and, when this stage opened its own pipeline run, that one too;
    SIGTERM, SIGINT or SIGHUP close them KILLED and exit 128 + the signal (`Killed`); a pipeline run opened by
    `qlife.cli run` is closed by it. Runs of this host whose process is gone are closed first (`close_orphans`)."""
    if not cfg.enabled:
        yield None
        return
    with stoppable():
        mlflow = _mlflow(cfg)
        parent, own, status = os.environ.get(ENV_PARENT), None, "FAILED"
        tags = {"qlife.kind": "stage", "stage": stage, "git_commit": git_commit(), "data_hash": data_hash}
        try:
            with deferred():
                if parent is None:
                    parent = own = start_pipeline(cfg, f"pipeline-{stage}-only")
                else:
                    close_orphans(mlflow.MlflowClient())
            with _open_run(mlflow, run_name=stage, parent_run_id=parent, tags=tags) as run:
                mlflow.log_params(_flatten(params))
                yield run
            status = "FINISHED"
        except Killed as stop:
            status = "KILLED"
            print(f"{stage}: stopped by {stop.name}: its MLflow run{' and its pipeline run' if own else ''} "
                  f"closed KILLED; exit {stop.code}", file=sys.stderr)
            raise
        finally:
            if own is not None:
                with deferred():
                    finish_pipeline(cfg, own, status=status)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)) and len(obj) > 8:
        out[prefix[:-1]] = f"[{len(obj)} items]"
    else:
        out[prefix[:-1]] = obj
    return out


def numeric_leaves(report: dict[str, Any]) -> dict[str, float]:
    """Report numbers as MLflow metric names (dots kept, lists skipped)."""
    return {k: float(v) for k, v in _flatten(report).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def log_report(report: dict[str, Any], artifacts: list[str | Path] = ()) -> None:
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.log_metrics(numeric_leaves(report))
    mlflow.log_text(json.dumps(report, indent=2, default=str), "report.json")
    for path in artifacts:
        if Path(path).is_file():
            mlflow.log_artifact(str(path))


# what qlife/serving.py imports to load and run any of the served models (qlife itself is the project's own
# package: `pip install -e .` of this repository); pinned to the versions installed here
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "pydantic",
                    "pyyaml", "qiskit")


def serving_requirements(packages: Sequence[str] = SERVING_PACKAGES) -> list[str]:
    """Pinned pip requirements of a served model. Given explicitly: MLflow's own inference re-imports the
    model in a subprocess per logged model (~20 s each on 2 cores) and cannot see qlife's lazy imports."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in packages:
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return out


def pyfunc_model(kind: str, artifacts: dict[str, str], inference: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """The pyfunc model from code as the registry holds it: what `log_text_model` logs and
    `qlife.servecost` saves to measure, so that both are the same model. `inference` (params `inference:`,
    runtime / precision): how the served teacher encoder runs (qlife.inference), kept in the model's config
    only where it is not torch float32, so a default model's config is unchanged."""
    from qlife.inference import served_config

    config: dict[str, Any] = {"kind": kind, **served_config(inference)}
    requirements = serving_requirements()
    if config.get("inference", {}).get("runtime") == "onnxruntime":
        requirements += serving_requirements(("onnxruntime", "onnx"))
    return {"python_model": _SERVING_CODE, "artifacts": artifacts, "model_config": config,
            "pip_requirements": requirements}


def log_text_model(cfg: Tracking, name: str, kind: str, artifacts: dict[str, str], example: list[str],
                   run_id: str | None = None, metrics: dict[str, float] | None = None,
                   tags: dict[str, str] | None = None, inference: Mapping[str, str] | None = None) -> str:
    """Log a text classifier as a pyfunc model from code (under `run_id`); metrics and tags go on the
    logged model. Returns its model URI."""
    mlflow = _mlflow(cfg)
    # the signature comes from predict's type hint (list[str]); the example is a list of texts
    info = mlflow.pyfunc.log_model(name=name, tags=tags, input_example=list(example[:2]),
                                   **pyfunc_model(kind, artifacts, inference))
    if metrics:
        mlflow.log_metrics(metrics, model_id=info.model_id, run_id=run_id)
    return info.model_uri


def log_json(cfg: Tracking, run_id: str, obj: Any, artifact_file: str) -> None:
    """A JSON artifact on a run (e.g. a registered version's `evidence.json`)."""
    _mlflow(cfg).MlflowClient().log_text(run_id, json.dumps(obj, indent=2, default=str), artifact_file)


def champion(cfg: Tracking, name: str) -> dict[str, Any] | None:
    """The current champion version's number and tags, or None."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    return {"version": int(version.version), "tags": dict(version.tags)}


def register(cfg: Tracking, model_uri: str, name: str, tags: dict[str, str]) -> int:
    """A new registry version of `name` from `model_uri`, tagged (lineage, quality); returns its number."""
    mlflow = _mlflow(cfg)
    version = mlflow.register_model(model_uri, name, tags=tags)
    return int(version.version)


def tag_version(cfg: Tracking, name: str, version: int, tags: dict[str, str]) -> None:
    client = _mlflow(cfg).MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def set_champion(cfg: Tracking, name: str, version: int) -> None:
    _mlflow(cfg).MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))


@contextmanager
def promote_run(cfg: Tracking, parent: str | None) -> Iterator[str]:
    """The `promote` step's own run under the pipeline run (closed FAILED on an exception, KILLED on `Killed`)."""
    mlflow = _mlflow(cfg)
    tags = {"qlife.kind": "stage", "stage": "promote", "git_commit": git_commit()}
    with _open_run(mlflow, run_name="promote", parent_run_id=parent, tags=tags) as run:
        yield run.info.run_id


@contextmanager
def model_run(cfg: Tracking, parent: str, name: str) -> Iterator[str]:
    """A nested run under `promote` holding one logged model (MLflow logs a model's config as run params)."""
    mlflow = _mlflow(cfg)
    with _open_run(mlflow, run_name=name, nested=True, parent_run_id=parent,
                   tags={"qlife.kind": "model", "model": name}) as run:
        yield run.info.run_id
