"""State fidelity |<a|b>|^2 and the fidelity (Gram) kernel, on any circuit backend of `qlife.quantum.backends`.

`FidelityKernel(backend, encoding, n_qubits)` estimates fidelities between encoded rows and counts what it ran:
  pairs(A, B) -> F_i = |<a_i|b_i>|^2          gram(A, B) -> F[i, j] = |<a_i|b_j>|^2
  resources -> ResourceCount of every swap test so far (circuits, shots, structure on that backend)
encodings: "amplitude" (rows are real vectors of length 2^n, loaded by the RY/CNOT tree), "angle" (rows are n
angles, RY(x_k) on qubit k), "state" (complex statevectors, loaded by qiskit's StatePreparation; small n).

How each backend kind estimates F (the swap test: ancilla in |+>, both states, controlled swaps, H, measure;
P(0) = (1 + F) / 2):
  statevector  the exact overlap (|A B^H|^2, or prod cos^2 for angles): what the circuit computes
  shots        P(0) sampled with the backend's shots and inverted (the runner's `sample_expectation`: a binomial
               on the ancilla, exactly the distribution the swap test gives on ideal hardware), without
               building one circuit per pair
  other kinds  the swap-test circuit itself, one parameterized template bound per pair, run on the backend
               (aer with noise, a device model after routing, hardware, Braket)
Estimates are clipped to [0, 1]. `fidelity` / `gram` are the one-call forms for statevectors, `circuit_fidelity`
for any parameterized input circuit, `fidelity_distance` turns fidelities into distances.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.library import StatePreparation

from qlife.arrays import unit_rows
from qlife.quantum.backends import CircuitRunner, as_runner
from qlife.quantum.circuits import VariationalCircuit, amplitude_angles, amplitude_encoding, angle_encoding
from qlife.quantum.resources import ResourceCount
from qlife.quantum.simulator import bind_weights, compile_circuit

ENCODINGS = ("amplitude", "angle", "state")


@dataclass
class FidelityResult:
    values: np.ndarray
    backend: str
    resources: ResourceCount


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


def _renamed(qc: QuantumCircuit, name: str) -> QuantumCircuit:
    """The circuit with its input parameters in a fresh ParameterVector `name` (same order)."""
    params = list(qc.parameters)
    return qc.assign_parameters(dict(zip(params, ParameterVector(name, len(params)))))


def swap_template(prep: QuantumCircuit) -> QuantumCircuit:
    """Swap test of two copies of a parameterized preparation; parameters "a" then "b" (bind [x_a, x_b])."""
    return swap_test_circuit(_renamed(prep, "a"), _renamed(prep, "b"))


def exact_gram(A: np.ndarray, B: np.ndarray, encoding: str) -> np.ndarray:
    """Exact |<a_i|b_j>|^2 of encoded rows (amplitude rows normalized here)."""
    if encoding == "angle":  # product states: prod_k cos^2((a_k - b_k) / 2)
        out = np.empty((len(A), len(B)))
        for s in range(0, len(A), 2048):
            d = A[s: s + 2048, None, :] - B[None, :, :]
            out[s: s + 2048] = np.prod(0.5 + 0.5 * np.cos(d), axis=2)
        return out
    a, b = normalize_rows(A), normalize_rows(B)
    if np.isrealobj(a) and np.isrealobj(b):  # the hot loop of quantum k-means: one matmul, squared in place
        F = a @ b.T
        return np.square(F, out=F)
    return np.abs(a.conj() @ b.T) ** 2


def exact_pairs(A: np.ndarray, B: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "angle":
        return np.prod(0.5 + 0.5 * np.cos(A - B), axis=1)
    a, b = normalize_rows(A), normalize_rows(B)
    return np.abs(np.sum(a.conj() * b, axis=1)) ** 2


def normalize_rows(states: Any) -> np.ndarray:
    return unit_rows(np.atleast_2d(np.asarray(states.detach().cpu() if isinstance(states, torch.Tensor) else states)))


class FidelityKernel:
    """Swap-test fidelities between encoded rows on one backend; `max_circuits` caps circuit-running backends."""

    def __init__(self, backend: Any, encoding: str, n_qubits: int, param: str = "backend",
                 max_circuits: int | None = None):
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.runner: CircuitRunner = as_runner(backend, param)
        self.encoding, self.n_qubits, self.param, self.max_circuits = encoding, n_qubits, param, max_circuits
        self.rng = np.random.default_rng(self.runner.seed)
        self.circuits = 0
        self._template: QuantumCircuit | None = None

    def fork(self, seed: np.random.SeedSequence | int) -> FidelityKernel:
        """A copy with no circuits counted and its own RNG from (the runner's seed, `seed`): one per independent
        piece of work (a cluster), so sampled estimates do not depend on the order the pieces run in."""
        k = copy.copy(self)
        entropy = seed.entropy if isinstance(seed, np.random.SeedSequence) else seed
        spawn = seed.spawn_key if isinstance(seed, np.random.SeedSequence) else ()
        k.rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(*spawn, int(self.runner.seed or 0))))
        k.circuits = 0
        return k

    @property
    def analytic(self) -> bool:
        """statevector / shots: the swap test's outcome distribution is computed, not simulated gate by gate."""
        return self.runner.analytic

    def template(self) -> QuantumCircuit:
        if self._template is None:
            prep = amplitude_encoding(self.n_qubits) if self.encoding == "amplitude" else \
                angle_encoding(self.n_qubits, "ry")
            self._template = swap_template(prep)
        return self._template

    def _estimate(self, exact: np.ndarray) -> np.ndarray:
        """The analytic backends' estimate of exact fidelities: the swap test's ancilla <Z> = F, sampled by the
        runner on `shots` (continuing this kernel's RNG stream), exact on statevector."""
        if self.runner.sampled:
            return np.clip(self.runner.sample_expectation(exact, self.rng), 0.0, 1.0)
        return exact

    def _run(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """Row-paired swap tests on the backend: P(0) -> F."""
        if self.max_circuits is not None and self.circuits > self.max_circuits:
            raise_too_many(self.runner, self.circuits, self.max_circuits, self.param)
        if self.encoding == "state":
            circuits = [swap_test_circuit(_prep_state(a), _prep_state(b)) for a, b in zip(A, B)]
            p0 = self.runner.run(circuits).frequencies[:, 0]
        else:
            values = np.hstack([amplitude_angles(A), amplitude_angles(B)]) if self.encoding == "amplitude" \
                else np.hstack([A, B])
            p0 = self.runner.run(self.template(), values).frequencies[:, 0]
        return np.clip(2.0 * p0 - 1.0, 0.0, 1.0)

    def pairs(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        A, B = np.atleast_2d(A), np.atleast_2d(B)
        if A.shape != B.shape:
            raise ValueError(f"paired rows must have the same shape, got {A.shape} and {B.shape}")
        self.circuits += len(A)
        return self._estimate(exact_pairs(A, B, self.encoding)) if self.analytic else self._run(A, B)

    def gram(self, A: np.ndarray, B: np.ndarray, circuits: int | None = None) -> np.ndarray:
        """F[i, j]; `circuits` is how many distinct swap tests the caller needs (default len(A) * len(B); a
        symmetric within-cluster matrix needs m(m-1)/2)."""
        A, B = np.atleast_2d(A), np.atleast_2d(B)
        self.circuits += len(A) * len(B) if circuits is None else circuits
        if self.analytic:
            return self._estimate(exact_gram(A, B, self.encoding))
        ia, ib = (g.ravel() for g in np.meshgrid(np.arange(len(A)), np.arange(len(B)), indexing="ij"))
        return self._run(A[ia], B[ib]).reshape(len(A), len(B))

    @property
    def resources(self) -> ResourceCount:
        n = self.n_qubits
        # a 2^n-gate preparation is slow to transpile (minutes for a 16-qubit StatePreparation): qubits only
        if (self.encoding == "amplitude" and n > 10) or (self.encoding == "state" and n > 5):
            return self.runner.cost(None, self.circuits, structure={"qubits": 2 * n + 1})
        if self.encoding == "state":
            rng = np.random.default_rng(0)
            s = rng.normal(size=(2, 2**n)) + 1j * rng.normal(size=(2, 2**n))
            template = swap_test_circuit(_prep_state(s[0]), _prep_state(s[1]))
        else:
            template = self.template()
        return self.runner.cost(template, self.circuits)


def raise_too_many(runner: CircuitRunner, circuits: int, cap: int, param: str) -> None:
    from qlife.quantum.memory import ResourceLimitError

    raise ResourceLimitError(f"backend {runner.name!r} would run {circuits} swap-test circuits, over max_circuits="
                             f"{cap}: raise max_circuits, use a statevector or shots backend in {param}, or a "
                             "smaller input")


def _prep_state(state: np.ndarray) -> QuantumCircuit:
    """State preparation: our RY/CNOT tree for real vectors, qiskit's StatePreparation for complex ones."""
    n = int(np.log2(len(state)))
    if np.isrealobj(state) or np.abs(state.imag).max() < 1e-12:
        return amplitude_encoding(n).assign_parameters(amplitude_angles(np.real(state)))
    qc = QuantumCircuit(n)
    qc.append(StatePreparation(state / np.linalg.norm(state)), qc.qubits)
    return qc


def _state_encoding(a: np.ndarray, b: np.ndarray) -> str:
    return "amplitude" if np.isrealobj(a) and np.isrealobj(b) else "state"


def fidelity(states_a: Any, states_b: Any, backend: Any = "statevector", param: str = "backend"
             ) -> FidelityResult:
    """|<a_i|b_i>|^2 for each row pair of statevectors (real or complex; normalized here)."""
    a, b = normalize_rows(states_a), normalize_rows(states_b)
    kernel = FidelityKernel(backend, _state_encoding(a, b), int(np.log2(a.shape[1])), param)
    values = kernel.pairs(a, b)
    return FidelityResult(values, kernel.runner.name, kernel.resources)


def gram(states_a: Any, states_b: Any, backend: Any = "statevector", param: str = "backend") -> FidelityResult:
    """Pairwise fidelities F[i, j] = |<a_i|b_j>|^2 of statevectors, shape (len(a), len(b))."""
    a, b = normalize_rows(states_a), normalize_rows(states_b)
    kernel = FidelityKernel(backend, _state_encoding(a, b), int(np.log2(a.shape[1])), param)
    values = kernel.gram(a, b)
    return FidelityResult(values, kernel.runner.name, kernel.resources)


def circuit_fidelity(circuit: QuantumCircuit | VariationalCircuit, x_a: Any, x_b: Any, weights: Any = None,
                     backend: Any = "statevector", param: str = "backend") -> FidelityResult:
    """Fidelity between the circuit's states for input rows x_a[i] and x_b[i] (same trained weights)."""
    runner = as_runner(backend, param)
    xa, xb = np.atleast_2d(np.asarray(x_a, dtype=float)), np.atleast_2d(np.asarray(x_b, dtype=float))
    w = torch.zeros(0) if weights is None else torch.as_tensor(np.asarray(weights, dtype=float))
    if runner.analytic:  # exact states on the torch simulator
        sim = compile_circuit(circuit, dtype=torch.complex128)
        with torch.no_grad():
            sa = sim.state(torch.as_tensor(xa), w).numpy()
            sb = sim.state(torch.as_tensor(xb), w).numpy()
        return fidelity(sa, sb, runner, param)
    template = swap_template(bind_weights(circuit, w))
    p0 = runner.run(template, np.hstack([xa, xb])).frequencies[:, 0]
    return FidelityResult(np.clip(2.0 * p0 - 1.0, 0.0, 1.0), runner.name, runner.cost(template, len(xa)))


def fidelity_distance(f: np.ndarray, kind: str = "bures") -> np.ndarray:
    """Distance from fidelity: "bures" 2 - 2 sqrt(F) (a metric; squared Bures distance for pure states),
    or "linear" 1 - F (infidelity, the swap-test's natural output; not a metric)."""
    f = np.clip(np.asarray(f, dtype=float), 0.0, 1.0)
    if kind == "bures":
        return 2.0 - 2.0 * np.sqrt(f)
    if kind == "linear":
        return 1.0 - f
    raise ValueError(f"kind must be 'bures' or 'linear', got {kind!r}")


def compare_backends(A: np.ndarray, B: np.ndarray, encoding: str, n_qubits: int, backends: list[Any],
                     param: str, threshold: float | None = None) -> dict[str, Any]:
    """The same row pairs on exact and on every backend spec: error against exact, and (with a threshold) how
    often the backend takes the same above/below decision; device name, routed depth, two-qubit gates, SWAPs."""
    exact = exact_pairs(A, B, encoding)
    out: dict[str, Any] = {"pairs": len(A), "exact_mean": float(exact.mean())}
    for i, spec in enumerate(backends):
        kernel = FidelityKernel(spec, encoding, n_qubits, f"{param}[{i}]")
        est = kernel.pairs(A, B)
        r = kernel.resources
        row = {"mean": float(est.mean()), "mean_abs_error": float(np.abs(est - exact).mean()),
               "max_abs_error": float(np.abs(est - exact).max()), "shots": kernel.runner.shots,
               "device": r.device, "qubits": r.qubits, "depth": r.depth, "two_qubit_gates": r.two_qubit_gates,
               "swaps": r.swaps, "circuits": r.circuits}
        if threshold is not None:
            row["decision_agreement"] = float(np.mean((est > threshold) == (exact > threshold)))
        out[kernel.runner.name] = row
    return out
