"""State fidelity |<a|b>|^2 for batches of pairs, by the swap test, on any backend.

`fidelity(states_a, states_b, backend)` -> FidelityResult(values (B,), resources). States are complex
(B, 2^n) arrays, or real vectors (amplitude encoding); both are normalized here. Backends:
  statevector  exact |<a|b>|^2
  shots        the swap test's P(0) = (1 + F) / 2 sampled with `shots` shots (binomial), inverted: what ideal
               hardware returns
  aer          the real swap-test circuit (ancilla, state preparation, controlled swaps) on qiskit-aer,
               optional depolarizing + readout noise (`NoiseParams`)
  ibm          the same circuit on IBM hardware via qiskit-ibm-runtime (lazy; needs QISKIT_IBM_TOKEN)
Estimates are clipped to [0, 1]. `circuit_fidelity` works on a parameterized circuit and two input batches;
`gram` gives pairwise fidelities between two sets (|A B^H|^2 for the statevector backend), and
`fidelity_distance` turns fidelities into distances.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import StatePreparation

from qlife.quantum.circuits import VariationalCircuit, amplitude_angles, amplitude_encoding
from qlife.quantum.errors import QuantumBackendError, require_env
from qlife.quantum.resources import ResourceCount, circuit_resources
from qlife.quantum.simulator import bind_weights, compile_circuit

BACKENDS = ("statevector", "shots", "aer", "ibm")


@dataclass(frozen=True)
class NoiseParams:
    """Depolarizing probability per 1-qubit (sx, x) and 2-qubit (cx) gate, and symmetric readout error."""

    p1: float = 1e-3
    p2: float = 1e-2
    readout: float = 2e-2


@dataclass
class FidelityResult:
    values: np.ndarray
    backend: str
    resources: ResourceCount


def _normalize(states: Any) -> np.ndarray:
    s = np.atleast_2d(np.asarray(states.detach().cpu() if isinstance(states, torch.Tensor) else states))
    return s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-300)


def _prep(state: np.ndarray) -> QuantumCircuit:
    """State preparation: our RY/CNOT tree for real vectors, qiskit's StatePreparation for complex ones."""
    if np.isrealobj(state) or np.abs(state.imag).max() < 1e-12:
        n = int(np.log2(len(state)))
        return amplitude_encoding(n).assign_parameters(amplitude_angles(state.real))
    qc = QuantumCircuit(int(np.log2(len(state))))
    qc.append(StatePreparation(state), qc.qubits)
    return qc


def swap_test_circuit(prep_a: QuantumCircuit, prep_b: QuantumCircuit) -> QuantumCircuit:
    """Ancilla (qubit 0) in |+>, |a> on 1..n, |b> on n+1..2n, controlled swaps, H, measure the ancilla."""
    n = prep_a.num_qubits
    qc = QuantumCircuit(2 * n + 1, 1)
    qc.compose(prep_a, range(1, n + 1), inplace=True)
    qc.compose(prep_b, range(n + 1, 2 * n + 1), inplace=True)
    qc.h(0)
    for i in range(n):
        qc.cswap(0, 1 + i, 1 + n + i)
    qc.h(0)
    qc.measure(0, 0)
    return qc


def _noise_model(noise: NoiseParams) -> Any:
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    model = NoiseModel(basis_gates=["rz", "sx", "x", "cx"])
    model.add_all_qubit_quantum_error(depolarizing_error(noise.p1, 1), ["sx", "x"])
    model.add_all_qubit_quantum_error(depolarizing_error(noise.p2, 2), ["cx"])
    r = noise.readout
    model.add_all_qubit_readout_error(ReadoutError([[1 - r, r], [r, 1 - r]]))
    return model


def _p0_to_fidelity(p0: np.ndarray) -> np.ndarray:
    return np.clip(2.0 * p0 - 1.0, 0.0, 1.0)


def _run_aer(
    circuits: list[QuantumCircuit], shots: int, seed: int | None, noise: NoiseParams | None
) -> np.ndarray:
    from qiskit_aer import AerSimulator

    sim = AerSimulator(noise_model=_noise_model(noise) if noise else None, seed_simulator=seed)
    tcs = transpile(circuits, basis_gates=["rz", "sx", "x", "cx"], optimization_level=1, seed_transpiler=0)
    counts = sim.run(tcs, shots=shots).result().get_counts()
    counts = counts if isinstance(counts, list) else [counts]
    return np.array([c.get("0", 0) / shots for c in counts])


def _run_ibm(circuits: list[QuantumCircuit], shots: int) -> tuple[np.ndarray, float | None]:
    token = require_env("QISKIT_IBM_TOKEN", "ibm", "qiskit-ibm-runtime", "qiskit_ibm_runtime")
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

    service = QiskitRuntimeService(
        channel="ibm_quantum_platform", token=token, instance=os.environ.get("QISKIT_IBM_INSTANCE")
    )
    name = os.environ.get("QISKIT_IBM_BACKEND")
    backend = service.backend(name) if name else service.least_busy(operational=True, simulator=False)
    isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuits)
    job = SamplerV2(mode=backend).run(isa, shots=shots)
    p0 = np.array([r.data.c.get_counts().get("0", 0) / shots for r in job.result()])
    try:
        qpu = float(job.metrics()["usage"]["quantum_seconds"])
    except (KeyError, TypeError, AttributeError):  # usage metrics are best-effort; the estimate stays
        qpu = None
    return p0, qpu


