"""Promotion: register this run's candidate models and move the `champion` alias where the gate passes.

Runs after `dvc repro` (`qlife.cli run`, i.e. `make run`, and the lifecycle flow), never inside a DVC stage,
so `dvc exp run` sweeps never touch the registry. Reads only `summary`/`decision` of two reports:

- `reports/deploy.json` `decision.candidates`: per role (pruned_teacher, compressed_teacher, student,
  vqc_student, and the static-input student_static / vqc_student_static, registered as `<name>-static`) the artifacts,
  serving kind and quality metric on the test split, and `decision.majority_baseline`;
- `reports/monitor.json` `decision.alarms`: this run's drift alarms.

Gate (`promote.gate`), every reason recorded on the version: quality >= majority baseline +
`min_margin_over_majority`, quality >= `min_quality`, quality >= champion's - `max_drop_vs_champion`, and
(`block_on_open_drift`) no alarm of this run's monitor on a window that still blocks (qlife.monitoring.blocking:
not trained on (`paths.incoming/<window>.jsonl`), not acknowledged, and not cleared by estimated quality).
Each version carries lineage tags: git commit, the `dvc.lock` hash of the
deploy stage's inputs, the curated data hash, the backend, the metric; quality is a metric of the logged model. And
its evidence (qlife.evidence): the method that made it, the verdict of each step in its lineage and monitor's, the
code hash, as `qlife.*` tags and as `evidence.json` on the version's run.

Two promotes at once: the models are logged and registered side by side, then each promote reads the champion,
gates, moves the alias and writes `metrics/promote.json` under one file lock (`.qlife/<store>.promote.lock` beside
a SQLite store, else `paths.metrics/.promote.lock`), so the report and the registry agree: each model's
`champion` in the report is the version the alias names once this promote is done.

`serve` resolves what `make serve-model` serves (`models:/NAME@ALIAS` or `models:/NAME/VERSION`) and starts
`mlflow models serve` on it; a store, model, alias or version that is not there, or a port in use, is one
sentence (why no champion exists: the last promote's decision) and exit 1.

    python -m qlife.promote [--run-id PIPELINE_RUN_ID]
    python -m qlife.promote serve --name NAME [--alias ALIAS | --version N] [--port 5001]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from qlife import evidence, tracking
from qlife.io import DataError, read_json, write_json
from qlife.monitoring import blocking
from qlife.params import Gate, Params, load_params
from qlife.stage import data_hash, merge_steps, report_path, steps_of

DVC_LOCK = "dvc.lock"
LOCK_TIMEOUT_S = 900  # how long a promote waits for another one's registry change and report
DATA_HASH_OF = "sha1 of paths.curated/train.jsonl, first 12 hex digits (qlife.stage.data_hash)"


class PromoteError(DataError):
    """The reports promote needs are missing or do not fit (run `dvc repro` first)."""


class ServeError(DataError):
    """What `make serve-model` was asked to serve is not there (the message says why and what to serve)."""


def _report(params: Params, stage: str) -> dict:
    """A lifecycle stage's report, its steps merged (qlife.stage.steps_of); the stage's own metrics file must
    exist (missing / corrupt: a DataError naming it), a later step's is added when there."""
    first, *rest = [report_path(params, s) for s in steps_of(stage)]
    return merge_steps([read_json(first), *(read_json(p) for p in rest if p.exists())])


def open_alarms(params: Params, monitor: dict) -> list[str]:
    """Alarmed windows of this run's monitor that still block promotion, each as "window (why)"
    (qlife.monitoring.blocking: not trained on, not acknowledged, not cleared by estimated quality)."""
    return [f"{w} ({why})" for w, why in blocking(params, monitor, params.promote.gate.quality_decides)]


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
        reasons += [f"open drift alarm on {w}: label a sample of it (the monitoring flow retrains on it) or "
                    "acknowledge it (python -m qlife.cli acknowledge WINDOW --reason ...)" for w in alarms]
    return reasons


def lock_hash(stage: str = "deploy", lock: str | Path = DVC_LOCK) -> str:
    """Hash of the stage's dependency hashes in dvc.lock: the exact inputs the candidates came from."""
    path = Path(lock)
    if not path.exists():
        return "none"
    entry = (yaml.safe_load(path.read_text()) or {}).get("stages", {}).get(stage, {})
    deps = sorted((d.get("path", ""), d.get("md5") or d.get("hash", "")) for d in entry.get("deps", []))
    return hashlib.sha1(json.dumps(deps).encode()).hexdigest()[:12] if deps else "none"


def _champion_quality(current: dict | None, metric: str) -> float | None:
    if current is None or current["tags"].get("metric") not in (None, metric):
        return None  # no champion, or one judged by another metric: not comparable
    value = current["tags"].get("quality")
    return float(value) if value is not None else None


