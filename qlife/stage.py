"""Run one stage the same way from `dvc repro`, the Prefect flow and the tests.

`execute(name, run, params)` opens the stage's MLflow run, meters the whole stage, calls
`run(params) -> report`, adds the total cost, writes the full report to `reports/<name>.json` and its headline
figures to `metrics/<name>.json` (`headline`: the verdict's figures and the cost, the same few keys for every
step, which is what `dvc metrics show` / `dvc metrics diff` print), and logs the report. The stage's outputs and
its report are published as one set when it succeeds (`qlife.io.publish_together`): a failed or killed stage
leaves the whole previous set. A report is a dict with at least `summary` (headline figures) and `cost` (per
method).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qlife import tracking
from qlife.io import DataError, publish_together, read_json, settle, write_json
from qlife.ledger import measure
from qlife.parallel import ParallelError
from qlife.params import Params, load_params
from qlife.quantum.errors import QuantumBackendError

STAGES = ("curate", "encode", "search", "train", "distill", "deploy", "monitor")  # the seven lifecycle stages
# the DVC steps that run a `stages/<step>.py` module, in pipeline order: deploy is three (pruning, compression,
# serving cost), each rerun only when its own params and inputs change; reports speak of the lifecycle stage
STEPS = ("curate", "encode", "search", "train", "distill", "deploy", "compress", "serving", "monitor")
STAGE_OF = {"compress": "deploy", "serving": "deploy"}  # a step that is part of another lifecycle stage
# the steps each step reads outputs of (dvc.yaml's DAG, the `hyperparameters` step folded into train; a contract
# test holds the two equal): the Prefect flow runs a step once these are done, so monitor overlaps deploy
UPSTREAM = {"curate": (), "encode": ("curate",), "search": ("encode",), "train": ("search",),
            "distill": ("train",), "deploy": ("distill",), "compress": ("train",), "serving": ("deploy", "compress"),
            "monitor": ("encode", "distill")}
Report = dict[str, Any]


def metrics_path(params: Params, stage: str) -> Path:
    """The step's headline figures (a DVC metrics file): `headline(report)`."""
    return Path(params.paths.metrics) / f"{stage}.json"


def report_path(params: Params, stage: str) -> Path:
    """The step's full report (every method, decision, verdict and cost), beside reports/index.html."""
    return Path(params.paths.reports) / f"{stage}.json"


def _num(x: Any) -> float | None:
    return None if x is None else round(float(x), 4)


def headline(report: Report) -> dict[str, float | None]:
    """The figures `dvc metrics show` prints for a step, the same keys for every step so the table stays narrow:
    the verdict's quantum, twin and best classical figures in the stage's metric, the quantum-minus-twin
    difference with its 95% interval, and the step's wall and CPU seconds. A step without a verdict (serving)
    has the cost only."""
    out: dict[str, float | None] = {}
    v = report.get("verdict")
    if v:
        d = v["difference"]["quantum_minus_twin"]
        ci = d.get("ci95") or [None, None]
        out = {"quantum": _num(v["quantum"]["value"]), "twin": _num(v["twin"]["value"]),
               "best": _num(v["best_classical"]["value"]), "diff": _num(d["value"]), "lo": _num(ci[0]),
               "hi": _num(ci[1])}
    total = report.get("cost", {}).get("total", {})
    return {**out, "wall_s": round(float(total.get("wall_s", 0.0)), 1),
            "cpu_s": round(float(total.get("cpu_s", 0.0)), 1)}


def steps_of(stage: str) -> list[str]:
    """The DVC steps of a lifecycle stage (itself first)."""
    return [s for s in STEPS if STAGE_OF.get(s, s) == stage]


def merge_steps(reports: list[Report]) -> Report:
    """One lifecycle stage's report from its steps' reports: summaries, methods, decisions (candidates joined)
    and the other sections merged in step order; costs side by side, their totals added up; each step's verdict
    under `verdicts` (by step), the first step's as `verdict`."""
    out: Report = {}
    total: dict[str, Any] = {}
    for r in reports:
        for key, value in r.items():
            if key == "verdict":  # each step's own verdict (deploy: pruning and compression); the first leads
                out.setdefault("verdicts", {})[r.get("stage", f"step{len(out.get('verdicts', {}))}")] = value
                out.setdefault("verdict", value)
            elif key == "cost":
                for name, entry in value.items():
                    if name != "total":
                        out.setdefault("cost", {})[name] = entry
                for k, v in value.get("total", {}).items():
                    total[k] = total.get(k, 0) + v if isinstance(v, (int, float)) else v
            elif key == "decision" and "decision" in out:
                cands = {**out["decision"].get("candidates", {}), **value.get("candidates", {})}
                out["decision"] = {**value, **out["decision"], "candidates": cands}
            elif isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = {**out[key], **value}
            else:
                out.setdefault(key, value)
    if total:
        out.setdefault("cost", {})["total"] = total
    return out


def stage_reports(params: Params) -> dict[str, Report]:
    """Every lifecycle stage's report that exists (reports/<step>.json, a stage's steps merged)."""
    out = {}
    for stage in STAGES:
        parts = [read_json(p) for p in (report_path(params, s) for s in steps_of(stage)) if p.exists()]
        if parts:
            out[stage] = merge_steps(parts)
    return out


def data_hash(params: Params) -> str:
    """Hash of the curated training split: the data version a stage saw (empty before curation)."""
    path = Path(params.paths.curated) / "train.jsonl"
    if not path.exists():
        return ""
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def execute(stage: str, run: Callable[[Params], Report], params: Params,
            artifacts: Callable[[Params], list[Path]] | None = None) -> Report:
    section = getattr(params, STAGE_OF.get(stage, stage)).model_dump()
    settle()  # a publish a kill cut short is completed before anything is read
    with tracking.stage_run(params.tracking, stage, section, data_hash(params)):
        with publish_together(stage):  # every output and the report, published as one set at the end
            with measure(params.ledger) as meter:
                report = run(params)
            report.setdefault("cost", {})["total"] = meter.as_dict()
            report["stage"] = stage
            write_json(report_path(params, stage), report)
            write_json(metrics_path(params, stage), headline(report))
        tracking.log_report(report, artifacts(params) if artifacts else [])
    return report


def main(stage: str, run: Callable[[Params], Report],
         artifacts: Callable[[Params], list[Path]] | None = None) -> None:
    """Entry point for `python -m stages.<name>`: bad params exit 2; what the step's preflight refuses (before any
    work), unusable data and refused jobs exit 1."""
    from qlife.preflight import preflight  # refuses or lets the stage run: no stage dep (the `check` step's)

    params = load_params()
    try:
        preflight(params, [stage])
        report = execute(stage, run, params, artifacts)
    except (DataError, QuantumBackendError, tracking.TrackingError, ParallelError) as err:  # unusable input, a
        # refused job, a Dask cluster that is not there
        print(f"{stage}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    head = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in report.get("summary", {}).items())
    print(f"{stage}: {head}")
