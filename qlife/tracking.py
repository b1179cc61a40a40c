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

from qlife.params import Gate, Tracking

ENV_PARENT = "QLIFE_PIPELINE_RUN_ID"
CHAMPION = "champion"
_SERVING_CODE = str(Path(__file__).with_name("serving.py"))


def _mlflow(cfg: Tracking):
    import mlflow

    mlflow.set_tracking_uri(cfg.uri)
    mlflow.set_registry_uri(cfg.uri)
    mlflow.set_experiment(cfg.experiment)
    return mlflow


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


def finish_pipeline(cfg: Tracking, run_id: str, summary: dict[str, Any] | None = None) -> None:
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    for key, value in (summary or {}).items():
        if isinstance(value, (int, float)):
            client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, "FINISHED")


@contextmanager
def stage_run(cfg: Tracking, stage: str, params: dict[str, Any], data_hash: str = "") -> Iterator[Any]:
    """An MLflow run for one stage under the pipeline run; yields None when tracking is disabled."""
    if not cfg.enabled:
        yield None
        return
    mlflow = _mlflow(cfg)
    parent = os.environ.get(ENV_PARENT)
    own_parent = parent is None
    if own_parent:
        parent = start_pipeline(cfg, f"pipeline-{stage}-only")
    tags = {"qlife.kind": "stage", "stage": stage, "git_commit": git_commit(), "data_hash": data_hash}
    with mlflow.start_run(run_name=stage, parent_run_id=parent, tags=tags) as run:
        mlflow.log_params(_flatten(params))
        yield run
    if own_parent:
        finish_pipeline(cfg, parent)


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


def log_text_model(cfg: Tracking, name: str, kind: str, artifacts: dict[str, str],
                   example: list[str]) -> str | None:
    """Log a text classifier as a pyfunc model from code; returns its model URI."""
    if not cfg.enabled:
        return None
    mlflow = _mlflow(cfg)
    import pandas as pd

    info = mlflow.pyfunc.log_model(name=name, python_model=_SERVING_CODE, artifacts=artifacts,
                                   model_config={"kind": kind},
                                   input_example=pd.DataFrame({"text": example[:2]}))
    return info.model_uri


def champion_quality(cfg: Tracking, name: str) -> float | None:
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None
    value = version.tags.get("quality")
    return float(value) if value is not None else None


def register_and_gate(cfg: Tracking, model_uri: str, name: str, quality: float, gate: Gate,
                      blockers: list[str] = ()) -> dict[str, Any]:
    """Register a version; move `champion` to it only if quality clears the gate and nothing blocks."""
    mlflow = _mlflow(cfg)
    client = mlflow.MlflowClient()
    version = mlflow.register_model(model_uri, name)
    client.set_model_version_tag(name, version.version, "quality", f"{quality:.6f}")
    current = champion_quality(cfg, name)
    reasons = list(blockers)
    if quality < gate.min_accuracy:
        reasons.append(f"accuracy {quality:.4f} < gate.min_accuracy {gate.min_accuracy}")
    if current is not None and quality < current - gate.max_drop_vs_champion:
        reasons.append(f"accuracy {quality:.4f} < champion {current:.4f} - {gate.max_drop_vs_champion}")
    promoted = not reasons
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, "gate", "passed" if promoted else "; ".join(reasons))
    return {"name": name, "version": int(version.version), "quality": quality, "promoted": promoted,
            "champion_quality_before": current, "reasons": reasons}
