"""Command line around `dvc repro` (the driver is qlife.pipeline, shared with the Prefect flow).

    python -m qlife.cli run                `make run`: open the pipeline run, `dvc repro`, promote, summary,
                                           reports/energy.md; the pipeline run is closed FAILED when anything fails
    python -m qlife.cli check              validate params.yaml (exit 2 on a bad key), then the whole pipeline's
                                           preflight (qlife.preflight: exit 1, one sentence per refusal)
    python -m qlife.cli pipeline-start     print a new pipeline run id (for QLIFE_PIPELINE_RUN_ID)
    python -m qlife.cli pipeline-finish ID [--failed]  close it with the ledger totals
    python -m qlife.cli summary            metrics/ledger.json + reports/summary.md, table printed
    python -m qlife.cli estimate [--json]  the bill of every planned quantum job (circuits, shots, QPU seconds,
                                           energy, price) without running anything
    python -m qlife.cli profile NAME       set params.yaml's `profile` (quick: `make run`'s default; full: the
                                           whole comparison grid; `make run PROFILE=full` calls this first)

A project error (unusable data, an unusable MLflow store, a refused quantum job, a missing Dask cluster) prints
`<command>: <sentence>` and exits 1. `run` on SIGTERM/SIGINT/SIGHUP passes the signal on to `dvc repro`'s process
group, closes the pipeline run KILLED and exits 128 + the signal (143, 130, 129).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

import yaml

from qlife import tracking
from qlife.io import write_json, write_text
from qlife.params import PARAMS_FILE, ParamsError, load_params, parse_params
from qlife.pipeline import run_child, run_pipeline, write_summary


def dvc_repro(dvc_args: list[str]) -> Callable[[str | None], int]:
    """The pipeline's steps through `dvc repro` (DVC decides what is stale, in a process group of its own that a
    stop signal is passed on to); its exit code."""
    return lambda run_id: run_child(["dvc", "repro", *dvc_args], env=os.environ.copy())


def set_profile(name: str, path: str = PARAMS_FILE) -> None:
    """Set params.yaml's `profile:` line (comments kept), refusing a profile the file does not define (exit 2).
    DVC sees the change like any other param: the steps that depend on it rerun."""
    import re
    from pathlib import Path

    text = Path(path).read_text()
    old = re.search(r"^profile:[ \t]*([^\s#]+)", text, flags=re.M)
    new = (re.sub(r"^profile:[ \t]*[^\s#]+", f"profile: {name}", text, count=1, flags=re.M) if old
           else f"profile: {name}\n{text}")
    try:
        parse_params(yaml.safe_load(new))
    except ParamsError as err:
        print(f"{path}: {err}\nparams.yaml is unchanged.", file=sys.stderr)
        raise SystemExit(2) from None
    if old and old.group(1) == name:
        print(f"{path}: profile {name} (unchanged)")
        return
    write_text(path, new)
    print(f"{path}: profile {name} (was {old.group(1) if old else 'quick'}); it stays until the next "
          f"`make run PROFILE=...`")


def _project_errors() -> tuple[type[Exception], ...]:
    from qlife.io import DataError
    from qlife.parallel import ParallelError
    from qlife.quantum.errors import QuantumBackendError

    return DataError, tracking.TrackingError, QuantumBackendError, ParallelError


def main(argv: list[str] | None = None) -> None:
    """`_main`, with the project's errors as `<command>: <sentence>` and exit 1 (never a traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        _main(argv)
    except _project_errors() as err:  # evaluated only when something is raised
        cmd = next((a for a in argv if not a.startswith("-")), "qlife.cli")
        print(f"{cmd}: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.cli")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("dvc_args", nargs="*", help="passed to dvc repro (e.g. a stage name)")
    chk = sub.add_parser("check")
    chk.add_argument("--stamp", help="also write this file (the DVC `check` stage's output)")
    sub.add_parser("pipeline-start")
    fin = sub.add_parser("pipeline-finish")
    fin.add_argument("run_id")
    fin.add_argument("--failed", action="store_true")
    sub.add_parser("summary")
    est = sub.add_parser("estimate")
    est.add_argument("--json", action="store_true")
    prof = sub.add_parser("profile", help="set params.yaml's profile (quick | full | another of `profiles`)")
    prof.add_argument("name")
    ack = sub.add_parser("acknowledge", help="answer a live window's drift alarm without labels (qlife.monitoring)")
    ack.add_argument("window", help="the live window's name (reports/monitor.json decision.alarms)")
    ack.add_argument("--reason", required=True, help="why: recorded beside the window")
    ack.add_argument("--false-alarm", action="store_true",
                     help="the alarm was false: the stream detector keeps its history (else it starts afresh)")
    args = ap.parse_args(argv)
    if args.cmd == "profile":
        set_profile(args.name)
        return
    params = load_params()
    if args.cmd == "run":
        raise SystemExit(run_pipeline(params, dvc_repro(args.dvc_args)).code)
    if args.cmd == "acknowledge":
        from qlife.monitoring import acknowledge

        done = acknowledge(params, args.window, args.reason, args.false_alarm)
        print(f"{args.window}: acknowledged ({'false alarm' if args.false_alarm else 'drift accepted'}; records "
              f"{done['hash']}); it no longer blocks promotion while its records stay the same"
              + ("; the stream detector was reset" if done["stream_reset"] else ""))
        return
    if args.cmd == "estimate":
        from qlife.estimate import format_table, planned

        rows = planned(params)
        if args.json:
            print(json.dumps([{**{k: v for k, v in r.items() if k not in ("spec", "bills")},
                               "bills": [b.to_dict() for b in r["bills"]]} for r in rows], indent=2))
        else:
            print(format_table(rows))
        return
    if args.cmd == "check":
        import sys

        from qlife.preflight import PreflightError, preflight

        try:  # the whole pipeline's preflight: model memory, quantum jobs, credentials and bills, inputs, outputs
            preflight(params)
        except PreflightError as err:
            print(f"params.yaml: valid, but {err}", file=sys.stderr)
            raise SystemExit(1) from None
        if args.stamp:  # constant content: a valid change of params.yaml reruns nothing downstream by itself
            write_json(args.stamp, {"params": "valid"})
        print("params.yaml: ok; preflight: ok")
    elif args.cmd == "pipeline-start":
        print(tracking.start_pipeline(params.tracking, held_open=True) if params.tracking.enabled else "")
    elif args.cmd == "pipeline-finish":
        led = write_summary(params)
        if args.run_id and params.tracking.enabled:
            tracking.finish_pipeline(params.tracking, args.run_id,
                                     {f"total.{k}": v for k, v in led["total"].items()},
                                     status="FAILED" if args.failed else "FINISHED")
    elif args.cmd == "summary":
        write_summary(params)


if __name__ == "__main__":
    main()
