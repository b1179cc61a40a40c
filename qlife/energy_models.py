"""Energy models the energy report applies (qlife.energy computes the figures, qlife.energy_report writes them):
the QPU time models of each device kind with their sources, and the fixed figures the report states beside this
pipeline's own (the perspective paper's anchors, the simulated week of the scheduler).

The gate-model and annealer time models are qlife.quantum.resources' (the ones the ledger's QPU estimates and the
bills use); the trapped-ion time model comes from published gate times.
"""

from __future__ import annotations

from dataclasses import dataclass

from qlife.quantum import resources as qres

# Trapped ion (IonQ Aria): gate times from the Azure Quantum IonQ provider page, "System timing"; readout and
# reset are that page's IonQ Harmony rows (Aria's are not listed there).
ION_SOURCE = "https://learn.microsoft.com/azure/quantum/provider-ionq (System timing)"
ION_1Q_S, ION_2Q_S, ION_READOUT_S, ION_RESET_S = 135e-6, 600e-6, 100e-6, 25e-6

# Anchors: the perspective paper's sources, beside this pipeline's own figures.
LONG_PROMPT_KWH = 33e-3  # > 33 Wh per long prompt for the largest reasoning models (arXiv 2505.09598)
ION_BREAK_EVEN_QUBITS = 34  # measured trapped-ion energy break-even vs classical simulation (arXiv 2605.02798)

DRIFT_EVENTS_PER_WEEK = 1  # assumption of the simulated week: one real shift of the traffic per week
HOURS, NIGHTS = 7 * 24, 7  # flows/serve.py: monitoring hourly, the lifecycle nightly


@dataclass(frozen=True)
class DeviceModel:
    name: str
    applies_to: str  # "gate": circuits and shots | "qubo": anneal reads
    power_kw: float
    shot: str  # what one shot (or read) costs, in words
    sources: str


DEVICES = (
    DeviceModel("superconducting", "gate", qres.SYSTEM_POWER_KW,
                f"{qres.SECONDS_PER_SHOT * 1e6:g} us per shot (repetition delay, readout, reset), "
                f"{qres.SECONDS_PER_CIRCUIT:g} s per circuit, {qres.SECONDS_PER_JOB:g} s per job",
                "qlife/quantum/resources.py: IBM backends' default rep_delay 250 us; per-circuit and per-job "
                "overheads an assumption stated there; ~25 kW per cryogenic system as IBM and D-Wave quote it"),
    DeviceModel("trapped_ion", "gate", qres.SYSTEM_POWER_KW,
                f"two-qubit gates x {ION_2Q_S * 1e6:g} us + remaining depth layers x {ION_1Q_S * 1e6:g} us "
                f"+ readout {ION_READOUT_S * 1e6:g} us + reset {ION_RESET_S * 1e6:g} us per shot; the same "
                "per-circuit and per-job overheads",
                f"IonQ Aria gate times, Harmony readout/reset: {ION_SOURCE}. Power: the project's one system "
                "figure (25 kW), as qlife/quantum/billing.py uses for ions; no public wall-power figure of a "
                "trapped-ion system was found; ions need no dilution refrigerator, so this is likely high"),
    DeviceModel("annealer", "qubo", qres.SYSTEM_POWER_KW,
                f"{qres.ANNEAL_PROGRAMMING_S * 1e3:g} ms programming per QUBO + "
                f"{qres.ANNEAL_US_DEFAULT + qres.ANNEAL_READOUT_US + qres.ANNEAL_DELAY_US:g} us per read",
                "qlife/quantum/resources.py after D-Wave's QPU timing documentation (anneal 20 us, readout "
                "~120 us, delay ~20 us, programming ~15 ms); 25 kW per system"),
)


def kwh(seconds: float | None, device: DeviceModel) -> float | None:
    return None if seconds is None else seconds * device.power_kw / 3600.0


def ion_shot_seconds(depth: int, two_qubit_gates: int) -> float:
    """One trapped-ion shot: two-qubit gates serial, the rest of the depth as single-qubit layers, readout, reset."""
    return two_qubit_gates * ION_2Q_S + max(depth - two_qubit_gates, 0) * ION_1Q_S + ION_READOUT_S + ION_RESET_S


def gate_seconds(device: DeviceModel, circuits: float, shots: float, structure: dict) -> float | None:
    """QPU seconds for `circuits` circuits and `shots` shots in all (one job) under a gate-model device."""
    if device.name == "superconducting":
        per_shot = qres.SECONDS_PER_SHOT
    elif structure.get("depth") and structure.get("two_qubit_gates") is not None:
        per_shot = ion_shot_seconds(structure["depth"], structure["two_qubit_gates"])
    else:
        return None
    return qres.SECONDS_PER_JOB + circuits * qres.SECONDS_PER_CIRCUIT + shots * per_shot if circuits else 0.0
