"""Resource counts and the documented cost model."""

import pytest
from qiskit import QuantumCircuit

from qlife.quantum.resources import (
    SECONDS_PER_SHOT,
    SYSTEM_POWER_KW,
    ResourceCount,
    anneal_qpu_seconds,
    circuit_resources,
    energy_kwh,
    gate_qpu_seconds,
)


def test_circuit_resources_counts_two_qubit_gates_in_the_basis():
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cz(1, 2)
    qc.swap(0, 2)  # 3 CX
    r = circuit_resources(qc)
    assert r["qubits"] == 3 and r["two_qubit_gates"] == 5 and r["depth"] > 0
    assert set(r["ops"]) <= {"rz", "sx", "x", "cx"}


def test_cost_model_and_merge():
    assert gate_qpu_seconds(0, 100) == 0.0
    assert gate_qpu_seconds(10, 1000) > 10 * 1000 * SECONDS_PER_SHOT
    assert anneal_qpu_seconds(100) > anneal_qpu_seconds(10)
    assert energy_kwh(3600.0) == pytest.approx(SYSTEM_POWER_KW)
    a = ResourceCount.for_circuits(
        "shots", None, 4, 100, structure={"qubits": 5, "depth": 9, "two_qubit_gates": 3}
    )
    b = ResourceCount("aer", executed_on="aer", qubits=7, circuits=2, shots=50, qpu_seconds_est=1.0)
    c = a + b
    assert (c.qubits, c.circuits, c.shots, c.backend) == (7, 6, 450, "shots+aer")
    assert c.qpu_seconds_est == pytest.approx(a.qpu_seconds_est + 1.0)
    assert ResourceCount.from_dict(c.to_dict()) == c
