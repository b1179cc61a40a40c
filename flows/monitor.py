"""The monitoring flow: stage 7 on new live data; the lifecycle flow starts only when the monitor's decision
(qlife.monitoring: the stream alarm over windows, or an estimated quality drop) names a window with labels not yet
trained on.

The retraining policy, in order:
1. An alarmed window with labelled records not yet in `paths.incoming`: its labelled records are written there (a
   dependency of curate) and the lifecycle retrains once on them. DVC skips every stage whose inputs did not change.
2. An alarmed window already in `paths.incoming` is answered: the same window in place for many runs (the hourly
   schedule of `make serve`) never starts a second retraining. A retraining that failed is retried by the nightly
   lifecycle (the feedback is already curate's input).
3. An alarmed window without labels is never trained on: the log says the way out (label a sample of it, or
   `python -m qlife.cli acknowledge WINDOW --reason "..."`); until then it blocks promotion, unless only the stream
   flagged it and the estimated quality on it held (qlife.monitoring.blocking, promote.gate.quality_decides).
Retraining only when the data moved is the energy argument of the perspective paper; reports/energy.md simulates
this policy beside nightly retraining and retraining on every per-window alarm.
"""

from __future__ import annotations

import json
from datetime import datetime
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
        out = Path(params.paths.reports) / "monitoring" / datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        overrides = {"paths.monitor": str(out), "paths.reports": str(out), "paths.metrics": str(out / "metrics")}
        if live_dir is not None:  # scored on its own: its stream detector starts afresh in its folder
            overrides.update({"paths.live": str(out / "none"), "curate.source.live_path": str(live_dir),
                              "paths.state": str(out / "state")})
        params = with_overrides(params, overrides)
        report = execute("monitor", monitor_stage.run, params)
        create_table_artifact(report_table(report), key="qlife-monitor-adhoc")
    decision = report["decision"]
    alarms = decision["alarms"]  # qlife.monitoring.decide: the stream alarm or an estimated quality drop
    result = {"alarms": alarms, "retrain": bool(alarms), "reasons": decision.get("reasons", {}), "lifecycle": None,
              "feedback": None, "retrained": False}
    if alarms and retrain_on_drift:
        windows, _ = live_windows(params)
        feedback = result["feedback"] = promote_feedback(windows, alarms, Path(params.paths.incoming))
        if feedback["no_labels"]:
            log.warning(f"drift in {feedback['no_labels']} with no labelled record: nothing to retrain on. Label a "
                        "sample of it (labelled records in the window's file), or acknowledge it: python -m "
                        "qlife.cli acknowledge WINDOW --reason \"...\"")
        if feedback["already"]:
            log.info(f"drift in {feedback['already']}: already answered (their labels are in "
                     f"{params.paths.incoming}): no second retraining")
        if feedback["added"]:
            log.info(f"drift in {feedback['added']}: their labelled records join the corpus; starting the lifecycle")
            result["lifecycle"] = lifecycle_with_runner(params_file=params_file, use_dvc=use_dvc)
            result["retrained"] = True
    else:
        log.info("no alarm: nothing to retrain" if not alarms else f"alarm on {alarms}; retraining disabled")
    return result


if __name__ == "__main__":
    monitor()
