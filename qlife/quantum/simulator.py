"""Fast batched statevector simulator: compiles a parameterized qiskit circuit to a torch function.

`compile_circuit(qc)` -> `TorchCircuit`; calling it with inputs x (B, n_inputs) and weights w (n_weights,)
returns statevectors (B, 2^n), <Z_i> (B, n) or probabilities (B, 2^n), differentiable by autograd, on the
device of x/w, complex64 by default (complex128 on request). Gate angles may be any parameter expression:
linear ones (a*x + b*θ + c) take a fast path, others are evaluated through sympy with torch functions.
`QuantumLayer` wraps it as an nn.Module with trainable weights; `export_qasm3` binds trained weights into
the circuit and writes OpenQASM 3. Supported gates: `SUPPORTED_GATES`; anything else with a qiskit
definition is decomposed first, anything without one is a QuantumBackendError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from qiskit import qasm3
from qiskit.circuit import Parameter, ParameterExpression, QuantumCircuit

from qlife.quantum import gates as G
from qlife.quantum.circuits import VariationalCircuit
from qlife.quantum.errors import QuantumBackendError

MAX_QUBITS = 26  # 2^26 complex64 amplitudes = 512 MiB per state; beyond that a statevector is not a backend
SUPPORTED_GATES = tuple(sorted(G.GATES))
_SKIPPED = {"barrier", "delay"}


@dataclass
class _Angle:
    """One gate angle: const + sum(coef * params[idx]) (linear) or fn(*params[idx]) (nonlinear)."""

    const: float
    idx: list[int]
    coef: list[float]
    fn: Callable[..., Any] | None = None


def _analyse(expr: Any, pos: dict[Parameter, int]) -> _Angle:
    if not isinstance(expr, ParameterExpression):
        return _Angle(float(expr), [], [])
    params = sorted(expr.parameters, key=lambda p: pos[p])
    grads = [expr.gradient(p) for p in params]
    if all(not isinstance(g, ParameterExpression) for g in grads):
        const = float(expr.bind({p: 0.0 for p in params}).numeric().real)
        return _Angle(const, [pos[p] for p in params], [float(complex(g).real) for g in grads])
    import sympy

    symbols = [sympy.Symbol(p.name) for p in params]
    torch_funcs = {n: getattr(torch, n) for n in ("sin", "cos", "tan", "exp", "log", "sqrt", "abs")}
    fn = sympy.lambdify(symbols, expr.sympify(), modules=[torch_funcs, "math"], dummify=True)
    return _Angle(0.0, [pos[p] for p in params], [], fn)


def _decompose_unsupported(qc: QuantumCircuit, max_rounds: int = 12) -> QuantumCircuit:
    for _ in range(max_rounds):
        names = {ci.operation.name for ci in qc.data} - set(G.GATES) - _SKIPPED
        if not names:
            return qc
        bad = sorted(n for n in names if _definition_of(qc, n) is None)
        if bad:
            raise QuantumBackendError(
                f"unsupported gate(s) {bad} for the torch simulator (no unitary definition); "
                f"supported: {', '.join(SUPPORTED_GATES)}"
            )
        qc = qc.decompose(gates_to_decompose=list(names))
    raise QuantumBackendError(f"could not decompose gates {sorted(names)} into supported gates")


def _definition_of(qc: QuantumCircuit, name: str) -> Any:
    for ci in qc.data:
        if ci.operation.name == name:
            if ci.operation.name in ("measure", "reset") or not hasattr(ci.operation, "definition"):
                return None
            return ci.operation.definition
    return None


class TorchCircuit:
    """A qiskit circuit compiled to torch. Call `state`, `expval_z`, `probs`, or the instance itself."""

    def __init__(
        self,
        qc: QuantumCircuit,
        inputs: list[Parameter],
        weights: list[Parameter],
        dtype: torch.dtype = torch.complex64,
    ):
        if qc.num_qubits > MAX_QUBITS:
            raise QuantumBackendError(
                f"statevector limit is {MAX_QUBITS} qubits, circuit has {qc.num_qubits}; use 'shots'/'aer'"
            )
        if dtype not in (torch.complex64, torch.complex128):
            raise ValueError("dtype must be torch.complex64 or torch.complex128")
        self.n, self.dtype = qc.num_qubits, dtype
        self.inputs, self.weights = list(inputs), list(weights)
        self.num_inputs, self.num_weights = len(self.inputs), len(self.weights)
        missing = set(qc.parameters) - set(self.inputs) - set(self.weights)
        if missing:
            raise ValueError(
                f"circuit parameters neither inputs nor weights: {sorted(p.name for p in missing)}"
            )
        pos = {p: i for i, p in enumerate(self.inputs + self.weights)}
        qc = _decompose_unsupported(qc)
        self.ops: list[tuple[str, tuple[int, ...], list[_Angle]]] = []
        for ci in qc.data:
            name = ci.operation.name
            if name in _SKIPPED:
                continue
            qubits = tuple(qc.find_bit(q).index for q in ci.qubits)
            self.ops.append((name, qubits, [_analyse(p, pos) for p in ci.operation.params]))
        self.steps = _schedule(self.ops)
        self.phase = _analyse(qc.global_phase, pos)
        self._cache: dict[tuple, Any] = {}

    def _values(self, x: torch.Tensor | None, w: torch.Tensor | None, batch: int) -> tuple[Any, Any]:
        rdt = torch.float32 if self.dtype == torch.complex64 else torch.float64
        dev = (x if x is not None else w).device if (x is not None or w is not None) else torch.device("cpu")
        x = torch.zeros(batch, 0, dtype=rdt, device=dev) if x is None else x.to(rdt)
        w = torch.zeros(0, dtype=rdt, device=dev) if w is None else w.to(rdt)
        if x.shape[1] != self.num_inputs or w.shape[0] != self.num_weights:
            raise ValueError(
                f"expected x (B, {self.num_inputs}) and w ({self.num_weights},), "
                f"got {tuple(x.shape)} and {tuple(w.shape)}"
            )
        return x, w

    def _angle(self, a: _Angle, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor | float:
        n_in = self.num_inputs
        if a.fn is not None:
            args = [x[:, i] if i < n_in else w[i - n_in] for i in a.idx]
            return a.fn(*args)
        if not a.idx:
            return a.const
        val: torch.Tensor | float = a.const
        for i, c in zip(a.idx, a.coef):  # few terms per angle: a loop beats a gather here
            term = x[:, i] if i < n_in else w[i - n_in]
            val = val + (term if c == 1.0 else c * term)
        return val

    def state(self, x: torch.Tensor | None = None, w: torch.Tensor | None = None) -> torch.Tensor:
        """Statevectors (B, 2^n) for inputs x (B, n_inputs) and weights w (n_weights,)."""
        batch = x.shape[0] if x is not None else 1
        x, w = self._values(x, w, batch)
        ref = torch.zeros(0, dtype=self.dtype, device=x.device)
        psi = None  # |0...0>, materialized lazily: a first single-qubit layer builds a product state
        for i, (kind, body) in enumerate(self.steps):
            if kind == "layer":
                mats = {q: self._fused(gates, x, w, ref) for q, gates in body.items()}
                psi = (
                    G.product_state(mats, self.n, batch, ref)
                    if psi is None
                    else G.apply_layer(psi, mats, self.n)
                )
                continue
            if psi is None:
                psi = torch.zeros(batch, 2**self.n, dtype=self.dtype, device=x.device)
                psi[:, 0] = 1.0
            if kind == "fixed":
                key = (i, x.device, self.dtype)
                if key not in self._cache:
                    self._cache[key] = G.compose_fixed(body, self.n, ref)
                how, data = self._cache[key]
                psi = psi * data if how == "diag" else psi.index_select(1, data)
            else:
                name, qubits, params = body
                psi = G.apply(psi, name, qubits, [self._angle(a, x, w) for a in params], self.n)
        if psi is None:
            psi = G.product_state({}, self.n, batch, ref)
        phase = self._angle(self.phase, x, w)
        if isinstance(phase, torch.Tensor) or phase != 0.0:
            phase = torch.as_tensor(phase, device=x.device, dtype=x.dtype)
            psi = psi * torch.polar(torch.ones_like(phase), phase).reshape(-1, 1)
        return psi

    def _fused(self, gates: list, x: torch.Tensor, w: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        m = None
        for name, params in gates:
            g = G.one_qubit_matrix(name, [self._angle(a, x, w) for a in params], ref)
            m = g if m is None else g @ m
        return m

    def probs(self, x: torch.Tensor | None = None, w: torch.Tensor | None = None) -> torch.Tensor:
        """Bitstring probabilities (B, 2^n); index bit q is qubit q."""
        psi = self.state(x, w)
        return psi.real**2 + psi.imag**2

    def expval_z(self, x: torch.Tensor | None = None, w: torch.Tensor | None = None) -> torch.Tensor:
        """<Z_q> for every qubit q: (B, n)."""
        p = self.probs(x, w)
        key = ("zsign", p.device, p.dtype)
        if key not in self._cache:
            bits = (np.arange(2**self.n)[:, None] >> np.arange(self.n)[None, :]) & 1
            self._cache[key] = torch.as_tensor(1.0 - 2.0 * bits, dtype=p.dtype, device=p.device)
        return p @ self._cache[key]

    def __call__(
        self, x: torch.Tensor | None = None, w: torch.Tensor | None = None, output: str = "expval"
    ) -> torch.Tensor:
        fns = {"expval": self.expval_z, "probs": self.probs, "state": self.state}
        if output not in fns:
            raise ValueError(f"output must be one of {sorted(fns)}, got {output!r}")
        return fns[output](x, w)


def _schedule(ops: list) -> list[tuple[str, Any]]:
    """Group ops into steps: fused single-qubit layers, runs of fixed permutation/diagonal gates, others.

    Invariant: emitted steps + open fixed run + pending layer == the circuit so far. Pending single-qubit
    gates commute with any later gate on other qubits, so they only flush when a gate touches their qubit.
    """
    steps: list[tuple[str, Any]] = []
    pending: dict[int, list] = {}
    run: list = []
    run_kind = ""

    def emit(what: str) -> None:
        nonlocal run
        if what == "run" and run:
            steps.append(("fixed", run))
            run = []
        if what == "layer" and pending:
            steps.append(("layer", dict(pending)))
            pending.clear()

    for name, qubits, params in ops:
        if len(qubits) == 1:
            pending.setdefault(qubits[0], []).append((name, params))
            continue
        touches = any(q in pending for q in qubits)
        kind = G.fixed_kind(name) if name in G.FIXED else "matrix"
        if kind in ("perm", "diag"):
            if touches or kind != run_kind:
                emit("run")
            if touches:
                emit("layer")
            run.append((name, qubits))
            run_kind = kind
            continue
        emit("run")
        if touches:
            emit("layer")
        steps.append(("gate", (name, qubits, params)))
    emit("run")
    emit("layer")
    return steps


def _split_parameters(qc: QuantumCircuit) -> tuple[list[Parameter], list[Parameter]]:
    """Default split: ParameterVector "x" elements are inputs, every other parameter is a weight."""
    params = list(qc.parameters)  # qiskit sorts vector elements by index
    inputs = [p for p in params if getattr(getattr(p, "vector", None), "name", None) == "x"]
    return inputs, [p for p in params if p not in set(inputs)]


def compile_circuit(
    circuit: QuantumCircuit | VariationalCircuit,
    inputs: list[Parameter] | None = None,
    weights: list[Parameter] | None = None,
    dtype: torch.dtype = torch.complex64,
) -> TorchCircuit:
    """Compile once, call many times. Inputs/weights default to the VariationalCircuit's or the "x" split."""
    if isinstance(circuit, VariationalCircuit):
        inputs = list(circuit.inputs) if inputs is None else inputs
        weights = list(circuit.weights) if weights is None else weights
        circuit = circuit.circuit
    if inputs is None or weights is None:
        d_in, _d_w = _split_parameters(circuit)
        inputs = d_in if inputs is None else inputs
        weights = [p for p in circuit.parameters if p not in set(inputs)] if weights is None else weights
    return TorchCircuit(circuit, inputs, weights, dtype)


