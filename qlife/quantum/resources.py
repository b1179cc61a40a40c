"""Resource counts and the QPU time / energy cost model behind every quantum figure in the ledger.

`circuit_resources(qc)` counts qubits, depth and two-qubit gates after transpiling to a generic hardware
basis; `ResourceCount` is what a run reports (and `add` merges); `gate_qpu_seconds` / `anneal_qpu_seconds`
turn circuits and shots (or anneal reads) into estimated QPU seconds, and `energy_kwh` into energy.

Exact simulators report the circuits and shots the same computation WOULD need on hardware:
`executed_on` says where it ran ("cpu" / "cuda" simulator, "aer", "ibm", "dwave"), and
`hardware_equivalent=True` marks counts that were not executed on a QPU but are what hardware would need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, transpile

# Generic hardware basis (IBM-like, all-to-all connectivity: no routing SWAPs counted, a lower bound).
BASIS_GATES = ("rz", "sx", "x", "cx")

# --- cost model: assumptions, stated ---------------------------------------------------------------
# Superconducting gate-model QPU. A shot is bounded by the repetition delay plus readout and reset: IBM
# backends default to rep_delay = 250 us, which dominates circuits of a few microseconds.
SECONDS_PER_SHOT = 250e-6
# Loading a new circuit (waveform upload, control-electronics setup) per circuit in a job; IBM documents
# a fixed overhead on the order of 1-2 s per job and ~0.1 s per circuit in practice (assumption).
SECONDS_PER_CIRCUIT = 0.1
SECONDS_PER_JOB = 2.0
# D-Wave Advantage: when no qpu_access_time comes back, estimate programming time (~15 ms) plus per read
# anneal (default 20 us) + readout (~120 us) + delay (~20 us), from D-Wave's QPU timing documentation.
ANNEAL_PROGRAMMING_S = 15e-3
ANNEAL_US_DEFAULT = 20.0
ANNEAL_READOUT_US = 120.0
ANNEAL_DELAY_US = 20.0
# Wall power of a cryogenic QPU system (dilution refrigerator, compressor, control electronics): ~25 kW
# is the figure both IBM and D-Wave quote for one system; charged for the whole QPU time.
SYSTEM_POWER_KW = 25.0


def circuit_resources(
    qc: QuantumCircuit, basis_gates: tuple[str, ...] = BASIS_GATES, optimization_level: int = 1
) -> dict[str, Any]:
    """Qubits, depth, two-qubit gates and gate counts of `qc` transpiled to `basis_gates` (no coupling map).

    Free parameters are bound to generic non-zero values first: symbolic angles make transpiling slow, and
    the gate structure does not depend on the values.
    """
    if qc.parameters:
        rng = np.random.default_rng(0)
        qc = qc.assign_parameters(rng.uniform(0.1, 3.0, qc.num_parameters))
    tqc = transpile(
        qc, basis_gates=list(basis_gates), optimization_level=optimization_level, seed_transpiler=0
    )
    ops = dict(tqc.count_ops())
    two_q = sum(1 for ci in tqc.data if ci.operation.num_qubits == 2 and ci.operation.name != "barrier")
    return {
        "qubits": qc.num_qubits,
        "depth": tqc.depth(),
        "two_qubit_gates": two_q,
        "ops": ops,
        "basis": list(basis_gates),
    }


def gate_qpu_seconds(circuits: int, shots: int, jobs: int = 1) -> float:
    """Estimated QPU seconds for `circuits` circuits of `shots` shots each (per-job + per-circuit + shots)."""
    if circuits <= 0:
        return 0.0
    return jobs * SECONDS_PER_JOB + circuits * (SECONDS_PER_CIRCUIT + shots * SECONDS_PER_SHOT)


def anneal_qpu_seconds(reads: int, anneal_us: float = ANNEAL_US_DEFAULT) -> float:
    """Estimated QPU access time of one D-Wave problem with `reads` reads."""
    return ANNEAL_PROGRAMMING_S + reads * (anneal_us + ANNEAL_READOUT_US + ANNEAL_DELAY_US) * 1e-6


def energy_kwh(qpu_seconds: float, power_kw: float = SYSTEM_POWER_KW) -> float:
    return qpu_seconds * power_kw / 3600.0


@dataclass
class ResourceCount:
    """What one quantum computation used, or would use on hardware (see module docstring)."""

    backend: str
    executed_on: str = "cpu"
    hardware_equivalent: bool = True
    qubits: int = 0
    depth: int = 0
    two_qubit_gates: int = 0
    circuits: int = 0
    shots: int = 0
    qpu_seconds: float | None = None  # measured, only when a real QPU reported it
    qpu_seconds_est: float = 0.0
    energy_kwh_est: float = 0.0
    device: str | None = None  # a device model or QPU the circuits were transpiled to (routing counted)
    swaps: int = 0  # routing SWAPs the transpiler inserted for that device's coupling map

    @classmethod
    def for_circuits(
        cls,
        backend: str,
        qc: QuantumCircuit | None,
        circuits: int,
        shots: int,
        executed_on: str = "cpu",
        hardware_equivalent: bool = True,
        structure: dict[str, Any] | None = None,
    ) -> ResourceCount:
        """Counts for `circuits` runs of `qc` (or of a circuit with the given `structure`) at `shots` each."""
        s = structure if structure is not None else (circuit_resources(qc) if qc is not None else {})
        est = gate_qpu_seconds(circuits, shots)
        return cls(
            backend,
            executed_on,
            hardware_equivalent,
            s.get("qubits", 0),
            s.get("depth", 0),
            s.get("two_qubit_gates", 0),
            circuits,
            circuits * shots,
            None,
            est,
            energy_kwh(est),
        )

    def add(self, other: ResourceCount) -> ResourceCount:
        """Merge: sizes take the max (per circuit), counts and times add, backends join."""
        qpu = (
            None
            if self.qpu_seconds is None and other.qpu_seconds is None
            else (self.qpu_seconds or 0.0) + (other.qpu_seconds or 0.0)
        )

        def join(a: str, b: str) -> str:
            return a if a == b else f"{a}+{b}"

        return ResourceCount(
            join(self.backend, other.backend),
            join(self.executed_on, other.executed_on),
            self.hardware_equivalent or other.hardware_equivalent,
            max(self.qubits, other.qubits),
            max(self.depth, other.depth),
            max(self.two_qubit_gates, other.two_qubit_gates),
            self.circuits + other.circuits,
            self.shots + other.shots,
            qpu,
            self.qpu_seconds_est + other.qpu_seconds_est,
            self.energy_kwh_est + other.energy_kwh_est,
            self.device if other.device in (None, self.device) else
            (other.device if self.device is None else f"{self.device}+{other.device}"),
            max(self.swaps, other.swaps),
        )

    __add__ = add

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResourceCount:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
