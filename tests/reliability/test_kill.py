"""SIGKILL at random moments of curate's and deploy's writes (slow: each kill is a real stage process on the
committed tiny repository of tests/test_dvc_repro.py).

A stage's outputs are published as one set (qlife.io.publish_together). The kill lands at the N-th write or
rename of the stage (QLIFE_KILL_AT_WRITE, a fault-injection point in qlife.io; QLIFE_WRITE_EVENTS lists them):
10 moments of curate's writes and 10 of deploy's, drawn from a seed, half before the publish's journal and half
from it on. After each kill every reader gets one complete set (the one before, or the new one when the kill
came after the journal) and train/val/test never share a document; a rerun under `dvc repro` recovers, leaves
no temporary, and no MLflow run is left RUNNING once the next run started."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from qlife.params import ParamsError, parse_params
from tests.test_dvc_repro import repo, sh  # noqa: F401  (the committed tiny repository fixture)

pytestmark = pytest.mark.slow
KILLS = 10  # per stage: 20 moments in all


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
        set_params(tmp_path, {"deploy.keep_ratio": 0.5})  # a param this test once set: gone from the schema
    assert (tmp_path / "params.yaml").read_text() == before


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLIFE_")}
    return {**env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", **extra}


def _stage(repo: Path, step: str, **extra: str) -> subprocess.CompletedProcess:  # noqa: F811
    """`python -m stages.<step>` by hand (no DVC), as a user or the Prefect flow without DVC runs it."""
    return subprocess.run([sys.executable, "-m", f"stages.{step}"], cwd=repo, env=_env(**extra),
                          capture_output=True, text=True, timeout=900)


def _events(repo: Path, step: str) -> list[str]:  # noqa: F811
    log = repo / f"{step}-events.tsv"
    log.unlink(missing_ok=True)
    proc = _stage(repo, step, QLIFE_WRITE_EVENTS=str(log))
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [line.split("\t", 1)[1] for line in log.read_text().splitlines()]
    log.unlink()
    return names


def _moments(names: list[str], seed: int) -> list[int]:
    """KILLS event numbers (1-based): half before the journal (the old set must stay), half from it on."""
    journal = next(i for i, n in enumerate(names) if n.startswith("journal")) + 1
    rng = np.random.default_rng(seed)
    before = rng.choice(np.arange(1, journal), size=min(KILLS // 2, journal - 1), replace=False)
    after = rng.choice(np.arange(journal, len(names) + 1), size=min(KILLS - len(before), len(names) - journal + 1),
                       replace=False)
    return sorted(int(k) for k in [*before, *after])


def _digest(*folders: Path) -> str:
    h = hashlib.sha1()
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def _curated(repo: Path, monkeypatch) -> str:  # noqa: F811
    """Read curate's set as a reader does; assert it is one whole set; return the digest of its data."""
    from qlife import io

    monkeypatch.chdir(repo)
    splits = {s: io.read_jsonl(f"data/curated/{s}.jsonl") for s in ("train", "val", "test", "reference")}
    report = io.read_json("reports/curate.json")
    ids = {s: {r["id"] for r in rows} for s, rows in splits.items()}
    assert sum(map(len, ids.values())) == len(set().union(*ids.values())), \
        "a document in two splits: two runs' splits side by side"
    removed = io.read_jsonl("data/curated/removed.jsonl")
    assert report["splits"] == {s: len(rows) for s, rows in splits.items()}, "the report of another run"
    assert report["summary"]["removed"] == len(removed)
    return _digest(repo / "data/curated", repo / "data/live")


def _pruned(repo: Path, monkeypatch) -> tuple[str, str]:  # noqa: F811
    from qlife import io
    from qlife.loading import load_saved

    monkeypatch.chdir(repo)
    load_saved("data/models/pruned")  # a whole model, not half of one
    report = io.read_json("reports/deploy.json")
    return report["decision"]["method"], _digest(repo / "data/models/pruned")


def _running(repo: Path) -> list[str]:  # noqa: F811
    with sqlite3.connect(repo / "mlflow.db", timeout=30) as db:
        return [r[0] for r in db.execute("select name from runs where status = 'RUNNING'")]


def _kill_series(repo: Path, step: str, settings: list[dict], read, monkeypatch, seed: int) -> None:  # noqa: F811
    """Alternate two settings; kill each run at one of the drawn moments; the set read after must be the one
    before the kill (kill before the journal) or the whole new one (after)."""
    sets = []
    for s in settings:  # each setting's complete set, and its write events
        set_params(repo, s)
        names = _events(repo, step)
        sets.append(read(repo, monkeypatch))
    assert sets[0] != sets[1], "the two settings write the same set: the test could not tell them apart"
    moments = _moments(names, seed)
    journal = next(i for i, n in enumerate(names) if n.startswith("journal")) + 1
    for i, k in enumerate(moments):
        now = read(repo, monkeypatch)
        target = 1 - sets.index(now)
        set_params(repo, settings[target])
        proc = _stage(repo, step, QLIFE_KILL_AT_WRITE=str(k))
        assert proc.returncode == -signal.SIGKILL, (k, proc.returncode, proc.stderr[-2000:])
        got = read(repo, monkeypatch)
        expected, which = (sets[target], "new") if k >= journal else (now, "old")
        assert got == expected, f"kill {i} at write {k} ({names[k - 1]}): not the {which} set"
        print(f"{step}: killed at write {k}/{len(names)} ({names[k - 1][:60]}): the {which} set")


def test_sigkill_during_deploys_writes_leaves_one_set(repo, monkeypatch):  # noqa: F811
    settings = [{"deploy.apply.method": "qubo"}, {"deploy.apply.method": "magnitude"}]
    _kill_series(repo, "deploy", settings, _pruned, monkeypatch, seed=0)
    # under `dvc repro`: killed in the middle of deploy's writes, then a rerun recovers
    set_params(repo, {"deploy.apply.method": "qubo"})
    names = _events(repo, "deploy")
    set_params(repo, {"deploy.apply.method": "magnitude"})
    k = _moments(names, seed=1)[0]
    proc = subprocess.run(["dvc", "repro", "deploy"], cwd=repo, env=_env(QLIFE_KILL_AT_WRITE=str(k)),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode != 0
    _pruned(repo, monkeypatch)
    out = sh("dvc", "repro", "deploy", cwd=repo).stdout
    assert "Running stage 'deploy'" in out
    assert _pruned(repo, monkeypatch)[0] == "magnitude"
    assert "up to date" in sh("dvc", "status", "deploy", cwd=repo).stdout
    assert not _running(repo), f"MLflow runs left RUNNING: {_running(repo)}"


def test_sigkill_during_curates_writes_leaves_one_set(repo, monkeypatch):  # noqa: F811
    settings = [{"curate.seed": 1}, {"curate.seed": 2}]  # the split: the same counts, other documents
    _kill_series(repo, "curate", settings, _curated, monkeypatch, seed=2)
    set_params(repo, {"curate.seed": None})
    sh("dvc", "repro", cwd=repo)  # everything downstream of the curated set, rebuilt
    assert "up to date" in sh("dvc", "status", cwd=repo).stdout
    leftovers = [p for p in (repo / "data").rglob(".*") if p.name not in (".gitignore", ".gitkeep")]
    assert not leftovers, leftovers
    assert not _running(repo), f"MLflow runs left RUNNING: {_running(repo)}"
