"""Run one stage the same way from `dvc repro`, the Prefect flow and the tests.

`execute(name, run, params)` opens the stage's MLflow run, meters the whole stage, calls
`run(params) -> report`, adds the total cost, writes `metrics/<name>.json` atomically and logs the
report. A report is a dict with at least `summary` (headline figures) and `cost` (per method).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qlife import tracking
from qlife.io import DataError, write_json
from qlife.ledger import measure
from qlife.parallel import ParallelError
from qlife.params import Params, load_params
from qlife.quantum.errors import QuantumBackendError

STAGES = ("curate", "encode", "search", "train", "distill", "deploy", "monitor")
# the stages each stage reads outputs of (dvc.yaml's DAG, the `hyperparameters` step folded into train; a contract
# test holds the two equal): the Prefect flow runs a stage once these are done, so monitor overlaps search..deploy
UPSTREAM = {"curate": (), "encode": ("curate",), "search": ("encode",), "train": ("search",),
            "distill": ("train",), "deploy": ("distill",), "monitor": ("encode",)}
Report = dict[str, Any]


def metrics_path(params: Params, stage: str) -> Path:
    return Path(params.paths.metrics) / f"{stage}.json"


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
    section = getattr(params, stage).model_dump()
    with tracking.stage_run(params.tracking, stage, section, data_hash(params)):
        with measure(params.ledger) as meter:
            report = run(params)
        report.setdefault("cost", {})["total"] = meter.as_dict()
        report["stage"] = stage
        write_json(metrics_path(params, stage), report)
        tracking.log_report(report, artifacts(params) if artifacts else [])
    return report


def main(stage: str, run: Callable[[Params], Report],
         artifacts: Callable[[Params], list[Path]] | None = None) -> None:
    """Entry point for `python -m stages.<name>`: bad params exit 2, unusable data exits 1."""
    params = load_params()
    try:
        report = execute(stage, run, params, artifacts)
    except (DataError, QuantumBackendError, tracking.TrackingError, ParallelError) as err:  # unusable input, a
        # refused job, a Dask cluster that is not there
        print(f"{stage}: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    head = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in report.get("summary", {}).items())
    print(f"{stage}: {head}")
