"""The monitoring flow: stage 7 on new live data; the lifecycle flow starts only on a drift alarm.

Retraining only when the data moved is the energy argument of the perspective paper. On an alarm,
the drifted windows (labelled feedback) are copied into `paths.incoming`, a dependency of curate, so
the lifecycle that follows really retrains on them; DVC skips every stage whose inputs did not change.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import report_table, run_stage
from flows.lifecycle import lifecycle
from qlife.params import read_params, with_overrides
from qlife.stage import execute


def promote_feedback(live_dir: Path, windows: list[str], incoming: Path) -> list[str]:
    """Copy alarmed windows into the incoming folder once (same name: already promoted)."""
    incoming.mkdir(parents=True, exist_ok=True)
    added = []
    for name in windows:
        target = incoming / f"{name}.jsonl"
        if not target.exists():
            shutil.copy(live_dir / f"{name}.jsonl", target)
            added.append(name)
    return added


@flow(name="qlife-monitor", log_prints=True)
def monitor(params_file: str = "params.yaml", live_dir: str | None = None, retrain_on_drift: bool = True,
            use_dvc: bool = True) -> dict:
    """live_dir None: the pipeline's own live windows through `dvc repro monitor`; a folder: scored in
    this process, outputs under reports/monitoring/<time>/ so DVC's outputs stay untouched."""
    from stages import monitor as monitor_stage

    log = get_run_logger()
    params = read_params(params_file)
    if live_dir is None and use_dvc:
        report = json.loads(Path(run_stage("monitor", params_file, use_dvc=True)).read_text())
        live = Path(params.paths.live)
    else:
        live = Path(live_dir or params.paths.live)
        out = Path(params.paths.reports) / "monitoring" / time.strftime("%Y%m%d-%H%M%S")
        params = with_overrides(params, {"paths.live": str(live), "paths.monitor": str(out),
                                         "paths.metrics": str(out)})
        report = execute("monitor", monitor_stage.run, params)
        create_table_artifact(report_table(report), key="qlife-monitor-adhoc")
    alarms = [n for n, r in report["methods"]["rbf_mmd"].items() if r["alarm"]]
    result = {"alarms": alarms, "retrain": bool(alarms), "lifecycle": None}
    if alarms and retrain_on_drift:
        added = promote_feedback(live, alarms, Path(params.paths.incoming))
        log.info(f"drift in {alarms}; new feedback windows: {added}; starting the lifecycle flow")
        result["lifecycle"] = lifecycle(params_file=params_file, use_dvc=use_dvc)
    else:
        log.info("no drift alarm: nothing to retrain" if not alarms else f"drift in {alarms}; retrain disabled")
    return result


if __name__ == "__main__":
    monitor()
