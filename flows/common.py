"""Shared pieces of the Prefect flows: the stage task and its report artifacts.

A stage runs either through `dvc repro <stage>` (DVC decides what is stale: the default) or in this
process through `qlife.stage.execute` (no DVC needed, e.g. tests or scratch folders). Tasks pass
paths, not objects, and use no Prefect input caching: DVC is the one cache.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from qlife.params import read_params
from qlife.stage import execute, metrics_path
from qlife.tracking import numeric_leaves


def report_table(report: dict) -> list[dict]:
    return [{"figure": k, "value": round(v, 6)} for k, v in numeric_leaves(report).items()]


@task(name="stage", task_run_name="{stage}", retry_delay_seconds=10)
def run_stage(stage: str, params_file: str = "params.yaml", use_dvc: bool = True) -> str:
    """Run one stage; publish its report as a table artifact; return the metrics file path."""
    log = get_run_logger()
    params = read_params(params_file)
    path = metrics_path(params, stage)
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
    create_table_artifact(report_table(report), key=f"qlife-{stage}",
                          description=f"{stage} report ({'new' if fresh else 'unchanged'})")
    return str(Path(path).resolve())
