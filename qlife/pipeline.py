"""The one pipeline driver, used by `python -m qlife.cli run` (the steps through `dvc repro`) and the Prefect
lifecycle flow (the steps as tasks): open one MLflow pipeline run, run the steps under it, then `qlife.promote`
(never inside a DVC stage), metrics/ledger.json + reports/summary.md, reports/energy.md and the report page
reports/index.html (qlife.report_page: offline, plots embedded); the pipeline run is
closed FINISHED with the ledger's totals, or FAILED (nothing promoted) when a step or promote fails, or KILLED on
SIGTERM, SIGINT or SIGHUP: the signal is passed on to the steps' process group (`run_child`: `dvc repro` and the
stage it runs, which closes its own run KILLED) and the process exits 128 + the signal (143, 130, 129).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qlife import ledger, promote, tracking
from qlife.energy import write_report as write_energy_report
from qlife.io import DataError, write_json, write_text
from qlife.params import Params
from qlife.report_page import write_page
from qlife.stage import stage_reports
from qlife.verdict import cost_rows, markdown_table, short_rows, stage_verdicts


@dataclass
class Outcome:
    """What a pipeline run ended with: FINISHED or FAILED, the exit code, promote's decisions, the ledger."""

    status: str = "FAILED"
    code: int = 1
    promotion: dict | None = None
    ledger: dict = field(default_factory=dict)
    energy_md: str = ""


def cost_table(reports: dict[str, dict]) -> str:
    rows = ["| stage | wall s | CPU s | energy kWh | QPU s (est.) |", "|---|---:|---:|---:|---:|"]
    return "\n".join([*rows, *("| " + " | ".join(r) + " |" for r in cost_rows(reports))])


def summary_text(reports: dict[str, dict], led: dict, params: Params) -> str:
    """reports/summary.md: the verdicts (quantum method beside its classical twin and the run's best classical
    method, with the paired 95% interval), then what each stage cost."""
    verdicts = stage_verdicts(reports)
    t = led["total"]
    return (f"# qlife run summary\n\n## Verdicts: each stage's quantum method against its classical twin\n\n"
            f"{markdown_table(verdicts, stages=list(verdicts))}\n\n## Cost\n\n{cost_table(reports)}\n\n"
            f"Total: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU, {t['energy_kwh']:.2e} kWh "
            f"(energy model: {params.ledger.energy}; see qlife/ledger.py), "
            f"{t['qpu_seconds_est']:.3g} estimated QPU s. Every figure and plot: reports/index.html (full reports: "
            "reports/<step>.json).\n")


def write_summary(params: Params) -> dict:
    """metrics/ledger.json and reports/summary.md from the stages' reports (printed too); returns the ledger."""
    reports = stage_reports(params)
    led = ledger.summarize(reports)
    write_json(Path(params.paths.metrics) / "ledger.json", led)
    text = summary_text(reports, led, params)
    write_text(Path(params.paths.reports) / "summary.md", text)
    print(text)
    return led


def run_page(params: Params) -> dict:
    """What the MLflow pipeline run shows of a finished run: the verdict table as its description (rendered whole
    on the run's page), one short verdict per stage as tags, the summary, energy report and report page as files."""
    verdicts = stage_verdicts(stage_reports(params))
    reports = Path(params.paths.reports)
    return {"note": markdown_table(verdicts, stages=list(verdicts)),
            "tags": {f"qlife.verdict.{stage.replace('/', '.')}": f"{r['verdict']}: {r['quantum']} vs {r['twin']}, "
                     f"diff {r['quantum − twin [95% CI]']}"
                     for stage, r in zip(verdicts, short_rows(verdicts, list(verdicts)), strict=True)
                     if verdicts[stage]},
            "files": [reports / "summary.md", reports / "energy.md", reports / "index.html"]}


GRACE_S = 30.0  # how long a stopped child's process group gets to close its runs before SIGKILL


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run `cmd` in a process group of its own and return its exit code. When a stop signal reaches this process
    (`tracking.Killed`, inside `run_pipeline`), the same signal goes to the whole group (dvc, the shell, the stage),
    which gets GRACE_S seconds (or until a second signal) to exit before SIGKILL; then Killed goes on."""
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        while True:  # short waits: a handler that SA_RESTART keeps out of a blocking waitpid runs between them
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
    except tracking.Killed as stop:
        _stop_group(child, stop.signum)
        raise
    except BaseException:
        _stop_group(child, signal.SIGTERM)
        raise


def _stop_group(child: subprocess.Popen, signum: int) -> None:
    def alive() -> bool:
        child.poll()  # reap the leader: a zombie still counts as a member of its group
        try:
            os.killpg(child.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    if not alive():
        return
    os.killpg(child.pid, signum)
    deadline, repeats = time.monotonic() + GRACE_S, tracking.signal_repeats()
    while alive():
        if time.monotonic() > deadline or tracking.signal_repeats() > repeats:
            print(f"the steps' processes did not stop on {signal.Signals(signum).name}: SIGKILL (their MLflow runs "
                  "are closed by the next start)", file=sys.stderr)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            return
        time.sleep(0.05)


def run_pipeline(params: Params, run_steps: Callable[[str | None], int], promote_models: bool = True) -> Outcome:
    """`run_steps(pipeline_run_id) -> exit code` inside one pipeline run (its id also in QLIFE_PIPELINE_RUN_ID,
    which the stages' runs attach to), then promote, the summary and the energy report when it exits 0.
    SIGTERM/SIGINT/SIGHUP close the pipeline run KILLED and raise `tracking.Killed` (exit 128 + the signal)."""
    out, run_id = Outcome(), None
    with tracking.stoppable():
        try:
            with tracking.deferred():
                run_id = tracking.start_pipeline(params.tracking) if params.tracking.enabled else None
                if run_id:
                    os.environ[tracking.ENV_PARENT] = run_id
            out.code = run_steps(run_id)
            if out.code != 0:
                print(f"the pipeline's steps failed (exit {out.code}): the pipeline run is closed FAILED; nothing "
                      "was promoted", file=sys.stderr)
                return out
            try:
                out.promotion = promote.promote(params, run_id) if promote_models else None
            except DataError as err:  # promote could not read this run's reports
                print(f"promote: {err}", file=sys.stderr)
                out.code = 1
                return out
            out.ledger = write_summary(params)
            out.energy_md, _ = write_energy_report(params)
            print(f"the report page: {write_page(params)}")
            out.status = "FINISHED"
        except tracking.Killed as stop:
            out.status, out.code = "KILLED", stop.code
            print(f"run: stopped by {stop.name}"
                  f"{': the pipeline run ' + run_id + ' is closed KILLED' if run_id else ''}; exit {stop.code}",
                  file=sys.stderr)
            raise
        finally:
            os.environ.pop(tracking.ENV_PARENT, None)
            if run_id:
                with tracking.deferred():
                    done = out.status == "FINISHED"
                    totals = {f"total.{k}": v for k, v in out.ledger["total"].items()} if done else None
                    tracking.finish_pipeline(params.tracking, run_id, totals, status=out.status,
                                             **(run_page(params) if done else {}))
    return out
