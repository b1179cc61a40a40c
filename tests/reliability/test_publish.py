"""A stage's outputs change as one set (qlife.io.publish_together): a SIGKILL at every write and rename of a
publish leaves readers the whole old set or the whole new one, never half of each; an exception discards the
staged set; a publish held by a live process makes readers wait, then refuse with a sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qlife import io

# a stand-in stage: three splits of one run (ids tagged with the run), a model folder, a report, and a stale
# file it no longer writes; every write goes through qlife.io as the stages' writes do
WRITER = """
import sys
from qlife import io
run = sys.argv[1]
with io.publish_together("toy"):
    for split in ("train", "val", "test"):
        io.write_jsonl(f"data/{split}.jsonl", [{"id": f"{run}-{split}-{i}"} for i in range(5)])
    with io.atomic_path("models/m", is_dir=True) as tmp:
        (tmp / "weights.txt").write_text(run)
        io.write_json(tmp / "config.json", {"run": run})
    io.write_json("metrics/toy.json", {"run": run})
    io.discard("data/stale.jsonl")
"""


def _write(folder: Path, run: str, kill_at: int | None = None, events: Path | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QLIFE_")}
    if kill_at is not None:
        env["QLIFE_KILL_AT_WRITE"] = str(kill_at)
    if events is not None:
        env["QLIFE_WRITE_EVENTS"] = str(events)
    return subprocess.run([sys.executable, "-c", WRITER, run], cwd=folder, env=env, timeout=60).returncode


def _read_set(folder: Path) -> str:
    """The run every output comes from, read as a reader does (qlife.io completes a cut publish first); fails
    when they come from two runs."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        runs = {row["id"].split("-")[0] for s in ("train", "val", "test") for row in io.read_jsonl(f"data/{s}.jsonl")}
        runs.add(io.read_json("models/m/config.json")["run"])
        runs.add(io.current(Path("models/m")).joinpath("weights.txt").read_text())
        runs.add(io.read_json("metrics/toy.json")["run"])
    finally:
        os.chdir(cwd)
    assert len(runs) == 1, f"outputs of two runs side by side: {sorted(runs)}"
    return runs.pop()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if ".qlife" not in p.parts]


def test_a_kill_at_every_write_leaves_one_whole_set(tmp_path):
    assert _write(tmp_path, "old") == 0
    (tmp_path / "data/stale.jsonl").write_text("{}\n")
    events = tmp_path / "events.tsv"
    assert _write(tmp_path, "probe", events=events) == 0
    names = [line.split("\t")[1] for line in events.read_text().splitlines()]
    # 5 outputs staged (the folder's own file is written inside its temporary copy), the journal, 5 renames
    assert sum(n.startswith("staged") for n in names) == 6 and sum(n.startswith("publish") for n in names) == 5
    assert names.index("journal toy") == 6
    seen = {}
    for k in range(1, len(names) + 1):
        assert _write(tmp_path, "old") == 0
        (tmp_path / "data/stale.jsonl").write_text("{}\n")
        assert _write(tmp_path, "new", kill_at=k) == -9
        seen[names[k - 1]] = got = _read_set(tmp_path)
        # before the journal the old set stays; from the journal on, the next reader completes the new one
        assert got == ("new" if k >= names.index("journal toy") + 1 else "old"), (k, names[k - 1], got)
        assert (tmp_path / "data/stale.jsonl").exists() == (got == "old")
        assert not list((tmp_path / ".qlife/publishing").glob("*.json")), "the cut publish was not completed"
    assert _write(tmp_path, "rerun") == 0 and _read_set(tmp_path) == "rerun"
    assert not _temporaries(tmp_path), _temporaries(tmp_path)


def test_an_exception_discards_the_staged_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.write_json("metrics/a.json", {"v": 1})
    with pytest.raises(RuntimeError), io.publish_together("s"):
        io.write_json("metrics/a.json", {"v": 2})
        with io.atomic_path("models/m", is_dir=True) as tmp:
            (tmp / "w").write_text("x")
        assert io.read_json("metrics/a.json") == {"v": 2}  # the block reads what it staged
        assert io.current("models/m/w").read_text() == "x"
        raise RuntimeError("the stage failed")
    assert io.read_json("metrics/a.json") == {"v": 1}
    assert not (tmp_path / "models/m").exists() and not _temporaries(tmp_path)


HOLDER = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(lock: Path, seconds: float) -> subprocess.Popen:
    """Another process publishing: it holds the publish's lock for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_reader_waits_for_a_live_publish_then_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.write_json("metrics/a.json", {"v": 1})
    journal = tmp_path / ".qlife/publishing/toy.json"
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"name": "toy", "pid": 1, "entries": []}))
    holder = _hold(journal.with_suffix(".lock"), 1.0)
    t0 = time.monotonic()
    assert io.read_json("metrics/a.json") == {"v": 1}  # waited for the publisher, then completed its journal
    assert time.monotonic() - t0 >= 0.5 and not journal.exists()
    holder.wait(timeout=30)
    journal.write_text(json.dumps({"name": "toy", "pid": 1, "entries": []}))
    holder = _hold(journal.with_suffix(".lock"), 10.0)
    try:
        with pytest.raises(io.DataError, match=r"outputs of toy are being published by another process"):
            io.settle(timeout_s=0.3)
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_journal_that_cannot_be_completed_is_a_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    journal = tmp_path / ".qlife/publishing/curate.json"
    journal.parent.mkdir(parents=True)
    journal.write_text("{not json")
    with pytest.raises(io.DataError, match=r"curate were cut.*dvc repro --force curate"):
        io.read_json(tmp_path / "anything.json")


def test_stages_in_threads_publish_their_own_sets(tmp_path, monkeypatch):
    """The Prefect flow runs stages as threads of one process: each thread's block stages only its writes."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.chdir(tmp_path)
    gate = threading.Barrier(2)

    def stage(name: str, fail: bool) -> None:
        with io.publish_together(name):
            io.write_json(f"metrics/{name}.json", {"run": name})
            gate.wait(timeout=10)  # both blocks open at once
            if fail:
                raise RuntimeError(name)

    with ThreadPoolExecutor(2) as pool:
        ok, bad = pool.submit(stage, "a", False), pool.submit(stage, "b", True)
        ok.result()
        with pytest.raises(RuntimeError):
            bad.result()
    assert io.read_json("metrics/a.json") == {"run": "a"} and not (tmp_path / "metrics/b.json").exists()
    assert not _temporaries(tmp_path)


def test_a_stop_signal_waits_for_the_renames(tmp_path, monkeypatch):
    """SIGTERM during the publish's renames is held until they are done: the handler then runs on a whole set."""
    import signal

    monkeypatch.chdir(tmp_path)
    io.write_json("metrics/a.json", {"v": 1})
    io.write_json("metrics/b.json", {"v": 1})
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append(io.read_json("metrics/b.json")))
    real = io._roll_forward

    def slow_roll(entries):  # the signal arrives after the first rename, before the second
        for i, entry in enumerate(entries):
            real([entry])
            if i == 0:
                os.kill(os.getpid(), signal.SIGTERM)
                assert not seen, "the handler ran in the middle of the renames"

    monkeypatch.setattr(io, "_roll_forward", slow_roll)
    try:
        with io.publish_together("s"):
            io.write_json("metrics/a.json", {"v": 2})
            io.write_json("metrics/b.json", {"v": 2})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [{"v": 2}] and io.read_json("metrics/a.json") == {"v": 2}
