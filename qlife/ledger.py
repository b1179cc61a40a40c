"""Time, energy and QPU-resource accounting: the energy ledger, measured rather than asserted.

`Meter` times a block and estimates its energy. Its CPU seconds (`cpu_s`) are this process's (all threads) plus
those of other processes working for it during the block (`cpu_children_s`, the part of `cpu_s` spent outside this
process):

- child processes started and waited for in the block (a `subprocess.run`, e.g. serving cost's isolated model):
  `resource.getrusage(RUSAGE_CHILDREN)`, which also holds the descendants they waited for;
- descendants alive at either end (`qlife.parallel`'s pool and local Dask workers, which outlive a map): their
  own CPU times (psutil) at the end less those at the start, a process counted once whichever way it ends;
- Dask workers that are not this process's descendants (a remote cluster): the CPU seconds each chunk reports
  (`qlife.parallel` -> `add_external_cpu`; a local descendant's chunks are not reported, its clock counts them).

Energy:

- `cpu_model` (default, deterministic, no dependency): E = cpu_s * cpu_watts_per_core + wall_s * base_watts.
  10 W per busy core is a server CPU's TDP divided by its cores (e.g. 200 W / 20 cores); 5 W base
  covers DRAM and the idle package share. Both are params (`ledger:`), reported with every figure.
- `codecarbon`: CodeCarbon's OfflineEmissionsTracker (RAPL where readable, its own TDP table otherwise).

Quantum work adds its resource counts (qubits, circuits, shots, estimated QPU seconds and energy) to
the same entry via `Meter.add_quantum`. `summarize(reports)` builds metrics/ledger.json.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from qlife.params import Ledger

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows: children then count only while alive (psutil)
    resource = None  # type: ignore[assignment]

J_PER_KWH = 3.6e6
QUANTUM_SUM_KEYS = ("circuits", "shots", "qpu_seconds_est", "energy_kwh_est")
_external_cpu_s = 0.0  # CPU seconds spent for this process in processes that are not its descendants


def add_external_cpu(seconds: float) -> None:
    """Charge CPU seconds that ran in processes that are not this process's descendants (remote Dask workers) to
    every meter open now: neither process_time nor the children accounting can see them."""
    global _external_cpu_s
    _external_cpu_s += float(seconds)


def _reaped_cpu() -> float:
    """User + system seconds of this process's children that have ended and been waited for (and of the
    descendants they waited for)."""
    if resource is None:
        return 0.0
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _live_descendants() -> dict[tuple[int, float], float]:
    """CPU seconds of every live (or not yet reaped) descendant of this process, its own plus those of the
    children it reaped, keyed by (pid, start time): a reused pid is another process."""
    import psutil

    out: dict[tuple[int, float], float] = {}
    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return out
    for proc in procs:
        try:
            with proc.oneshot():
                t, start = proc.cpu_times(), proc.create_time()
        except psutil.Error:  # ended between the listing and the read: its parent's reaped figure counts it
            continue
        out[(proc.pid, start)] = t.user + t.system + getattr(t, "children_user", 0.0) + \
            getattr(t, "children_system", 0.0)
    return out


def children_cpu(start: tuple[float, dict[tuple[int, float], float]],
                 end: tuple[float, dict[tuple[int, float], float]]) -> float:
    """CPU seconds descendants spent between two `(_reaped_cpu(), _live_descendants())` readings. A process alive at
    the start counts from its start figure: alive at the end, by its own clock; ended, through whoever reaped it
    (this process's rusage or a live descendant's children times), less its start figure."""
    (r0, live0), (r1, live1) = start, end
    delta = (r1 - r0) + sum(cpu - live0.get(key, 0.0) for key, cpu in live1.items())
    delta -= sum(cpu for key, cpu in live0.items() if key not in live1)
    return max(0.0, delta)  # clock ticks (10 ms) and a descendant orphaned away can leave a few ms below zero


def verdict_cost(meter: dict | None, quantum: bool = False) -> dict:
    """A `measure` record as a verdict's cost (qlife.verdict): wall_s, cpu_s, energy_kwh, qpu_s_est (0 for a
    classical method; a quantum one's hardware estimate when its record has one, else None)."""
    meter = meter or {}
    qpu = meter.get("quantum", {}).get("qpu_seconds_est")
    return {"wall_s": meter.get("wall_s"), "cpu_s": meter.get("cpu_s"), "energy_kwh": meter.get("energy_kwh"),
            "qpu_s_est": qpu if quantum else 0.0}


