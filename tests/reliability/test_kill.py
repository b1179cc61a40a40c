"""SIGKILL in the middle of a stage under `dvc repro` (slow: several seeds, each a real stage process):
the previous outputs stay usable, the rerun succeeds, and no temporary survives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_dvc_repro import repo, sh  # noqa: F401  (the committed tiny repository fixture)

pytestmark = pytest.mark.slow


def _outputs_ok(repo: Path) -> None:  # noqa: F811
    pruned = repo / "data/models/pruned"
    assert (pruned / "config.json").exists() and list(pruned.glob("*.safetensors")), "pruned model lost"
    json.loads((repo / "metrics/deploy.json").read_text())  # not truncated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_mid_stage_loses_nothing(repo, seed):  # noqa: F811
    _outputs_ok(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["deploy"]["keep_ratio"] = [0.4, 0.6, 0.7][seed]  # make deploy stale
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("QLIFE_PIPELINE_RUN_ID", None)
    proc = subprocess.Popen(["dvc", "repro", "deploy"], cwd=repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(float(np.random.default_rng(seed).uniform(3, 15)))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    _outputs_ok(repo)  # the old (or, when it had finished, the new) outputs: never none, never half
    out = sh("dvc", "repro", "deploy", cwd=repo).stdout
    assert "deploy" in out
    _outputs_ok(repo)
    leftovers = [p for p in (repo / "data").rglob(".*") if p.name not in (".gitignore", ".gitkeep")]
    assert not leftovers, leftovers
    assert "up to date" in sh("dvc", "status", "deploy", cwd=repo).stdout
