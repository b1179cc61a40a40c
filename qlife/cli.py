"""Command line around `dvc repro`: open/close the MLflow pipeline run, write the summary and ledger.

    python -m qlife.cli run                `make run`: check, open the pipeline run, `dvc repro`, promote,
                                           summary; the pipeline run is closed FAILED when anything fails
    python -m qlife.cli check              validate params.yaml (exit 2 on a bad key)
    python -m qlife.cli pipeline-start     print a new pipeline run id (for QLIFE_PIPELINE_RUN_ID)
    python -m qlife.cli pipeline-finish ID [--failed]  close it with the ledger totals
    python -m qlife.cli summary            metrics/ledger.json + reports/summary.md, table printed
    python -m qlife.cli estimate [--json]  the bill of every planned quantum job (circuits, shots, QPU seconds,
                                           energy, price) without running anything
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from qlife import ledger, tracking
from qlife.io import DataError, write_json, write_text
from qlife.params import Params, load_params
from qlife.stage import STAGES, stage_reports


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_table(reports: dict[str, dict]) -> str:
    rows = ["| stage | methods | headline | wall s | CPU s | energy kWh |", "|---|---|---|---:|---:|---:|"]
    for stage in STAGES:
        if stage not in reports:
            rows.append(f"| {stage} | (not run) | | | | |")
            continue
        r = reports[stage]
        total = r.get("cost", {}).get("total", {})
        methods = ", ".join(r.get("methods", {}))
        head = "; ".join(f"{k} {_fmt(v)}" for k, v in r.get("summary", {}).items())
        rows.append(f"| {stage} | {methods} | {head} | {total.get('wall_s', 0):.1f} | "
                    f"{total.get('cpu_s', 0):.1f} | {total.get('energy_kwh', 0):.2e} |")
    return "\n".join(rows)


def write_summary(params: Params) -> dict:
    reports = stage_reports(params)
    led = ledger.summarize(reports)
    write_json(Path(params.paths.metrics) / "ledger.json", led)
    t = led["total"]
    text = (f"# qlife run summary\n\n{summary_table(reports)}\n\n"
            f"Total: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU, {t['energy_kwh']:.2e} kWh "
            f"(energy model: {params.ledger.energy}; see qlife/ledger.py), "
            f"{t['qpu_seconds_est']:.3g} estimated QPU s.\n")
    write_text(Path(params.paths.reports) / "summary.md", text)
    print(text)
    return led


def run_pipeline(params: Params, dvc_args: list[str]) -> int:
    """`dvc repro` inside one MLflow pipeline run, then promote and the summary; returns the exit code."""
    from qlife import promote

    run_id = tracking.start_pipeline(params.tracking) if params.tracking.enabled else None
    status, code = "FAILED", 1
    try:
        env = {**os.environ, **({tracking.ENV_PARENT: run_id} if run_id else {})}
        code = subprocess.run(["dvc", "repro", *dvc_args], env=env).returncode
        if code == 0:
            promote.promote(params, run_id)
            led = write_summary(params)
            status = "FINISHED"
        else:
            print(f"dvc repro failed (exit {code}): the pipeline run is closed FAILED; nothing was promoted",
                  file=sys.stderr)
    except DataError as err:  # promote could not read this run's reports
        print(f"promote: {err}", file=sys.stderr)
    finally:
        if run_id:
            totals = {f"total.{k}": v for k, v in led["total"].items()} if status == "FINISHED" else None
            tracking.finish_pipeline(params.tracking, run_id, totals, status=status)
    return 0 if status == "FINISHED" else (code or 1)


def main(argv: list[str] | None = None) -> None:
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
    args = ap.parse_args(argv)
    params = load_params()
    if args.cmd == "run":
        raise SystemExit(run_pipeline(params, args.dvc_args))
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
        if args.stamp:  # constant content: a valid change of params.yaml reruns nothing downstream by itself
            write_json(args.stamp, {"params": "valid"})
        print("params.yaml: ok")
    elif args.cmd == "pipeline-start":
        print(tracking.start_pipeline(params.tracking) if params.tracking.enabled else "")
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