class QuantumLayer(torch.nn.Module):
    """Inputs (B, n_inputs) -> <Z_i> (B, n) or probabilities (B, 2^n), with the weights as an nn.Parameter."""

    def __init__(
        self,
        circuit: QuantumCircuit | VariationalCircuit,
        output: str = "expval",
        dtype: torch.dtype = torch.complex64,
        init_scale: float = math.pi,
        seed: int = 0,
    ):
        super().__init__()
        self.sim = compile_circuit(circuit, dtype=dtype)
        self.output = output
        gen = torch.Generator().manual_seed(seed)
        rdt = torch.float32 if dtype == torch.complex64 else torch.float64
        init = (2 * torch.rand(self.sim.num_weights, generator=gen, dtype=rdt) - 1) * init_scale
        self.weights = torch.nn.Parameter(init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sim(x, self.weights, self.output)


def bind_weights(
    circuit: QuantumCircuit | VariationalCircuit, weights: Any, inputs: Any | None = None
) -> QuantumCircuit:
    """The circuit with trained weights (and optionally one input vector) bound to numbers."""
    if isinstance(circuit, VariationalCircuit):
        w_params, x_params, qc = list(circuit.weights), list(circuit.inputs), circuit.circuit
    else:
        x_params, w_params = _split_parameters(circuit)
        qc = circuit
    values = dict(zip(w_params, np.asarray(torch.as_tensor(weights).detach().cpu(), dtype=float).ravel()))
    if inputs is not None:
        values.update(zip(x_params, np.asarray(inputs, dtype=float).ravel()))
    return qc.assign_parameters(values)


def export_qasm3(
    circuit: QuantumCircuit | VariationalCircuit, weights: Any, inputs: Any | None = None
) -> str:
    """OpenQASM 3 text of the circuit with weights bound; unbound inputs stay as `input float` parameters."""
    return qasm3.dumps(bind_weights(circuit, weights, inputs))
