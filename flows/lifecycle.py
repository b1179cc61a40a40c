"""The lifecycle flow: the seven stages in order, each a retried task, with report artifacts.

Opens one MLflow pipeline run for the stage runs, then writes metrics/ledger.json and
reports/summary.md and publishes the summary as a markdown artifact.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.common import run_stage, task_runner
from qlife import tracking
from qlife.cli import write_summary
from qlife.params import read_params
from qlife.stage import STAGES


@flow(name="qlife-lifecycle", log_prints=True)
def lifecycle(params_file: str = "params.yaml", use_dvc: bool = True,
              stages: list[str] | None = None) -> dict[str, str]:
    params = read_params(params_file)
    todo = list(stages or STAGES)
    unknown = set(todo) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {STAGES}")
    run_id = tracking.start_pipeline(params.tracking) if params.tracking.enabled else None
    if run_id:
        os.environ[tracking.ENV_PARENT] = run_id
    stage_task = run_stage.with_options(retries=params.orchestration.retries)
    try:
        paths = {s: stage_task(s, params_file, use_dvc) for s in todo}
    finally:
        os.environ.pop(tracking.ENV_PARENT, None)
    led = write_summary(params)
    if run_id:
        tracking.finish_pipeline(params.tracking, run_id, {f"total.{k}": v for k, v in led["total"].items()})
    create_markdown_artifact(Path(params.paths.reports, "summary.md").read_text(),
                             key="qlife-summary", description="per-stage summary and energy ledger")
    return paths


def lifecycle_with_runner(params_file: str = "params.yaml"):
    """The flow bound to the task runner named in params (threads or Dask)."""
    return lifecycle.with_options(task_runner=task_runner(read_params(params_file)))


if __name__ == "__main__":
    lifecycle()
