"""The monitoring flow: stage 7 on new live data; the lifecycle flow starts only on a drift alarm.

Retraining only when the data moved is the energy argument of the perspective paper. On an alarm,
the labelled records of the drifted windows (feedback) are written into `paths.incoming`, a dependency of
curate, so the lifecycle that follows really retrains on them; a window with no labelled record is skipped
(its drift is reported, there is nothing to train on); DVC skips every stage whose inputs did not change.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import report_table, run_stage
from flows.lifecycle import lifecycle_with_runner
from qlife.data.sources import is_labelled, live_windows
from qlife.io import write_jsonl
from qlife.params import read_params, with_overrides
from qlife.stage import execute


def promote_feedback(windows: dict[str, list[dict]], alarms: list[str], incoming: Path) -> dict[str, list[str]]:
    """Write the labelled records of each alarmed window into the incoming folder, once (same name: already
    promoted), atomically. `windows`: as `qlife.data.sources.live_windows` reads them (generator and user
    windows). Returns {"added", "already", "no_labels"}: window names; a window without any
    labelled record is skipped (unlabelled traffic is scored, never trained on)."""
    incoming.mkdir(parents=True, exist_ok=True)
    result: dict[str, list[str]] = {"added": [], "already": [], "no_labels": []}
    for name in alarms:
        target = incoming / f"{name}.jsonl"
        if target.exists():
            result["already"].append(name)
            continue
        labelled = [d for d in windows[name] if is_labelled(d)]
        if not labelled:
            result["no_labels"].append(name)
            continue
        write_jsonl(target, labelled)
        result["added"].append(name)
    return result


@flow(name="qlife-monitor", log_prints=True)
def monitor(params_file: str = "params.yaml", live_dir: str | None = None, retrain_on_drift: bool = True,
            use_dvc: bool = True) -> dict:
    """live_dir None: the pipeline's own live windows through `dvc repro monitor`; a folder: scored in
    this process, outputs under reports/monitoring/<time>/ so DVC's outputs stay untouched."""
    from stages import monitor as monitor_stage

    log = get_run_logger()
    params = read_params(params_file)
    if live_dir is None and use_dvc:
        report = json.loads(Path(run_stage.submit("monitor", params_file, use_dvc=True).result()).read_text())
    else:  # an ad-hoc folder of windows (JSONL/CSV/Parquet, labels optional) read as user live windows
        out = Path(params.paths.reports) / "monitoring" / time.strftime("%Y%m%d-%H%M%S")
        overrides = {"paths.monitor": str(out), "paths.reports": str(out), "paths.metrics": str(out / "metrics")}
        if live_dir is not None:
            overrides.update({"paths.live": str(out / "none"), "curate.source.live_path": str(live_dir)})
        params = with_overrides(params, overrides)
        report = execute("monitor", monitor_stage.run, params)
        create_table_artifact(report_table(report), key="qlife-monitor-adhoc")
    decision = report["decision"]
    alarms = decision["alarms"]  # the windows monitor.alarm's test flagged
    result = {"alarms": alarms, "retrain": bool(alarms), "lifecycle": None, "feedback": None}
    if alarms and retrain_on_drift:
        windows, _ = live_windows(params)
        feedback = result["feedback"] = promote_feedback(windows, alarms, Path(params.paths.incoming))
        if feedback["no_labels"]:
            log.warning(f"drift in {feedback['no_labels']} with no labelled record: nothing to retrain on from them")
        if feedback["added"] or feedback["already"]:
            log.info(f"drift in {alarms}; new feedback windows: {feedback['added']}; starting the lifecycle flow")
            result["lifecycle"] = lifecycle_with_runner(params_file=params_file, use_dvc=use_dvc)
        else:  # the same data would train the same model: label some drifted traffic first
            log.warning(f"drift in {alarms} but no labelled feedback: lifecycle not started")
    else:
        log.info("no drift alarm: nothing to retrain" if not alarms else f"drift in {alarms}; retrain disabled")
    return result


if __name__ == "__main__":
    monitor()
