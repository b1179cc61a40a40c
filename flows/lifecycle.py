"""The lifecycle flow: the seven stages in order (deploy as its three DVC steps), each a retried task, with report
artifacts.

Opens one MLflow pipeline run for the stage runs; after the stages, `qlife.promote` registers the
candidates and moves `champion` where the gate passes (never inside a DVC stage); then writes
metrics/ledger.json and reports/summary.md, then reports/energy.md (qlife.energy), and publishes both as markdown
artifacts. A failed stage closes the pipeline run FAILED and promotes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import run_stage, task_runner
from qlife import promote, tracking
from qlife.cli import write_summary
from qlife.energy import write_report as write_energy_report
from qlife.params import read_params
from qlife.stage import STEPS, UPSTREAM


def run_stages(stage_task, todo: list[str], params_file: str, use_dvc: bool, run_id: str | None) -> dict[str, str]:
    """Submit every stage to the flow's task runner once its upstream stages are done (`qlife.stage.UPSTREAM`:
    monitor needs only curate and encode, so it overlaps search..deploy). Through DVC they go one after another:
    `dvc repro` holds the repository lock, a second one at the same time would be refused."""
    futures: dict = {}
    for i, s in enumerate(todo):
        after = [todo[i - 1]] if use_dvc and i else [u for u in UPSTREAM[s] if u in futures]
        futures[s] = stage_task.submit(s, params_file, use_dvc, run_id, wait_for=[futures[u] for u in after])
    return {s: f.result() for s, f in futures.items()}


def lifecycle_with_runner(params_file: str = "params.yaml", use_dvc: bool = True,
                          stages: list[str] | None = None) -> dict[str, str]:
    """The lifecycle flow on the task runner `orchestration.task_runner` names (thread, or Dask)."""
    params = read_params(params_file)
    return lifecycle.with_options(task_runner=task_runner(params.orchestration))(params_file, use_dvc, stages)


@flow(name="qlife-lifecycle", log_prints=True)
def lifecycle(params_file: str = "params.yaml", use_dvc: bool = True,
              stages: list[str] | None = None) -> dict[str, str]:
    params = read_params(params_file)
    todo = list(stages or STEPS)
    unknown = set(todo) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {STEPS}")
    run_id = tracking.start_pipeline(params.tracking) if params.tracking.enabled else None
    if run_id:
        os.environ[tracking.ENV_PARENT] = run_id
    stage_task = run_stage.with_options(retries=params.orchestration.retries)
    status = "FAILED"
    try:
        paths = run_stages(stage_task, todo, params_file, use_dvc, run_id)
        if "deploy" in todo and "monitor" in todo:
            promotion = promote.promote(params, run_id)
            create_table_artifact([{"model": n, **{k: str(v) for k, v in d.items()}}
                                   for n, d in promotion["models"].items()], key="qlife-promote",
                                  description="registered versions and the champion gate")
        led = write_summary(params)
        status = "FINISHED"
    finally:
        os.environ.pop(tracking.ENV_PARENT, None)
        if run_id:
            totals = {f"total.{k}": v for k, v in led["total"].items()} if status == "FINISHED" else None
            tracking.finish_pipeline(params.tracking, run_id, totals, status=status)
    create_markdown_artifact(Path(params.paths.reports, "summary.md").read_text(),
                             key="qlife-summary", description="per-stage summary and energy ledger")
    energy_md, _ = write_energy_report(params)
    create_markdown_artifact(energy_md, key="qlife-energy",
                             description="energy per stage and method: measured, on QPU models, as the work grows")
    return paths


if __name__ == "__main__":
    lifecycle_with_runner()
