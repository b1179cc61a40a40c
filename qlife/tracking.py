"""The one place that talks to MLflow: runs, metrics, artifacts, models, the registry and its gate.

One pipeline run (parent) groups one run per stage. `make run` opens the parent before `dvc repro` and
passes its id to the stage processes in QLIFE_PIPELINE_RUN_ID; a stage run on its own opens its own
parent. Models are logged as pyfunc "models from code" (qlife/serving.py), registered, and the alias
`champion` moves only when the gate passes. Tokens come from the environment and are never logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
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
        experiment = mlflow.get_experiment_by_name(cfg.experiment)
        if experiment is None:
            mlflow.create_experiment(cfg.experiment, artifact_location=_artifact_root(cfg))
        else:
            _check_location(cfg, experiment.artifact_location)
        mlflow.set_experiment(cfg.experiment)
        _READY.add(key)
    finally:
        if lock is not None:
            lock.release()
    return mlflow


_READY: set[tuple[str, str, str]] = set()


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


def start_pipeline(cfg: Tracking, name: str | None = None) -> str:
    """Open a parent run (left RUNNING for the stage processes) and return its id."""
    mlflow = _mlflow(cfg)
    experiment = mlflow.get_experiment_by_name(cfg.experiment)
    run = mlflow.MlflowClient().create_run(
        experiment.experiment_id, run_name=name or time.strftime("pipeline-%Y%m%d-%H%M%S"),
        tags={"qlife.kind": "pipeline", "git_commit": git_commit()})
    return run.info.run_id


def finish_pipeline(cfg: Tracking, run_id: str, summary: dict[str, Any] | None = None,
                    status: str = "FINISHED") -> None:
    """Close the pipeline run: FINISHED, or FAILED when a stage (or DVC itself) failed."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    for key, value in (summary or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, status)


@contextmanager
def stage_run(cfg: Tracking, stage: str, params: dict[str, Any], data_hash: str = "") -> Iterator[Any]:
    """An MLflow run for one stage under the pipeline run; yields None when tracking is disabled.

    An exception closes the stage run FAILED (mlflow.start_run does) and, when this stage opened its own
    pipeline run, that one too; a pipeline run opened by `qlife.cli run` is closed by it."""
    if not cfg.enabled:
        yield None
        return
    mlflow = _mlflow(cfg)
    parent = os.environ.get(ENV_PARENT)
    own_parent = parent is None
    if own_parent:
        parent = start_pipeline(cfg, f"pipeline-{stage}-only")
    tags = {"qlife.kind": "stage", "stage": stage, "git_commit": git_commit(), "data_hash": data_hash}
    status = "FAILED"
    try:
        with mlflow.start_run(run_name=stage, parent_run_id=parent, tags=tags) as run:
            mlflow.log_params(_flatten(params))
            yield run
        status = "FINISHED"
    finally:
        if own_parent:
            finish_pipeline(cfg, parent, status=status)


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


def serving_requirements() -> list[str]:
    """Pinned pip requirements of a served model. Given explicitly: MLflow's own inference re-imports the
    model in a subprocess per logged model (~20 s each on 2 cores) and cannot see qlife's lazy imports."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in SERVING_PACKAGES:
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            continue
    return out


def pyfunc_model(kind: str, artifacts: dict[str, str]) -> dict[str, Any]:
    """The pyfunc model from code as the registry holds it: what `log_text_model` logs and
    `qlife.servecost` saves to measure, so that both are the same model."""
    return {"python_model": _SERVING_CODE, "artifacts": artifacts, "model_config": {"kind": kind},
            "pip_requirements": serving_requirements()}


def log_text_model(cfg: Tracking, name: str, kind: str, artifacts: dict[str, str], example: list[str],
                   run_id: str | None = None, metrics: dict[str, float] | None = None,
                   tags: dict[str, str] | None = None) -> str:
    """Log a text classifier as a pyfunc model from code (under `run_id`); metrics and tags go on the
    logged model. Returns its model URI."""
    mlflow = _mlflow(cfg)
    # the signature comes from predict's type hint (list[str]); the example is a list of texts
    info = mlflow.pyfunc.log_model(name=name, tags=tags, input_example=list(example[:2]),
                                   **pyfunc_model(kind, artifacts))
    if metrics:
        mlflow.log_metrics(metrics, model_id=info.model_id, run_id=run_id)
    return info.model_uri


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
    """The `promote` step's own run under the pipeline run (closed FAILED on an exception)."""
    mlflow = _mlflow(cfg)
    tags = {"qlife.kind": "stage", "stage": "promote", "git_commit": git_commit()}
    with mlflow.start_run(run_name="promote", parent_run_id=parent, tags=tags) as run:
        yield run.info.run_id


@contextmanager
def model_run(cfg: Tracking, parent: str, name: str) -> Iterator[str]:
    """A nested run under `promote` holding one logged model (MLflow logs a model's config as run params)."""
    mlflow = _mlflow(cfg)
    with mlflow.start_run(run_name=name, nested=True, parent_run_id=parent,
                          tags={"qlife.kind": "model", "model": name}) as run:
        yield run.info.run_id
