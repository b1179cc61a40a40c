"""SIGKILL in the middle of a stage under `dvc repro` (slow: several seeds, each a real stage process):
the previous outputs stay usable, the rerun succeeds, and no temporary survives it.

The kill lands while deploy (the pruning step) is working: after its MLflow stage run opened, at a seeded
fraction of the previous run's measured wall time, with healing fine-tunes turned on so this run takes longer;
the test checks that the report had not been written yet, i.e. that the stage was cut mid-work."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from qlife.params import ParamsError, parse_params
from tests.test_dvc_repro import repo, sh  # noqa: F401  (the committed tiny repository fixture)

pytestmark = pytest.mark.slow
BASELINE: dict[str, float] = {}  # deploy's wall time in the fixture's full run (no healing): the kill's time scale


def set_params(repo: Path, changes: dict[str, object]) -> None:  # noqa: F811
    """Apply dotted-key overrides to the repository's params.yaml through the schema: a key qlife.params does not
    know (a param that was removed or renamed) raises ParamsError here, before anything runs."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(parse_params(raw).model_dump()))


def test_an_unknown_override_fails_at_once(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(parse_params({}).model_dump()))
    before = (tmp_path / "params.yaml").read_text()
    with pytest.raises(ParamsError, match=r"deploy\.keep_ratio"):
        set_params(tmp_path, {"deploy.keep_ratio": 0.5})  # the param this test used to set: gone from the schema
    assert (tmp_path / "params.yaml").read_text() == before


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _outputs_ok(repo: Path) -> None:  # noqa: F811
    from qlife.classifiers import load_teacher

    pruned = repo / "data/models/pruned"
    assert (pruned / "config.json").exists() and list(pruned.glob("*.safetensors")), "pruned model lost"
    load_teacher(pruned)  # a whole model, not half of one
    json.loads((repo / "metrics/deploy.json").read_text())  # not truncated


def _stage_runs(repo: Path, stage: str) -> set[str]:  # noqa: F811
    with sqlite3.connect(repo / "mlflow.db", timeout=30) as db:
        return {r[0] for r in db.execute("select run_uuid from tags where key = 'stage' and value = ?", (stage,))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_mid_stage_loses_nothing(repo, seed):  # noqa: F811
    _outputs_ok(repo)
    report_before = (repo / "metrics/deploy.json").read_bytes()
    pruned_before = _digest(repo / "data/models/pruned")
    baseline_s = BASELINE.setdefault("deploy", json.loads(report_before)["cost"]["total"]["wall_s"])
    # make deploy stale and slower: a few healing steps after each of its 13 prunings (6 methods x 2 unit kinds,
    # and the applied one): on 2 shared cores ~0.5 s a step, so the run outlasts the baseline the kill is timed on
    steps = [2, 3, 4][seed]
    set_params(repo, {"deploy.recovery_steps": steps})
    runs_before = _stage_runs(repo, "deploy")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("QLIFE_PIPELINE_RUN_ID", None)
    proc = subprocess.Popen(["dvc", "repro", "deploy"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not _stage_runs(repo, "deploy") - runs_before:  # deploy's stage run is open: the stage is working
        assert proc.poll() is None, f"dvc repro deploy exited ({proc.returncode}) before the stage started"
        assert time.monotonic() < deadline, "deploy did not start within 300 s"
        time.sleep(0.2)
    started = time.monotonic()
    time.sleep(float(np.random.default_rng(seed).uniform(0.1, 0.9)) * baseline_s)
    assert proc.poll() is None, "deploy finished before the kill: make it slower"
    os.killpg(proc.pid, signal.SIGKILL)
    killed_after = time.monotonic() - started
    proc.wait(timeout=60)
    # cut mid-work: the report was not written; the pruned model is the old one or, when the kill came after its
    # swap, the whole new one
    assert (repo / "metrics/deploy.json").read_bytes() == report_before, "the kill landed after the stage's end"
    _outputs_ok(repo)
    if _digest(repo / "data/models/pruned") != pruned_before:
        print(f"seed {seed}: killed after the new pruned model was swapped in")
    out = sh("dvc", "repro", "deploy", cwd=repo).stdout
    assert "Running stage 'deploy'" in out
    _outputs_ok(repo)
    report = json.loads((repo / "metrics/deploy.json").read_text())
    assert report["decision"]["recovery_steps"] == steps  # the rerun ran with the new params
    full_s = report["cost"]["total"]["wall_s"]
    assert killed_after < full_s, (killed_after, full_s)
    print(f"seed {seed}: killed {killed_after:.1f} s into deploy; the rerun took {full_s:.1f} s")
    leftovers = [p for p in (repo / "data").rglob(".*") if p.name not in (".gitignore", ".gitkeep")]
    assert not leftovers, leftovers
    assert "up to date" in sh("dvc", "status", "deploy", cwd=repo).stdout
