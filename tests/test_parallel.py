"""qlife.parallel: one map, serial / local processes / a real Dask cluster, with the same results everywhere.

The cluster test starts a real `dask scheduler` and four `dask worker` processes on 127.0.0.1 (not an in-process
cluster), runs curate (teacher embedding in shards, both SemDeDup variants per cluster) and monitor (per window)
with `orchestration.dask_address` pointing at it, and compares every output byte for byte with the serial run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from qlife import ledger
from qlife.parallel import LocalProcesses, placement, pmap
from qlife.params import Orchestration, parse_params
from tests.conftest import tiny_params_dict


def _square_sum(x: np.ndarray) -> float:
    return float((x * x).sum())


def _busy(seconds: float) -> int:
    """Burn CPU for `seconds` of process time."""
    t0, n = time.process_time(), 0
    while time.process_time() - t0 < seconds:
        n += 1
    return os.getpid()


def test_placement_follows_orchestration():
    assert placement(Orchestration()).kind == "serial"
    assert placement(Orchestration(workers=2)).kind == "pool"
    assert placement(Orchestration(workers=2, local="dask")).kind == "local_dask"
    assert placement(Orchestration(dask_address="tcp://127.0.0.1:8786")).kind == "dask"
    with pytest.raises(ValueError, match="dask_address"):
        Orchestration(dask_address="localhost:8786")


def test_pool_gives_the_serial_results_in_order_and_charges_worker_cpu():
    items = [np.random.default_rng(i).normal(size=1000) for i in range(12)]
    serial = pmap(_square_sum, items)
    pooled = pmap(_square_sum, items, Orchestration(workers=2), "test squares")
    assert pooled == serial  # bitwise: floats compared exactly, in item order
    # work done in worker processes is invisible to this process's clock: the ledger reads the workers' clocks
    with ledger.measure() as m:
        pids = pmap(_busy, [0.3] * 4, Orchestration(workers=2), "test busy")
    assert os.getpid() not in pids and len(set(pids)) == 2
    assert m.cpu_children_s >= 1.1, m  # 4 x 0.3 s in the workers (their own clocks)
    assert m.cpu_s < 2.0, m  # once: the chunks' own reports are not added on top (that read 2.4 s and more)


WORKERS = 4  # more worker processes than this machine's 2 cores: placement, not speed, is what is tested


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A real scheduler and four worker processes (one thread each) on loopback; all stopped at the end."""
    from distributed import Client

    cluster = LocalProcesses(WORKERS, logs=str(tmp_path_factory.mktemp("dask-logs")))
    with cluster as address, Client(address, timeout="60s", set_as_default=False) as client:
        assert len(client.scheduler_info()["workers"]) == WORKERS
        yield address, client
    assert all(p.poll() is not None for p in cluster.procs)  # nothing it started is left running


def _task_counts(client) -> dict[str, int]:
    """Tasks the scheduler computed per key prefix (transitions into memory: once per finished task)."""
    def counts(dask_scheduler):
        return {k: int(v.state_counts.get("memory", 0)) for k, v in dask_scheduler.task_prefixes.items()}
    return client.run_on_scheduler(counts)


TIMING_KEYS = {"wall_s", "cpu_s", "energy_kwh", "wall_s_per_window", "cost", "wall_s_quantum_over_classical",
               "seconds", "parallel"}


