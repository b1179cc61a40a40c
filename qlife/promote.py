"""Promotion: register this run's candidate models and move the `champion` alias where the gate passes.

Runs after `dvc repro` (`qlife.cli run`, i.e. `make run`, and the lifecycle flow), never inside a DVC stage,
so `dvc exp run` sweeps never touch the registry. Reads only `summary`/`decision` of two reports:

- `metrics/deploy.json` `decision.candidates`: per role (pruned_teacher, compressed_teacher, student,
  vqc_student, and the static-input student_static / vqc_student_static, registered as `<name>-static`) the artifacts,
  serving kind and quality metric on the test split, and `decision.majority_baseline`;
- `metrics/monitor.json` `decision.alarms`: this run's drift alarms.

Gate (`promote.gate`), every reason recorded on the version: quality >= majority baseline +
`min_margin_over_majority`, quality >= `min_quality`, quality >= champion's - `max_drop_vs_champion`, and
(`block_on_open_drift`) no alarm of this run's monitor on a window the training data does not include yet
(`paths.incoming/<window>.jsonl`). Each version carries lineage tags: git commit, the `dvc.lock` hash of the
deploy stage's inputs, the curated data hash, the backend, the metric; quality is a metric of the logged model.

    python -m qlife.promote [--run-id PIPELINE_RUN_ID]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from qlife import tracking
from qlife.io import DataError, read_json, write_json
from qlife.params import Gate, Params, load_params
from qlife.stage import data_hash, merge_steps, metrics_path, steps_of

DVC_LOCK = "dvc.lock"


class PromoteError(DataError):
    """The reports promote needs are missing or do not fit (run `dvc repro` first)."""


def _report(params: Params, stage: str) -> dict:
    """A lifecycle stage's report, its steps merged (qlife.stage.steps_of); the stage's own metrics file must
    exist (missing / corrupt: a DataError naming it), a later step's is added when there."""
    first, *rest = [metrics_path(params, s) for s in steps_of(stage)]
    return merge_steps([read_json(first), *(read_json(p) for p in rest if p.exists())])


def open_alarms(params: Params, monitor: dict) -> list[str]:
    """Alarmed windows of this run's monitor that the training data does not include yet."""
    alarmed = monitor.get("decision", {}).get("alarms", [])
    return [w for w in alarmed if not (Path(params.paths.incoming) / f"{w}.jsonl").exists()]


def gate(quality: float, majority: float, champion: float | None, alarms: list[str], g: Gate,
         metric: str) -> list[str]:
    """Reasons not to promote (empty: promote)."""
    reasons = []
    if quality < majority + g.min_margin_over_majority:
        reasons.append(f"{metric} {quality:.4f} < majority-class baseline {majority:.4f} + "
                       f"gate.min_margin_over_majority {g.min_margin_over_majority}")
    if quality < g.min_quality:
        reasons.append(f"{metric} {quality:.4f} < gate.min_quality {g.min_quality}")
    if champion is not None and quality < champion - g.max_drop_vs_champion:
        reasons.append(f"{metric} {quality:.4f} < champion {champion:.4f} - gate.max_drop_vs_champion "
                       f"{g.max_drop_vs_champion}")
    if g.block_on_open_drift and alarms:
        reasons += [f"open drift alarm on {w} (this run's monitor; not in the training data yet)" for w in alarms]
    return reasons


def lock_hash(stage: str = "deploy", lock: str | Path = DVC_LOCK) -> str:
    """Hash of the stage's dependency hashes in dvc.lock: the exact inputs the candidates came from."""
    path = Path(lock)
    if not path.exists():
        return "none"
    entry = (yaml.safe_load(path.read_text()) or {}).get("stages", {}).get(stage, {})
    deps = sorted((d.get("path", ""), d.get("md5") or d.get("hash", "")) for d in entry.get("deps", []))
    return hashlib.sha1(json.dumps(deps).encode()).hexdigest()[:12] if deps else "none"


def _champion_quality(cfg, name: str, metric: str) -> float | None:
    current = tracking.champion(cfg, name)
    if current is None or current["tags"].get("metric") not in (None, metric):
        return None  # no champion, or one judged by another metric: not comparable
    value = current["tags"].get("quality")
    return float(value) if value is not None else None


def promote(params: Params, run_id: str | None = None) -> dict[str, Any]:
    """Register every candidate; promote those that pass. Returns (and writes) the decisions."""
    pp, cfg = params.promote, params.tracking
    deploy, monitor = _report(params, "deploy"), _report(params, "monitor")
    decision = deploy.get("decision", {})
    if "candidates" not in decision or "majority_baseline" not in decision:
        raise PromoteError("metrics/deploy.json has no decision.candidates: rerun `dvc repro deploy --force`")
    alarms = open_alarms(params, monitor)
    names = {"pruned_teacher": pp.pruned_model_name, "compressed_teacher": pp.compressed_model_name,
             "student": pp.student_model_name,
             "vqc_student": pp.vqc_model_name, "student_static": f"{pp.student_model_name}-static",
             "vqc_student_static": f"{pp.vqc_model_name}-static"}
    lineage = {"git_commit": tracking.git_commit(), "dvc_lock_deploy_inputs": lock_hash(),
               "data_hash": data_hash(params)}
    out: dict[str, Any] = {"alarms": alarms, "majority_baseline": decision["majority_baseline"], "models": {}}
    if not (pp.register_models and cfg.enabled):
        out["skipped"] = "promote.register_models is false or tracking is disabled"
        return _write(params, out)
    example = _examples(params)
    with tracking.promote_run(cfg, run_id) as promote_run_id:
        for role, cand in decision["candidates"].items():
            name, metric, quality = names[role], cand["metric"], float(cand["quality"])
            champion = _champion_quality(cfg, name, metric)
            reasons = gate(quality, float(decision["majority_baseline"]), champion, alarms, pp.gate, metric)
            tags = {**lineage, "backend": cand["backend"], "metric": metric, "quality": f"{quality:.6f}",
                    "role": role}
            with tracking.model_run(cfg, promote_run_id, name) as model_run_id:  # one run per model: its config
                uri = tracking.log_text_model(cfg, name, cand["kind"], cand["artifacts"], example, model_run_id,
                                              metrics={metric: quality, "accuracy": cand["accuracy"]}, tags=tags)
            version = tracking.register(cfg, uri, name, tags)
            promoted = not reasons
            if promoted:
                tracking.set_champion(cfg, name, version)
            tracking.tag_version(cfg, name, version, {"gate": "passed" if promoted else "; ".join(reasons)})
            out["models"][name] = {"role": role, "version": version, "metric": metric, "quality": quality,
                                   "champion_quality_before": champion, "promoted": promoted,
                                   "reasons": reasons}
            print(f"promote: {name} v{version} {metric}={quality:.4f}: "
                  f"{'champion' if promoted else 'not promoted: ' + '; '.join(reasons)}")
    return _write(params, out)


def _examples(params: Params) -> list[str]:
    test = Path(params.paths.curated) / "test.jsonl"
    if not test.exists():
        return ["an example text", "another example"]
    with test.open() as f:
        return [json.loads(line)["text"] for _, line in zip(range(2), f)]


def _write(params: Params, out: dict) -> dict:
    write_json(Path(params.paths.metrics) / "promote.json", out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qlife.promote", description=__doc__.split("\n")[0])
    ap.add_argument("--run-id", default=os.environ.get(tracking.ENV_PARENT))
    args = ap.parse_args(argv)
    params = load_params()
    try:
        promote(params, args.run_id or None)
    except DataError as err:
        print(f"promote: {err}", file=__import__("sys").stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
