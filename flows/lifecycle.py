"""The lifecycle flow: the seven stages in order (deploy as its three DVC steps), each a retried task, with report
artifacts.

The driver is qlife.pipeline's, as for `python -m qlife.cli run`: one MLflow pipeline run around the steps, then
`qlife.promote`, metrics/ledger.json + reports/summary.md and reports/energy.md, published here as artifacts. A
failed step closes the pipeline run FAILED and promotes nothing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import run_stage, task_runner
from qlife.params import read_params
from qlife.pipeline import run_pipeline
from qlife.preflight import preflight
from qlife.stage import STEPS, UPSTREAM, stage_reports
from qlife.verdict import short_rows, stage_verdicts


def run_stages(stage_task, todo: list[str], params_file: str, use_dvc: bool, run_id: str | None) -> dict[str, str]:
    """Submit every stage to the flow's task runner once its upstream stages are done (`qlife.stage.UPSTREAM`:
    monitor needs encode and distill, so it overlaps deploy). Through DVC they go one after another:
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
    preflight(params)  # what can be refused without the data (model memory, qubits, tokens, bills), before any step
    stage_task = run_stage.with_options(retries=params.orchestration.retries)
    paths: dict[str, str] = {}

    def steps(run_id: str | None) -> int:
        paths.update(run_stages(stage_task, todo, params_file, use_dvc, run_id))  # a failed task raises
        return 0

    out = run_pipeline(params, steps, promote_models="deploy" in todo and "monitor" in todo)
    if out.status != "FINISHED":
        raise RuntimeError("the lifecycle failed after its steps (promote could not read their reports): see the "
                           "log above; the pipeline run is closed FAILED")
    if out.promotion:
        create_table_artifact([{"model": n, **{k: str(v) for k, v in d.items()}}
                               for n, d in out.promotion["models"].items()], key="qlife-promote",
                              description="registered versions and the champion gate")
    create_table_artifact(short_rows(stage_verdicts(stage_reports(params))), key="qlife-verdicts",
                          description="each stage's quantum method against its classical twin (95% paired CI); "
                                      "every figure: reports/index.html")
    create_markdown_artifact(Path(params.paths.reports, "summary.md").read_text(),
                             key="qlife-summary", description="per-stage summary and energy ledger")
    create_markdown_artifact(out.energy_md, key="qlife-energy",
                             description="energy per stage and method: measured, on QPU models, as the work grows")
    return paths


if __name__ == "__main__":
    lifecycle_with_runner()