def lock_path(params: Params) -> Path:
    """The file lock of promotes on one registry: beside a SQLite store, in its `.qlife/` folder (every project
    folder using that store; `.qlife/` is git-ignored), else in the metrics folder (a remote store: promotes of
    this folder only)."""
    uri = tracking.store_uri(params.tracking.uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        db = Path(uri[len(prefix):])
        return db.parent / ".qlife" / f"{db.name}.promote.lock"
    return Path(params.paths.metrics) / ".promote.lock"


@contextmanager
def registry_lock(params: Params, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Held from reading the champion to writing metrics/promote.json: a second promote waits."""
    from filelock import FileLock, Timeout

    path = lock_path(params)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise PromoteError(f"another promote has held {path} for {timeout_s:.0f} s: let it finish, then run "
                           "`python -m qlife.promote` again") from None
    try:
        yield
    finally:
        lock.release()


def promote(params: Params, run_id: str | None = None) -> dict[str, Any]:
    """Register every candidate; promote those that pass. Returns (and writes) the decisions."""
    pp, cfg = params.promote, params.tracking
    deploy, monitor = _report(params, "deploy"), _report(params, "monitor")
    decision = deploy.get("decision", {})
    if "candidates" not in decision or "majority_baseline" not in decision:
        # metrics are not cached by DVC (`cache: false`): `dvc checkout` cannot restore them, a forced rerun can
        raise PromoteError(f"{report_path(params, 'deploy')} has no decision.candidates: rerun the step that "
                           "writes it (`dvc repro --force deploy`)")
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
        with registry_lock(params):
            return _write(params, out)
    example, code = _examples(params), evidence.code()
    with tracking.promote_run(cfg, run_id) as promote_run_id:
        registered = []  # logged and registered side by side with any other promote: no alias moves yet
        for role, cand in decision["candidates"].items():
            name, metric, quality = names[role], cand["metric"], float(cand["quality"])
            shown, record = evidence.evidence(params, role, cand, code)
            tags = {**lineage, "backend": cand["backend"], "metric": metric, "quality": f"{quality:.6f}",
                    "role": role, **shown}
            record = {"model": name, "metric": metric, "quality": quality, **record,
                      "data": {"data_hash": lineage["data_hash"], "data_hash_of": DATA_HASH_OF,
                               "dvc_lock_deploy_inputs": lineage["dvc_lock_deploy_inputs"]},
                      "git_commit": lineage["git_commit"], "tags": tags}
            with tracking.model_run(cfg, promote_run_id, name) as model_run_id:  # one run per model: its config
                uri = tracking.log_text_model(cfg, name, cand["kind"], cand["artifacts"], example, model_run_id,
                                              metrics={metric: quality, "accuracy": cand["accuracy"]}, tags=tags,
                                              inference=params.inference.model_dump())
                tracking.log_json(cfg, model_run_id, record, "evidence.json")
            registered.append((role, name, metric, quality, tracking.register(cfg, uri, name, tags)))
        # the champion read, the alias moved and the report written under one lock: a concurrent promote can
        # neither gate against a champion that is moving nor leave a report naming a champion it replaced
        with registry_lock(params):
            for role, name, metric, quality, version in registered:
                current = tracking.champion(cfg, name)
                champion = _champion_quality(current, metric)
                reasons = gate(quality, float(decision["majority_baseline"]), champion, alarms, pp.gate, metric)
                promoted = not reasons
                if promoted:
                    tracking.set_champion(cfg, name, version)
                tracking.tag_version(cfg, name, version, {"gate": "passed" if promoted else "; ".join(reasons)})
                out["models"][name] = {"role": role, "version": version, "metric": metric, "quality": quality,
                                       "champion_quality_before": champion, "promoted": promoted,
                                       "reasons": reasons,
                                       "champion": version if promoted else current and current["version"]}
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


def _last_decision(params: Params, name: str) -> str:
    """Why `name` has no champion, from the last promote's report (metrics/promote.json) when there."""
    path = Path(params.paths.metrics) / "promote.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        return f"promote has not run here ({path} is not there)"
    except (OSError, ValueError) as err:
        return f"{path} cannot be read ({err})"
    if report.get("skipped"):
        return f"the last promote registered nothing: {report['skipped']}"
    entry = report.get("models", {}).get(name)
    if entry is None:
        return f"the last promote ({path}) did not register {name}"
    if not entry.get("promoted"):
        return (f"the last promote registered v{entry.get('version')} but its gate refused it: "
                f"{'; '.join(entry.get('reasons') or ['no reason recorded'])}")
    return (f"the last promote made v{entry.get('version')} champion ({path}), but the alias is gone from the "
            "registry (removed by hand?)")


def served_model_uri(params: Params, name: str, alias: str | None = None, version: int | None = None,
                     newest_without_champion: bool = False) -> str:
    """The URI `make serve-model` serves: `models:/NAME/VERSION` with a version, else `models:/NAME@ALIAS`
    (alias `champion` by default). What is not there is a ServeError saying why and what can be served;
    `newest_without_champion` (no alias or version asked for): the newest version instead, said on stderr."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if alias and version is not None:
        raise ServeError("give ALIAS or VERSION, not both")
    alias = alias or (tracking.CHAMPION if version is None else None)
    uri = tracking.store_uri(params.tracking.uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise ServeError(f"no MLflow store at {uri[len('sqlite:///'):]} (tracking.uri {params.tracking.uri}): "
                         "`make run` trains, registers and promotes the models")
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise ServeError(f"cannot read the model registry in {uri}: {err.message}") from None
        known = sorted(m.name for m in client.search_registered_models())
        raise ServeError(f"no registered model {name!r} in {uri} (registered: {', '.join(known) or 'none'}); "
                         "promote registers them after `make run`") from None
    except Exception as err:  # sqlalchemy's kinds: a store MLflow cannot read
        first = (str(err).splitlines() or [""])[0]
        raise ServeError(f"cannot read the model registry in {uri} ({type(err).__name__}: {first})") from None
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    listed = ", ".join(map(str, versions)) or "none"
    if version is not None:
        if version not in versions:
            raise ServeError(f"{name} has no version {version} (its versions: {listed})")
        return f"models:/{name}/{version}"
    if alias not in (model.aliases or {}):
        why = _last_decision(params, name) if alias == tracking.CHAMPION else \
            f"its aliases: {', '.join(sorted(model.aliases or {})) or 'none'}"
        if newest_without_champion and alias == tracking.CHAMPION and versions:
            print(f"serve-model: {name} has no champion ({why}); serving its newest version, v{versions[-1]} "
                  f"(`ALIAS=champion` refuses instead; `VERSION=n` names one of: {listed})", file=sys.stderr)
            return f"models:/{name}/{versions[-1]}"
        way = (f"serve a version instead: `make serve-model NAME={name} VERSION={versions[-1]}` (versions: "
               f"{listed})" if versions else "it has no version to serve")
        others = [a for a in (model.aliases or {}) if a != alias]
        way += f", or another alias: ALIAS={others[0]}" if others else ""
        raise ServeError(f"{name} has no alias {alias!r}: {why}. To {way}")
    return f"models:/{name}@{alias}"


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def serve(argv: list[str] | None = None) -> None:
    """`make serve-model`: resolve the model (or exit 1 with the sentence), check the port, then exec
    `mlflow models serve` with the project's store and environment. MAX_TEXTS / MAX_TEXT_BYTES set the served
    model's request limits (qlife.serving)."""
    from qlife.serving import ENV_MAX_TEXT_BYTES, ENV_MAX_TEXTS

    ap = argparse.ArgumentParser(prog="python -m qlife.promote serve", description=serve.__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--alias", default="")
    ap.add_argument("--version", default="")
    ap.add_argument("--port", type=int, default=5001)
    ap.add_argument("--max-texts", default="")
    ap.add_argument("--max-text-bytes", default="")
    args = ap.parse_args(argv)
    try:
        if args.version and not args.version.isdigit():
            raise ServeError(f"VERSION must be a version number, got {args.version!r}")
        params = load_params()
        uri = served_model_uri(params, args.name, args.alias or None, int(args.version) if args.version else None,
                               newest_without_champion=not (args.alias or args.version))
        if not port_free(args.port):
            raise ServeError(f"port {args.port} on 127.0.0.1 is in use (another server listens there): pick "
                             f"another, `make serve-model NAME={args.name} PORT={args.port + 1}`")
    except DataError as err:
        print(f"serve-model: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    store = tracking.store_uri(params.tracking.uri)
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "MLFLOW_REGISTRY_URI": store}
    for key, value in ((ENV_MAX_TEXTS, args.max_texts), (ENV_MAX_TEXT_BYTES, args.max_text_bytes)):
        if value:
            env[key] = value
    exe = Path(sys.executable).with_name("mlflow")
    env["PATH"] = os.pathsep.join([str(exe.parent), env.get("PATH", "")])  # MLflow starts `uvicorn` from PATH
    cmd = [str(exe) if exe.exists() else "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(args.port)]
    print(f"serve-model: {uri} on http://127.0.0.1:{args.port}/invocations", file=sys.stderr)
    os.execvpe(cmd[0], cmd, env)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m qlife.promote", description=__doc__.split("\n")[0])
    ap.add_argument("--run-id", default=os.environ.get(tracking.ENV_PARENT))
    args = ap.parse_args(argv)
    params = load_params()
    try:
        promote(params, args.run_id or None)
    except DataError as err:
        print(f"promote: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
