"""Faults: a killed write leaves the old output (or a one-step restore), leftovers are cleaned, files keep
normal modes, corrupt inputs name the file, too-large quantum jobs are refused naming the param, two pipelines
can create one new MLflow store at once, a store shared by another clone is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qlife import tracking
from qlife.io import DataError, atomic_path, clean_temporaries, read_json, write_json
from qlife.params import Tracking
from qlife.quantum.memory import ResourceLimitError, require_memory, statevector_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_killed_directory_swap_is_rolled_back_and_leftovers_removed(tmp_path):
    out = tmp_path / "pruned"
    with atomic_path(out, is_dir=True) as tmp:
        (tmp / "w.bin").write_bytes(b"old")
    # a kill between the swap's two renames: only `.pruned.old` is left; a half-written temporary beside it
    out.rename(tmp_path / ".pruned.old")
    (tmp_path / ".pruned.abc123").mkdir()
    (tmp_path / ".pruned.abc123" / "w.bin").write_bytes(b"half")
    done = clean_temporaries(out)
    assert (out / "w.bin").read_bytes() == b"old" and any("restored" in d for d in done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned"]


def test_next_write_cleans_leftovers_and_modes_are_normal(tmp_path):
    (tmp_path / ".report.json.zz9").write_text("partial")
    write_json(tmp_path / "report.json", {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_path(tmp_path / "model", is_dir=True) as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_failed_write_keeps_the_previous_output(tmp_path):
    write_json(tmp_path / "best.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "best.json") as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("killed")
    assert read_json(tmp_path / "best.json") == {"v": 1}


def test_corrupt_json_names_the_file_and_the_way_out(tmp_path):
    (tmp_path / "best.json").write_text('{"config": ')
    with pytest.raises(DataError, match=r"best\.json is not valid JSON.*dvc repro --force"):
        read_json(tmp_path / "best.json")
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_memory_estimate_refuses_naming_the_param():
    need = statevector_bytes(20, batch=128, states=100)
    assert need == 128 * 100 * 2**20 * 8
    with pytest.raises(ResourceLimitError, match=r"distill\.qubits"):
        require_memory(need, "the VQC", "lower distill.qubits", available=24 * 1024**3)
    require_memory(statevector_bytes(11, 128, 60), "the VQC", "x", available=24 * 1024**3)  # default fits


def test_too_large_vqc_exits_1_naming_the_param_before_training(tiny_workdir):
    params = yaml.safe_load((tiny_workdir / "params.yaml").read_text())
    params["distill"]["qubits"] = 20
    params["tracking"]["enabled"] = False
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    import numpy as np

    from qlife.io import save_npz

    rng = np.random.default_rng(0)
    arrays = {f"{s}_{k}": rng.normal(size=(20, 8)) if k != "label" else rng.integers(0, 2, 20)
              for s in ("train", "val", "test") for k in ("hidden", "logits", "label")}
    arrays.update({f"{s}_logits": rng.normal(size=(20, 2)) for s in ("train", "val", "test")})
    save_npz(tiny_workdir / "data/features/teacher.npz", **arrays)
    write_json(tiny_workdir / "data/curated/labels.json", ["a", "b"])
    proc = subprocess.run([sys.executable, "-m", "stages.distill"], cwd=tiny_workdir, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "distill.qubits" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tiny_workdir / "data/models/student").exists()


def test_two_pipelines_create_one_new_store_at_once(tmp_path):
    code = ("import sys; from qlife import tracking; from qlife.params import Tracking; "
            f"cfg = Tracking(uri='sqlite:///{tmp_path}/mlflow.db', experiment='race'); "
            "print(tracking.start_pipeline(cfg))")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-1500:] for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 2  # two pipeline runs in one store


def test_store_shared_with_another_clone_is_refused(tmp_path, monkeypatch):
    first, second = tmp_path / "clone-a", tmp_path / "clone-b"
    first.mkdir()
    second.mkdir()
    cfg = Tracking(uri=f"sqlite:///{tmp_path}/shared.db", experiment="shared")
    monkeypatch.chdir(first)
    tracking.start_pipeline(cfg)
    monkeypatch.chdir(second)
    with pytest.raises(tracking.TrackingError, match="another clone"):
        tracking.start_pipeline(cfg)
    # naming the location on purpose is allowed
    tracking.start_pipeline(Tracking(uri=cfg.uri, experiment="shared", artifact_location=str(first / "mlartifacts")))


@pytest.mark.slow  # 11 s: dvc itself runs the check step (tests/test_dvc_repro.py runs it too)
def test_params_check_stage_stamp(tmp_path):
    (tmp_path / "params.yaml").write_text("monitor: {alpha: 0.1}\n")
    stamp = tmp_path / "metrics" / "params_check.json"
    ok = subprocess.run([sys.executable, "-m", "qlife.cli", "check", "--stamp", str(stamp)], cwd=tmp_path,
                        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert ok.returncode == 0 and read_json(stamp) == {"params": "valid"}
    (tmp_path / "params.yaml").write_text("tracking: {urii: x}\n")
    bad = subprocess.run([sys.executable, "-m", "qlife.cli", "check", "--stamp", str(stamp)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert bad.returncode == 2 and "tracking.urii" in bad.stderr
