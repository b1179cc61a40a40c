"""One parallel map for the stages' embarrassingly parallel work: serial, a local process pool, or Dask.

`pmap(fn, items, cfg, desc)` returns `[fn(x) for x in items]` in item order, wherever it ran:

- `orchestration.dask_address: tcp://host:8786`: on that Dask cluster (`dask.distributed.Client`); the tasks
  show in its dashboard under the name `desc`.
- no address, `orchestration.workers: n > 1`: `n` local worker processes: `orchestration.local: pool` (loky's
  reusable process pool: cloudpickle, spawn-safe) or `dask` (a `LocalCluster` of n processes, with dashboard).
- otherwise (the default: `workers: 1`): in this process, a plain loop.

Items travel in at most 4 x workers contiguous chunks (a cluster of a few documents costs more to ship than to
compute). Results never depend on where they ran: an item carries its own seed (the caller derives it from the
item, not from the order of completion), and a worker runs with `threads_per_worker` BLAS / torch threads (0: its
host's cores over the worker processes on that host), which give the same numbers on any thread count the tests
compare (byte-identical outputs, `tests/test_parallel.py`). Work done in other processes is invisible to
`time.process_time()`: `qlife.ledger`'s meters read the CPU clocks of this process's descendants (the pool's and a
local cluster's workers), and each chunk measures its own CPU seconds, which the ledger adds to every open meter
when it ran in a process that is not a descendant (a remote Dask worker), so the energy ledger counts each worker
once. Long maps print progress to stderr. Inside a Dask worker (a flow's task
on a `DaskTaskRunner`), the map goes to the same cluster through `worker_client`, which secedes meanwhile.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qlife.params import Orchestration

PROGRESS_EVERY_S = 10.0  # a map running longer prints its progress this often
CONNECT_TIMEOUT_S = 30  # a Dask scheduler that does not answer within this is an error naming the param


class ParallelError(RuntimeError):
    """The placement params name cannot run (no scheduler at the address, no workers): the message says which."""


@dataclass(frozen=True)
class Placement:
    """Where a map runs: kind serial | pool | local_dask | dask, with its workers and address."""

    kind: str
    workers: int = 1
    address: str | None = None
    threads: int = 0  # per worker; 0: cores // workers (at least 1)

    @property
    def label(self) -> str:
        return self.kind if self.kind == "serial" else f"{self.kind}:{self.address or self.workers}"


def placement(cfg: Orchestration | None) -> Placement:
    cfg = cfg or Orchestration()
    if cfg.dask_address:
        return Placement("dask", cfg.workers, cfg.dask_address, cfg.threads_per_worker)
    if cfg.workers > 1:
        return Placement("local_dask" if cfg.local == "dask" else "pool", cfg.workers, None, cfg.threads_per_worker)
    return Placement("serial")


def _threads(p: Placement) -> int:
    """BLAS / torch threads per local worker: the param, else this machine's cores over the workers."""
    return p.threads or max(1, (os.cpu_count() or 1) // max(p.workers, 1))


def _worker_threads(spec: int | dict[str, int]) -> int:
    """Threads for this process: an int, or {host: worker processes on it} (a Dask cluster: each host's cores
    shared among its own workers, so two 1-thread workers on 2 cores do not run 2 torch threads each)."""
    if isinstance(spec, int):
        return spec
    from distributed import get_worker

    host = get_worker().address.rsplit(":", 1)[0]
    return max(1, (os.cpu_count() or 1) // max(spec.get(host, 1), 1))


def _limit_threads(n: int) -> Any:
    """Hold BLAS and torch at n threads inside a worker; returns a callable that restores them."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(n)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)

    def restore() -> None:
        limits.restore_original_limits()
        if torch is not None and before is not None:
            torch.set_num_threads(before)

    return restore


def _call(fn: Callable, chunk: list, threads: int | dict[str, int]) -> tuple[list, float, tuple[str, int]]:
    """Run one chunk of items in a worker: (results, the CPU seconds this process spent on them, (host, pid))."""
    import socket

    restore = _limit_threads(_worker_threads(threads))
    c0 = time.process_time()
    try:
        return [fn(x) for x in chunk], time.process_time() - c0, (socket.gethostname(), os.getpid())
    finally:
        restore()


def _remote_cpu(triples: list[tuple[list, float, tuple[str, int]]]) -> float:
    """CPU seconds of the chunks that ran outside this process's descendants: a descendant's own clock reaches
    the ledger's meters already (qlife.ledger), a remote worker's only through what its chunks report."""
    import socket

    import psutil

    try:
        mine = {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        mine = set()
    host = socket.gethostname()
    return sum(cpu for _, cpu, (where, pid) in triples if not (where == host and pid in mine))


def chunks(items: list, workers: int, per_worker: int = 4) -> list[list]:
    """Items in order, cut into at most `per_worker` x `workers` contiguous chunks: small items (a cluster of a
    few documents) would cost more to ship than to compute one by one."""
    n = min(len(items), max(1, per_worker * workers))
    bounds = np.linspace(0, len(items), n + 1).round().astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class _Progress:
    def __init__(self, desc: str, total: int, where: str):
        self.desc, self.total, self.where = desc, total, where
        self.t0 = self.last = time.perf_counter()
        self.done = 0

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or (self.done == self.total and now - self.t0 >= PROGRESS_EVERY_S):
            self.last = now
            print(f"{self.desc}: {self.done}/{self.total} on {self.where} ({now - self.t0:.0f} s)", file=sys.stderr)


_CLIENTS: dict[tuple, Any] = {}


def _pool(p: Placement):
    """loky's reusable process pool (cloudpickle: closures and dataclass jobs travel; spawn: torch-safe)."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=p.workers, timeout=300)


def in_dask_worker() -> bool:
    """True inside a task on a Dask worker (e.g. a flow's stage task on a DaskTaskRunner)."""
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
        return True
    except ValueError:
        return False


def _client(p: Placement):
    """A Dask client to the address, or to a LocalCluster of p.workers processes (cached per process)."""
    from distributed import Client

    key = (p.kind, p.address, p.workers)
    if key in _CLIENTS:
        return _CLIENTS[key]
    if p.kind == "dask":
        try:
            client = Client(p.address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ParallelError(f"orchestration.dask_address {p.address}: no Dask scheduler answered within "
                                f"{CONNECT_TIMEOUT_S} s ({type(err).__name__}); start one (`python -m qlife.parallel "
                                "--workers 2` on this machine) or set orchestration.dask_address: null") from None
        if not client.scheduler_info()["workers"]:
            client.close()
            raise ParallelError(f"orchestration.dask_address {p.address}: the scheduler has no workers; start "
                                f"`dask worker {p.address}` on each machine (with this project's environment)")
    else:
        import dask
        from distributed import LocalCluster

        with dask.config.set({"distributed.worker.profile.enabled": False}):  # see LocalProcesses
            cluster = LocalCluster(n_workers=p.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=40)
        client = Client(cluster, set_as_default=False)
    if not _CLIENTS:
        atexit.register(close)
    _CLIENTS[key] = client
    return client


def close() -> None:
    """Close the cached Dask clients (and local clusters) this process opened."""
    for key in list(_CLIENTS):
        client = _CLIENTS.pop(key)
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_map(client, fn: Callable, parts: list[list], threads: int | dict, desc: str, progress: _Progress
              ) -> list:
    from distributed import as_completed

    data = client.scatter(parts, hash=False)  # the chunks travel as data, not inside the task graph
    futures = client.map(_call, [fn] * len(parts), data, [threads] * len(parts), key=_keys(desc, len(parts)),
                         pure=False)
    for _ in as_completed(futures, loop=client.loop):
        progress.step()
    return client.gather(futures)


def _hosts(client) -> dict[str, int]:
    """Worker processes per host of a Dask cluster."""
    out: dict[str, int] = {}
    for addr in client.scheduler_info(n_workers=-1)["workers"]:
        host = addr.rsplit(":", 1)[0]
        out[host] = out.get(host, 0) + 1
    return out


def _keys(desc: str, n: int) -> list[str]:
    import uuid

    tag = uuid.uuid4().hex[:8]
    return [f"{desc}-{tag}-{i}" for i in range(n)]


TIMINGS: dict[str, dict[str, float]] = {}  # desc -> wall_s, items, maps: where a stage's parallel time goes


def timings(prefix: str = "", reset: bool = False) -> dict[str, dict[str, float]]:
    """Wall seconds, items and maps per map name starting with `prefix` since its last reset (a stage reports its
    own: curate's maps are named "curate ..."; bench.scale splits curate's time with them)."""
    out = {k: dict(v) for k, v in TIMINGS.items() if k.startswith(prefix)}
    if reset:
        for k in out:
            del TIMINGS[k]
    return out


def pmap(fn: Callable[[Any], Any], items: Sequence, cfg: Orchestration | None = None, desc: str = "map"
         ) -> list:
    """[fn(x) for x in items], in order, on the placement `cfg` names; remote workers' CPU seconds go to the
    ledger (local ones it reads itself)."""
    t0 = time.perf_counter()
    items = list(items)
    out = _pmap(fn, items, placement(cfg), desc)
    row = TIMINGS.setdefault(desc, {"wall_s": 0.0, "items": 0, "maps": 0})
    row["wall_s"] += time.perf_counter() - t0
    row["items"] += len(items)
    row["maps"] += 1
    return out


def _pmap(fn: Callable[[Any], Any], items: list, p: Placement, desc: str) -> list:
    from qlife import ledger

    if p.kind == "serial" or len(items) <= 1:
        return [fn(x) for x in items]
    if in_dask_worker():  # a task on a Dask worker: its map goes to the same cluster, seceding meanwhile
        from distributed import worker_client

        with worker_client() as wc:
            hosts = _hosts(wc)
            parts = chunks(items, sum(hosts.values()))
            progress = _Progress(f"{desc} ({len(items)} items)", len(parts), "this Dask cluster")
            done = _dask_map(wc, fn, parts, p.threads or hosts, desc, progress)
    elif p.kind == "pool":
        from concurrent.futures import as_completed

        parts = chunks(items, p.workers)
        progress = _Progress(f"{desc} ({len(items)} items)", len(parts), p.label)
        futures = [_pool(p).submit(_call, fn, part, _threads(p)) for part in parts]
        for _ in as_completed(futures):
            progress.step()
        done = [f.result() for f in futures]
    else:
        client = _client(p)
        hosts = _hosts(client)
        parts = chunks(items, sum(hosts.values()))
        progress = _Progress(f"{desc} ({len(items)} items)", len(parts), p.label)
        done = _dask_map(client, fn, parts, p.threads or hosts, desc, progress)
    ledger.add_external_cpu(_remote_cpu(done))
    return [r for results, _, _ in done for r in results]


class LocalProcesses:
    """A real Dask cluster on this machine: `dask scheduler` and `workers` x `dask worker` processes (one thread
    each) on 127.0.0.1, as separate programs (not an in-process LocalCluster); `with LocalProcesses(2) as address:`
    yields its tcp:// address and stops every process it started on exit. For tests, benchmarks and trying
    `orchestration.dask_address` without a cluster; `python -m qlife.parallel --workers 2` keeps one running."""

    def __init__(self, workers: int = 2, logs: str | None = None, timeout: float = 120):
        self.workers, self.logs, self.timeout = workers, logs, timeout
        self.procs: list = []
        self.address = ""

    def __enter__(self) -> str:
        import socket
        import subprocess
        from pathlib import Path

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"tcp://127.0.0.1:{port}"
        dask = str(Path(sys.executable).with_name("dask"))
        logs = Path(self.logs) if self.logs else None

        # the workers' statistical profiler samples every running task's stack every 10 ms: measured here, 18% of
        # the embedding's time on 2 cores; off (its dashboard tab stays empty)
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}

        def start(args: list[str], name: str):
            err = (logs / f"{name}.log").open("w") if logs else subprocess.DEVNULL
            self.procs.append(subprocess.Popen([dask, *args], stdout=subprocess.DEVNULL, stderr=err, env=env))

        if logs:
            logs.mkdir(parents=True, exist_ok=True)
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
              "scheduler")
        for i in range(self.workers):
            start(["worker", self.address, "--nworkers", "1", "--nthreads", "1", "--memory-limit", "0",
                   "--no-dashboard", "--name", f"worker-{i}"], f"worker-{i}")
        try:
            self._wait()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.address

    def _wait(self) -> None:
        from distributed import Client

        with Client(self.address, timeout=f"{self.timeout}s", set_as_default=False) as c:
            c.wait_for_workers(self.workers, timeout=self.timeout)

    def __exit__(self, *exc) -> None:
        import subprocess

        for key in [k for k in _CLIENTS if k[1] == self.address]:  # our cached client to this scheduler
            client = _CLIENTS.pop(key)
            client.close()
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="start a local Dask scheduler and workers (separate processes) and "
                                             "print the address for orchestration.dask_address; Ctrl-C stops them")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with LocalProcesses(args.workers) as address:
        print(f"orchestration.dask_address: {address}  ({args.workers} workers; Ctrl-C stops them)", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
