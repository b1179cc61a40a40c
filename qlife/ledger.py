"""Time, energy and QPU-resource accounting: the energy ledger, measured rather than asserted.

`Meter` times a block (wall and process CPU seconds, all threads, plus the CPU seconds of `qlife.parallel`'s
worker processes reported through `add_external_cpu`) and estimates its energy:

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

J_PER_KWH = 3.6e6
QUANTUM_SUM_KEYS = ("circuits", "shots", "qpu_seconds_est", "energy_kwh_est")
_external_cpu_s = 0.0  # CPU seconds spent for this process in other processes (qlife.parallel workers)


def add_external_cpu(seconds: float) -> None:
    """Charge CPU seconds that ran in worker processes to every meter open now (process_time cannot see them)."""
    global _external_cpu_s
    _external_cpu_s += float(seconds)


@dataclass
class Meter:
    wall_s: float = 0.0
    cpu_s: float = 0.0
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
               "energy_kwh": self.energy_kwh, "energy_model": self.energy_model}
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
    w0, c0, x0 = time.perf_counter(), time.process_time(), _external_cpu_s
    try:
        yield meter
    finally:
        meter.wall_s = time.perf_counter() - w0
        meter.cpu_s = time.process_time() - c0 + (_external_cpu_s - x0)
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