@dataclass
class Meter:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process and cpu_children_s
    cpu_children_s: float = 0.0  # other processes working for it (child processes, pool and Dask workers)
    energy_kwh: float = 0.0
    energy_model: str = "cpu_model"
    quantum: dict[str, Any] = field(default_factory=dict)

    def add_quantum(self, resources: dict[str, Any]) -> None:
        """Merge a quantum resource record: counts add up, the rest (backend, qubits, depth) is kept."""
        for key, value in resources.items():
            if key in QUANTUM_SUM_KEYS and isinstance(value, (int, float)):
                self.quantum[key] = self.quantum.get(key, 0) + value
            elif isinstance(value, (int, float)) and key in self.quantum:
                self.quantum[key] = max(self.quantum[key], value)
            else:
                self.quantum[key] = value

    def as_dict(self) -> dict[str, Any]:
        out = {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3),
               "cpu_children_s": round(self.cpu_children_s, 3), "energy_kwh": self.energy_kwh,
               "energy_model": self.energy_model}
        if self.quantum:
            out["quantum"] = dict(self.quantum)
        return out


def cpu_model_kwh(cpu_s: float, wall_s: float, cfg: Ledger) -> float:
    return (cpu_s * cfg.cpu_watts_per_core + wall_s * cfg.base_watts) / J_PER_KWH


@contextmanager
def measure(cfg: Ledger | None = None) -> Iterator[Meter]:
    """Time the block; the Meter is filled in when the block ends."""
    cfg = cfg or Ledger()
    meter = Meter(energy_model=cfg.energy)
    tracker = _codecarbon() if cfg.energy == "codecarbon" else None
    kids0 = (_reaped_cpu(), _live_descendants())
    w0, c0, x0 = time.perf_counter(), time.process_time(), _external_cpu_s
    try:
        yield meter
    finally:
        meter.wall_s = time.perf_counter() - w0
        own = time.process_time() - c0
        meter.cpu_children_s = children_cpu(kids0, (_reaped_cpu(), _live_descendants())) + (_external_cpu_s - x0)
        meter.cpu_s = own + meter.cpu_children_s
        if tracker is not None:
            tracker.stop()
            meter.energy_kwh = float(tracker.final_emissions_data.energy_consumed)
        else:
            meter.energy_kwh = cpu_model_kwh(meter.cpu_s, meter.wall_s, cfg)


def _codecarbon() -> Any:
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError as err:  # pragma: no cover - codecarbon is a pinned dependency
        raise RuntimeError("ledger.energy 'codecarbon' needs `pip install codecarbon`") from err
    tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error")
    tracker.start()
    return tracker


def summarize(reports: dict[str, dict]) -> dict[str, Any]:
    """Per stage and method: wall, CPU, energy and QPU figures; plus totals."""
    stages, total = {}, {"wall_s": 0.0, "cpu_s": 0.0, "energy_kwh": 0.0, "qpu_seconds_est": 0.0}
    for stage, report in reports.items():
        cost = report.get("cost", {})
        stages[stage] = cost
        stage_total = cost.get("total", {})
        for key in ("wall_s", "cpu_s", "energy_kwh"):
            total[key] += float(stage_total.get(key, 0.0))
        for method in cost.values():
            total["qpu_seconds_est"] += float(method.get("quantum", {}).get("qpu_seconds_est", 0.0))
    return {"stages": stages, "total": total}