def _without_timings(obj):
    """The report less what the clock decides: timing keys, and seconds quoted in prose (a verdict's note
    names the embedding's time, e.g. "(14.1 s)")."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    if isinstance(obj, str):
        return re.sub(r"\b\d+(\.\d+)?(e[-+]?\d+)? s\b", "<t> s", obj)
    return obj


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(work: Path, raw: dict, stages: list[str]) -> dict[str, dict]:
    import importlib

    old = os.getcwd()
    os.chdir(work)
    try:
        params = parse_params(raw)
        return {s: importlib.import_module(f"stages.{s}").run(params) for s in stages}
    finally:
        os.chdir(old)


@pytest.mark.slow  # a Dask cluster and curate + encode + monitor twice; the lifecycle flow test runs stages on Dask
def test_curate_and_monitor_on_a_real_cluster_match_the_serial_run(dask_cluster, tiny_teacher, tmp_path):
    address, client = dask_cluster
    raw = tiny_params_dict(tiny_teacher)
    # the teacher embedder in shards of 150 texts (4 shards); a tiny eps: the random tiny teacher embeds texts alike
    raw["curate"].update(embedder="teacher", embed_shard=150, eps=1e-4, n_clusters=6)
    raw["tracking"]["enabled"] = False
    raw["monitor"]["quality"] = {"models": []}  # no trained model here (and the estimates are not parallel work)
    serial, cluster = tmp_path / "serial", tmp_path / "cluster"
    serial.mkdir()
    cluster.mkdir()
    on_dask = {**raw, "orchestration": {"dask_address": address}}
    before = _task_counts(client)

    reports = {"serial": _run(serial, raw, ["curate"]), "cluster": _run(cluster, on_dask, ["curate"])}
    assert _files(serial / "data") == _files(cluster / "data")  # curated splits, removed, rejects, live windows
    # encode is not parallel: run once and shared, so monitor starts from the same features in both folders
    _run(serial, raw, ["encode"])
    shutil.copytree(serial / "data" / "encoded", cluster / "data" / "encoded")
    for name, folder in (("serial", serial), ("cluster", cluster)):
        reports[name].update(_run(folder, raw if name == "serial" else on_dask, ["monitor"]))
    assert _files(serial / "data" / "monitor") == _files(cluster / "data" / "monitor")  # drift.json, rejects.jsonl
    for stage in ("curate", "monitor"):
        assert _without_timings(reports["serial"][stage]) == _without_timings(reports["cluster"][stage]), stage
    # the work was real: shards embedded, near-duplicates found, windows tested
    cur = reports["serial"]["curate"]
    assert cur["summary"]["removed"] > 0 and cur["summary"]["docs_out"] > 300
    assert cur["methods"]["quantum"]["circuits"] > 0
    assert json.loads((serial / "data/monitor/drift.json").read_text()).keys() == {"window-000", "window-001"}
    # the scheduler ran them: 4 embedding shards, a task per non-singleton cluster per SemDeDup variant, 2 windows
    seen = {k: v - before.get(k, 0) for k, v in _task_counts(client).items()}
    assert seen.get("curate embed shards") == 4, seen
    assert seen.get("curate semdedup clusters", 0) >= 2 * 2, seen
    assert seen.get("monitor windows") == 2, seen


@pytest.mark.slow  # 12 s: worker processes start and import torch
def test_deploy_layer_qubos_on_workers_match_the_serial_solves():
    """Deploy's per-layer keep-k-of-n QUBOs (QAOA, seeded by its spec) give the same keeps and energies on two
    worker processes as one after another."""
    from qlife.methods.prune_plan import LayerSolve
    from qlife.methods.selection import QuboSelector
    from qlife.params import QAOASampler
    from tests.methods.test_selection import planted

    problems = [(planted(8, seed), 4) for seed in range(4)]
    job = LayerSolve(QuboSelector(QAOASampler(p=1, restarts=1, maxiter=40), "t.qaoa"))
    serial = pmap(job, problems)
    pooled = pmap(job, problems, Orchestration(workers=2), "test qubo layers")
    assert [k.tolist() for k, _ in pooled] == [k.tolist() for k, _ in serial]
    assert [r.energy for _, r in pooled] == [r.energy for _, r in serial]
    assert all(len(k) == 4 for k, _ in serial) and len({tuple(k) for k, _ in serial}) > 1


def test_an_address_with_no_scheduler_is_a_clear_error(monkeypatch):
    from qlife import parallel

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(parallel.ParallelError, match="orchestration.dask_address.*no Dask scheduler"):
        pmap(_square_sum, [np.ones(3)] * 2, Orchestration(dask_address=f"tcp://127.0.0.1:{port}"))
