"""`dvc repro` on a copy of the repository with tiny params: all seven stages run, metrics are
listed, and a second `dvc repro` runs nothing (slow: seven fresh Python processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qlife.params import parse_params
from tests.conftest import tiny_params_dict

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sh(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("QLIFE_PIPELINE_RUN_ID", None)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def test_dvc_repro_twice(tmp_path, tiny_teacher):
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tmp_path / f)
    # dvc.yaml interpolates ${paths.*}: write the whole validated params, not just the overrides
    full = parse_params(tiny_params_dict(tiny_teacher)).model_dump()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(full))
    sh("git", "init", "-q", cwd=tmp_path)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A", cwd=tmp_path)
    sh("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x", cwd=tmp_path)
    first = sh("dvc", "repro", cwd=tmp_path).stdout
    for stage in ("curate", "encode", "search", "train", "distill", "deploy", "monitor"):
        assert f"Running stage '{stage}'" in first
    second = sh("dvc", "repro", cwd=tmp_path).stdout
    assert "Running stage" not in second
    assert "up to date" in sh("dvc", "status", cwd=tmp_path).stdout
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=tmp_path).stdout)
    metrics = next(iter(shown.values()))["data"]
    assert {Path(p).stem for p in metrics} >= {"curate", "encode", "search", "train", "distill", "deploy", "monitor"}
