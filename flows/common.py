"""Shared pieces of the Prefect flows: the stage task and its report artifacts.

A stage runs either through `dvc repro <stage>` (DVC decides what is stale: the default) or in this
process through `qlife.stage.execute` (no DVC needed, e.g. tests or scratch folders). Tasks pass
paths, not objects, and use no Prefect input caching: DVC is the one cache.

`task_runner(orchestration)` is the runner params name: Prefect's `ThreadPoolTaskRunner`, or prefect-dask's
`DaskTaskRunner` on `dask_address` (the workers must see the project folder at the same path: a stage task runs
`dvc repro` there) or on a local cluster of `workers` processes. Flows `.submit()` their tasks, so a Dask runner
really runs them on Dask (prefect-dask starts its cluster at the first submit).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from qlife import tracking
from qlife.params import Orchestration, read_params
from qlife.stage import execute, report_path
from qlife.tracking import numeric_leaves


def report_table(report: dict) -> list[dict]:
    return [{"figure": k, "value": round(v, 6)} for k, v in numeric_leaves(report).items()]


def task_runner(cfg: Orchestration):
    """The Prefect task runner `orchestration` names."""
    if cfg.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=max(cfg.workers, 2))
    from prefect_dask import DaskTaskRunner

    if cfg.dask_address:
        return DaskTaskRunner(address=cfg.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": max(cfg.workers, 1), "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": ":0"})


@task(name="stage", task_run_name="{stage}", retry_delay_seconds=10)
def run_stage(stage: str, params_file: str = "params.yaml", use_dvc: bool = True,
              pipeline_run: str | None = None) -> str:
    """Run one stage; publish its report as a table artifact; return the report file path. `pipeline_run`: the
    MLflow pipeline run the stage's run goes under (passed, not inherited: the task may run in a Dask worker)."""
    log = get_run_logger()
    if pipeline_run:
        os.environ[tracking.ENV_PARENT] = pipeline_run
    params = read_params(params_file)
    path = report_path(params, stage)
    before = path.stat().st_mtime if path.exists() else None
    if use_dvc:
        proc = subprocess.run(["dvc", "repro", stage], capture_output=True, text=True, env=os.environ.copy())
        log.info(proc.stdout[-4000:])
        if proc.returncode != 0:
            raise RuntimeError(f"dvc repro {stage} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        report = json.loads(path.read_text())
    else:
        if stage == "train":  # the DVC `hyperparameters` step between search and train
            from qlife import hyperparameters

            hyperparameters.write(params)
        module = importlib.import_module(f"stages.{stage}")
        report = execute(stage, module.run, params)
    fresh = before is None or path.stat().st_mtime != before
    log.info(f"{stage}: {'ran' if fresh else 'up to date (DVC skipped it)'}: {report.get('summary')}")
    publish_table(report_table(report), key=f"qlife-{stage}",
                  description=f"{stage} report ({'new' if fresh else 'unchanged'})")
    return str(Path(path).resolve())


def publish_table(table: list[dict], key: str, description: str) -> None:
    """create_table_artifact, once more through a client of its own when the task's client was closed under it: a
    task on a Dask worker that seceded for its stage's own parallel map (qlife.parallel) can find the worker's
    Prefect client closed by another task that finished on the same worker meanwhile (seen on monitor)."""
    try:
        create_table_artifact(table, key=key, description=description)
    except RuntimeError as err:
        if "client has been closed" not in str(err):
            raise
        from prefect.artifacts import TableArtifact
        from prefect.client.orchestration import SyncPrefectClient
        from prefect.client.schemas.actions import ArtifactCreate
        from prefect.context import TaskRunContext
        from prefect.settings import PREFECT_API_URL

        ctx = TaskRunContext.get()
        art = TableArtifact(key=key, description=description, table=table)
        with SyncPrefectClient(PREFECT_API_URL.value()) as client:
            client.create_artifact(artifact=ArtifactCreate(
                type=art.type, key=key, description=description, data=art.format(_sync=True),
                task_run_id=ctx.task_run.id if ctx else None, flow_run_id=ctx.task_run.flow_run_id if ctx else None))