@functools.cache
def _swap_structure(n: int, real: bool) -> dict[str, Any]:
    """Resources of an n-qubit swap test (2n + 1 qubits) with generic real or complex state preparation."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(2, 2**n)) + (0 if real else 1j * rng.normal(size=(2, 2**n)))
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    qc = swap_test_circuit(_prep(states[0]), _prep(states[1]))
    return circuit_resources(qc.remove_final_measurements(inplace=False))


def _swap_resources(backend: str, n: int, pairs: int, shots: int, real: bool) -> ResourceCount:
    executed = {"statevector": "cpu", "shots": "cpu", "aer": "aer", "ibm": "ibm"}[backend]
    structure = _swap_structure(n, real) if n <= 10 else {"qubits": 2 * n + 1}
    return ResourceCount.for_circuits(backend, None, pairs, shots, executed, backend != "ibm", structure)


def _check(backend: str, a: np.ndarray, b: np.ndarray) -> None:
    if backend not in BACKENDS:
        raise QuantumBackendError(f"unknown fidelity backend {backend!r}; choose one of {BACKENDS}")
    if a.shape != b.shape:
        raise ValueError(f"states_a and states_b must have the same shape, got {a.shape} and {b.shape}")
    if backend == "ibm":  # fail before any work
        require_env("QISKIT_IBM_TOKEN", "ibm", "qiskit-ibm-runtime", "qiskit_ibm_runtime")


def fidelity(
    states_a: Any,
    states_b: Any,
    backend: str = "statevector",
    shots: int = 1024,
    seed: int | None = None,
    noise: NoiseParams | None = None,
) -> FidelityResult:
    """|<a_i|b_i>|^2 for each row pair; see the module docstring for the backends."""
    a, b = _normalize(states_a), _normalize(states_b)
    _check(backend, a, b)
    n = int(np.log2(a.shape[1]))
    exact = np.abs(np.sum(a.conj() * b, axis=1)) ** 2
    real = bool(np.isrealobj(a) and np.isrealobj(b))
    qpu = None
    if backend == "statevector":
        values = exact
    elif backend == "shots":
        rng = np.random.default_rng(seed)
        values = _p0_to_fidelity(rng.binomial(shots, np.clip((1 + exact) / 2, 0, 1)) / shots)
    else:
        circuits = [swap_test_circuit(_prep(x), _prep(y)) for x, y in zip(a, b)]
        if backend == "aer":
            values = _p0_to_fidelity(_run_aer(circuits, shots, seed, noise))
        else:
            p0, qpu = _run_ibm(circuits, shots)
            values = _p0_to_fidelity(p0)
    res = _swap_resources(backend, n, len(a), shots, real)
    res.qpu_seconds = qpu
    return FidelityResult(values, backend, res)


def gram(
    states_a: Any,
    states_b: Any,
    backend: str = "statevector",
    shots: int = 1024,
    seed: int | None = None,
    noise: NoiseParams | None = None,
) -> FidelityResult:
    """Pairwise fidelities F[i, j] = |<a_i|b_j>|^2, shape (len(a), len(b))."""
    a, b = _normalize(states_a), _normalize(states_b)
    if backend == "statevector":
        values = np.abs(a.conj() @ b.T) ** 2
        n = int(np.log2(a.shape[1]))
        res = _swap_resources("statevector", n, values.size, shots, bool(np.isrealobj(a) and np.isrealobj(b)))
        return FidelityResult(values, backend, res)
    ia, ib = np.meshgrid(np.arange(len(a)), np.arange(len(b)), indexing="ij")
    flat = fidelity(a[ia.ravel()], b[ib.ravel()], backend, shots, seed, noise)
    return FidelityResult(flat.values.reshape(len(a), len(b)), backend, flat.resources)


def circuit_fidelity(
    circuit: QuantumCircuit | VariationalCircuit,
    x_a: Any,
    x_b: Any,
    weights: Any = None,
    backend: str = "statevector",
    shots: int = 1024,
    seed: int | None = None,
    noise: NoiseParams | None = None,
) -> FidelityResult:
    """Fidelity between the circuit's states for input rows x_a[i] and x_b[i] (same trained weights)."""
    sim = compile_circuit(circuit, dtype=torch.complex128)
    w = torch.zeros(0) if weights is None else torch.as_tensor(np.asarray(weights, dtype=float))
    with torch.no_grad():
        sa = sim.state(torch.as_tensor(np.asarray(x_a, dtype=float)), w).numpy()
        sb = sim.state(torch.as_tensor(np.asarray(x_b, dtype=float)), w).numpy()
    if backend in ("statevector", "shots"):
        return fidelity(sa, sb, backend, shots, seed, noise)
    _check(backend, sa, sb)
    circs = [
        swap_test_circuit(bind_weights(circuit, w, xa), bind_weights(circuit, w, xb))
        for xa, xb in zip(np.asarray(x_a), np.asarray(x_b))
    ]
    p0, qpu = (_run_aer(circs, shots, seed, noise), None) if backend == "aer" else _run_ibm(circs, shots)
    res = _swap_resources(backend, sim.n, len(circs), shots, False)
    res.qpu_seconds = qpu
    return FidelityResult(_p0_to_fidelity(p0), backend, res)


def fidelity_distance(f: np.ndarray, kind: str = "bures") -> np.ndarray:
    """Distance from fidelity: "bures" 2 - 2 sqrt(F) (a metric; squared Bures distance for pure states),
    or "linear" 1 - F (infidelity, the swap-test's natural output; not a metric)."""
    f = np.clip(np.asarray(f, dtype=float), 0.0, 1.0)
    if kind == "bures":
        return 2.0 - 2.0 * np.sqrt(f)
    if kind == "linear":
        return 1.0 - f
    raise ValueError(f"kind must be 'bures' or 'linear', got {kind!r}")
