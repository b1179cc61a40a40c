"""The bill before any real-hardware submit: public price lists applied to the resources.py time model.

`gate_bill` (IBM Quantum, Amazon Braket), `anneal_bill` (D-Wave Leap) and `local_bill` (a simulator, free)
return a `Bill`: estimated QPU seconds and energy from `qlife.quantum.resources`, and a price from the
lists below. `enforce` refuses a bill over its cap (`CostLimitError`) unless confirmed. An unknown device is
an error listing the known ones, never a silent zero.

Price lists are data, each with its source and the date it was read. Where a number could not be confirmed
from a stored copy of the provider's page, its entry says so in `note` (and the bill's `price_basis` shows it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from qlife.quantum import resources
from qlife.quantum.errors import QuantumBackendError

READ_ON = "2026-12-01"

# IBM Quantum: billed per second of QPU usage ("quantum seconds"), same rate on every QPU of a plan. Source:
# ibm.com/quantum/pricing as reconciled in a stored plan list (api-evangelist/ibm-quantum, modified
# 2026-05-25): Pay-As-You-Go 1.60 USD/s (= 96 USD/min), Flex 72 USD/min (30,000 USD minimum purchase).
# Open Plan (free, 10 min / 28 days) is left out on purpose: a quota is not a price.
IBM_PRICES: dict[str, Any] = {
    "list": "IBM Quantum Platform plans",
    "source": "https://www.ibm.com/quantum/pricing",
    "read": READ_ON,
    "default_plan": "payg",
    "plans": {
        "payg": {"usd_per_second": 96.0 / 60.0, "label": "Pay-As-You-Go 96 USD/min"},
        "flex": {"usd_per_second": 72.0 / 60.0, "label": "Flex 72 USD/min"},
    },
}

# Amazon Braket on-demand: per task (one circuit) + per shot; per-task fee equal on all QPUs. Confirmed from
# the stored pricing page (id locale mirror of aws.amazon.com/braket/pricing): Forte 0.08, Aria 0.03,
# Garnet 0.00145, Ankaa 0.0009 USD/shot, 0.30 USD/task. QuEra Aquila (analog, 0.01/shot) is not gate-model.
_ARN = "arn:aws:braket:{region}::device/qpu/{vendor}/{name}"
_SIM = "arn:aws:braket:::device/quantum-simulator/amazon/{name}"
BRAKET_PRICES: dict[str, Any] = {
    "list": "Amazon Braket on-demand pricing",
    "source": "https://aws.amazon.com/braket/pricing/",
    "read": READ_ON,
    "qpus": {  # ARN -> USD per task, USD per shot
        _ARN.format(region="us-east-1", vendor="ionq", name="Aria-1"): {"per_task": 0.30, "per_shot": 0.03},
        _ARN.format(region="us-east-1", vendor="ionq", name="Aria-2"): {"per_task": 0.30, "per_shot": 0.03},
        _ARN.format(region="us-east-1", vendor="ionq", name="Forte-1"): {"per_task": 0.30, "per_shot": 0.08},
        _ARN.format(region="us-east-1", vendor="ionq", name="Forte-Enterprise-1"): {
            "per_task": 0.30,
            "per_shot": 0.08,
            "note": "IonQ Forte family price; Enterprise row not seen separately",
        },
        _ARN.format(region="eu-north-1", vendor="iqm", name="Garnet"): {"per_task": 0.30, "per_shot": 0.00145},
        _ARN.format(region="eu-north-1", vendor="iqm", name="Emerald"): {
            "per_task": 0.30,
            "per_shot": 0.0016,
            "note": f"unconfirmed: provider page as last known, read {READ_ON}",
        },
        _ARN.format(region="us-west-1", vendor="rigetti", name="Ankaa-3"): {"per_task": 0.30, "per_shot": 0.0009},
    },
    # Managed simulators: USD per minute of simulation, billed with a minimum per task. Unconfirmed: provider
    # page as last known, read 2026-12-01. Run time is unknown before the run, so the bill charges the
    # minimum per task: a LOWER BOUND, and says so.
    "simulators": {
        _SIM.format(name="sv1"): {"per_minute": 0.075},
        _SIM.format(name="dm1"): {"per_minute": 0.075},
        _SIM.format(name="tn1"): {"per_minute": 0.275},
    },
    "simulator_min_seconds_per_task": 3.0,
    "simulator_note": f"unconfirmed: provider page as last known, read {READ_ON}",
    "local": ("local", "braket_sv", "braket_dm"),  # the Braket SDK's LocalSimulator: free
}

# D-Wave Leap: billed per QPU access time; one rate per account for all QPU solvers. D-Wave's current page
# is quote-based (no public rate). 2,000 USD per hour is the last publicly listed Leap rate, confirmed only
# from a stored third-party copy (qbitkit docs: github.com/qbitkit/qbitkit doc/sphinx/providers.rst).
DWAVE_PRICES: dict[str, Any] = {
    "list": "D-Wave Leap QPU access time",
    "source": "https://www.dwavequantum.com/solutions-and-products/cloud-platform/",
    "read": READ_ON,
    "note": f"unconfirmed: provider page as last known (now quote-based), read {READ_ON}",
    "solvers": {  # solver family (name before the first "_") -> USD per second of QPU access time
        "Advantage": {"usd_per_second": 2000.0 / 3600.0},
        "Advantage2": {"usd_per_second": 2000.0 / 3600.0},
    },
}


def _usd(x: float) -> str:
    return f"{x:,.2f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


class CostLimitError(QuantumBackendError):
    """A submit whose estimated price is above its cap and was not confirmed."""


@dataclass
class Bill:
    provider: str
    device: str
    circuits: int
    shots: int  # total over all circuits (anneal: problems x reads)
    qpu_seconds_est: float
    energy_kwh_est: float
    price_usd_est: float
    price_basis: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        rows = [
            ("bill", f"{self.provider} {self.device}"),
            ("circuits", f"{self.circuits:,} ({self.shots:,} shots)"),
            ("QPU time", f"~{self.qpu_seconds_est:,.3f} s (estimate)"),
            ("energy", f"~{self.energy_kwh_est:.4f} kWh at {resources.SYSTEM_POWER_KW:g} kW"),
            ("price", f"~{_usd(self.price_usd_est)} USD"),
            ("basis", self.price_basis),
        ]
        return "\n".join(f"  {k:<9} {v}" for k, v in rows)


def _unknown(what: str, device: str, known: list[str]) -> QuantumBackendError:
    return QuantumBackendError(f"no price for {what} {device!r}; known: " + ", ".join(known))


def _basis(table: dict[str, Any], prices: str, note: str | None = None) -> str:
    return f"{table['list']} ({table['source']}, read {table['read']}): {prices}" + (f" [{note}]" if note else "")


def _check(**counts: int) -> None:
    for name, n in counts.items():
        if n < 0:
            raise ValueError(f"{name} must be >= 0, got {n}")


def _ibm_plan(device: str) -> str:
    """`device` is "ibm_<backend>" (default plan), a plan name, or "<plan>:ibm_<backend>"."""
    plans = IBM_PRICES["plans"]
    plan, _, backend = device.rpartition(":")
    if not plan and backend in plans:
        return backend
    plan = plan or IBM_PRICES["default_plan"]
    if plan not in plans or not backend.startswith("ibm_"):
        known = [*plans, "ibm_<backend> (= payg)", "<plan>:ibm_<backend>"]
        raise _unknown("IBM device", device, known)
    return plan


def _braket_device(device: str) -> str:
    """Full ARN, or its last path component case-insensitively ("Aria-1", "garnet", "sv1")."""
    arns = [*BRAKET_PRICES["qpus"], *BRAKET_PRICES["simulators"]]
    if device in arns or device in BRAKET_PRICES["local"]:
        return device
    by_name = {a.rsplit("/", 1)[1].lower(): a for a in arns}
    if device.lower() in by_name:
        return by_name[device.lower()]
    raise _unknown("Braket device", device, [*arns, *BRAKET_PRICES["local"]])


def gate_bill(provider: str, device: str, circuits: int, shots_per_circuit: int, jobs: int = 1) -> Bill:
    """Bill for `circuits` circuits x `shots_per_circuit` shots on a gate-model device of `provider`.

    QPU seconds from `resources.gate_qpu_seconds` (a superconducting model, also used for trapped ions as the
    energy proxy). IBM: price = QPU seconds x plan rate. Braket: price = circuits x per-task (a task runs one
    circuit) + total shots x per-shot; managed simulators: minimum billed time per task (a lower bound).
    """
    _check(circuits=circuits, shots_per_circuit=shots_per_circuit, jobs=jobs)
    qpu_s = resources.gate_qpu_seconds(circuits, shots_per_circuit, jobs)
    shots = circuits * shots_per_circuit
    if provider == "ibm":
        plan = _ibm_plan(device)
        p = IBM_PRICES["plans"][plan]
        price = qpu_s * p["usd_per_second"]
        basis = _basis(IBM_PRICES, f"{p['label']} = {p['usd_per_second']:.4f} USD/s x {qpu_s:.1f} s est.")
    elif provider == "braket":
        dev = _braket_device(device)
        if dev in BRAKET_PRICES["local"]:
            price, basis = 0.0, _basis(BRAKET_PRICES, "local simulator, free")
        elif dev in BRAKET_PRICES["simulators"]:
            rate = BRAKET_PRICES["simulators"][dev]["per_minute"]
            min_s = BRAKET_PRICES["simulator_min_seconds_per_task"]
            price = circuits * min_s / 60.0 * rate
            basis = _basis(
                BRAKET_PRICES,
                f"{rate} USD/min x {min_s:g} s minimum per task (LOWER BOUND: run time unknown)",
                BRAKET_PRICES["simulator_note"],
            )
        else:
            p = BRAKET_PRICES["qpus"][dev]
            price = circuits * p["per_task"] + shots * p["per_shot"]
            basis = _basis(BRAKET_PRICES, f"{p['per_task']} USD/task + {p['per_shot']} USD/shot", p.get("note"))
        device = dev
    else:
        raise QuantumBackendError(f"no gate-model price list for provider {provider!r}; known: ibm, braket")
    return Bill(provider, device, circuits, shots, qpu_s, resources.energy_kwh(qpu_s), price, basis)


def anneal_bill(device: str, problems: int, reads: int, anneal_us: float = resources.ANNEAL_US_DEFAULT) -> Bill:
    """D-Wave Leap bill: QPU seconds = problems x `resources.anneal_qpu_seconds(reads, anneal_us)`, x the rate."""
    _check(problems=problems, reads=reads)
    solvers = DWAVE_PRICES["solvers"]
    family = device.split("_", 1)[0]
    if family not in solvers:
        raise _unknown("D-Wave solver", device, [f"{f}_<system> (e.g. {f}_system4.1)" for f in solvers])
    rate = solvers[family]["usd_per_second"]
    qpu_s = problems * resources.anneal_qpu_seconds(reads, anneal_us)
    basis = _basis(
        DWAVE_PRICES, f"{rate * 3600:,.0f} USD/h = {rate:.4f} USD/s x {qpu_s:.3f} s est.", DWAVE_PRICES["note"]
    )
    return Bill("dwave", device, problems, problems * reads, qpu_s, resources.energy_kwh(qpu_s), qpu_s * rate, basis)


def local_bill(backend: str, circuits: int, shots: int) -> Bill:
    """A simulator run: price 0, with the energy the hardware-equivalent QPU time would take.

    `shots` is per circuit, as in `ResourceCount.for_circuits`; the bill's `shots` is the total.
    """
    _check(circuits=circuits, shots=shots)
    qpu_s = resources.gate_qpu_seconds(circuits, shots)
    basis = "local simulator: no charge (QPU time and energy are the hardware-equivalent estimate)"
    return Bill("local", backend, circuits, circuits * shots, qpu_s, resources.energy_kwh(qpu_s), 0.0, basis)


def enforce(bill: Bill, max_cost_usd: float | None, confirm: bool, param: str) -> None:
    """Refuse (CostLimitError) a non-zero bill above `max_cost_usd` unless `confirm`.

    `max_cost_usd=None` means no cap was set: any price above 0 needs confirmation. A free bill always passes.
    """
    price = bill.price_usd_est
    if price <= 0 or confirm or (max_cost_usd is not None and price <= max_cost_usd):
        return
    section = param.rpartition(".")[0] or param
    why = (
        f"and no cost cap is set ({param} is unset)"
        if max_cost_usd is None
        else f"is above the cap {param} = {_usd(max_cost_usd)} USD"
    )
    cap = math.ceil(round(price * 100, 6)) / 100  # rounded up to the cent, so the suggested cap covers the price
    raise CostLimitError(
        f"refusing to submit: estimated price {_usd(price)} USD {why}\n{bill.format()}\n"
        f"to run it, set {param} to at least {cap:.2f}, or set `confirm: true` in {section} "
        "to submit it regardless of the cap"
    )


__all__ = [
    "BRAKET_PRICES",
    "DWAVE_PRICES",
    "IBM_PRICES",
    "Bill",
    "CostLimitError",
    "anneal_bill",
    "enforce",
    "gate_bill",
    "local_bill",
]
