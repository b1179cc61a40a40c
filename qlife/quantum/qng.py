"""Quantum natural gradient: the block-diagonal Fubini-Study metric of a variational circuit and an optimizer.

The Fubini-Study metric of a parametrised state |psi(theta)> is g_ij = Re[<d_i psi|d_j psi> - <d_i psi|psi>
<psi|d_j psi>] (the real part of the quantum geometric tensor). Stokes et al. (arXiv 1909.02108) approximate it
block-diagonally: the trainable gates are grouped into blocks of rotations that act on distinct qubits with
nothing in between, and within block l, with |psi_l> the state just before the block and K_i = c_i P_i / 2 the
generator of gate i (RX/RY/RZ(c theta) = exp(-i c theta P / 2)),

    g_ij = <psi_l|K_i K_j|psi_l> - <psi_l|K_i|psi_l><psi_l|K_j|psi_l>

(what PennyLane's `metric_tensor(approx="block-diag")` computes). Here it is computed exactly from the
statevector of the torch simulator (qlife.quantum.simulator): one prefix circuit per block, evaluated on a batch
of inputs, the metric averaged over the batch (a data-dependent circuit has one metric per input; the average
is the metric of the empirical input distribution). On hardware each block costs one circuit per input (the
generators of a block are on distinct qubits: one basis rotation measures them all), which `BlockDiagMetric`
counts.

`QNG` is a torch optimizer for the circuit weights only: theta <- theta - lr (g + lambda I)^-1 grad, with the
Tikhonov term lambda, block by block; the classical parameters keep their own optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from qiskit.circuit import ParameterExpression, QuantumCircuit

from qlife.quantum.circuits import VariationalCircuit
from qlife.quantum.simulator import TorchCircuit

PAULI_OF = {"rx": "X", "ry": "Y", "rz": "Z"}


@dataclass(frozen=True)
class Block:
    """Trainable rotations on distinct qubits with nothing in between: weight indices, qubits, Paulis, coefs."""

    start: int  # index in circuit.data of the block's first gate: the prefix is circuit.data[:start]
    weights: tuple[int, ...]
    qubits: tuple[int, ...]
    paulis: tuple[str, ...]
    coefs: tuple[float, ...]


def _weight_gate(ci, qc: QuantumCircuit, weight_pos: dict) -> tuple[int, float] | None:
    """(weight index, coefficient) of a gate whose angle is coef * theta_k (+ const), else None when it has no
    trainable angle; a trainable angle in any other form is an error."""
    params = [p for p in ci.operation.params if isinstance(p, ParameterExpression)]
    trained = [p for p in params if any(q in weight_pos for q in p.parameters)]
    if not trained:
        return None
    name = ci.operation.name
    if name not in PAULI_OF or len(params) != 1:
        raise ValueError(f"block-diagonal metric: gate {name!r} with a trainable angle is not supported (rx, ry, rz "
                         "with one angle each)")
    expr = params[0]
    free = list(expr.parameters)
    if len(free) != 1:
        raise ValueError(f"block-diagonal metric: the angle {expr} of {name!r} mixes parameters: each trainable "
                         "rotation must depend on one weight")
    grad = expr.gradient(free[0])
    if isinstance(grad, ParameterExpression):
        raise ValueError(f"block-diagonal metric: the angle {expr} of {name!r} is not linear in its weight")
    return weight_pos[free[0]], float(complex(grad).real)


def circuit_blocks(vc: VariationalCircuit) -> list[Block]:
    """The trainable gates of `vc`, grouped into blocks (every weight in exactly one block)."""
    qc = vc.circuit
    weight_pos = {p: i for i, p in enumerate(vc.weights)}
    blocks: list[Block] = []
    cur: dict | None = None

    def close() -> None:
        nonlocal cur
        if cur and cur["weights"]:
            blocks.append(Block(cur["start"], tuple(cur["weights"]), tuple(cur["qubits"]), tuple(cur["paulis"]),
                                tuple(cur["coefs"])))
        cur = None

    for i, ci in enumerate(qc.data):
        if ci.operation.name in ("barrier", "delay"):
            continue
        wg = _weight_gate(ci, qc, weight_pos)
        qubits = [qc.find_bit(q).index for q in ci.qubits]
        if wg is None:
            close()
            continue
        if cur is not None and qubits[0] in cur["qubits"]:
            close()
        if cur is None:
            cur = {"start": i, "weights": [], "qubits": [], "paulis": [], "coefs": []}
        cur["weights"].append(wg[0])
        cur["qubits"].append(qubits[0])
        cur["paulis"].append(PAULI_OF[ci.operation.name])
        cur["coefs"].append(wg[1])
    close()
    seen = sorted(w for b in blocks for w in b.weights)
    if seen != list(range(len(vc.weights))):
        raise ValueError(f"block-diagonal metric: weights {sorted(set(range(len(vc.weights))) - set(seen))} are "
                         "not the angle of any rotation (or appear twice)")
    return blocks


def apply_pauli(psi: torch.Tensor, pauli: str, qubit: int, n: int) -> torch.Tensor:
    """P_qubit |psi> for psi (B, 2^n) (index bit q is qubit q, as in qiskit)."""
    v = psi.reshape(psi.shape[0], 2 ** (n - 1 - qubit), 2, 2 ** qubit)
    a, b = v[:, :, 0], v[:, :, 1]
    if pauli == "X":
        out = torch.stack([b, a], 2)
    elif pauli == "Y":
        out = torch.stack([-1j * b, 1j * a], 2)
    elif pauli == "Z":
        out = torch.stack([a, -b], 2)
    else:
        raise ValueError(f"unknown Pauli {pauli!r}")
    return out.reshape(psi.shape)


class BlockDiagMetric:
    """The block-diagonal Fubini-Study metric of `vc` at inputs x (B, n_inputs) and weights w, averaged over the
    batch. `evaluations` counts prefix statevectors computed here; `hardware_circuits` the circuits hardware
    would run for the same metrics (one per block and input)."""

    def __init__(self, vc: VariationalCircuit, dtype: torch.dtype = torch.complex128):
        self.vc, self.dtype = vc, dtype
        self.blocks = circuit_blocks(vc)
        qc = vc.circuit
        self.prefixes = []
        for b in self.blocks:
            pre = QuantumCircuit(*qc.qregs, *qc.cregs)
            for ci in qc.data[:b.start]:
                pre.append(ci)
            self.prefixes.append(TorchCircuit(pre, list(vc.inputs), list(vc.weights), dtype))
        self.n = qc.num_qubits
        self.evaluations = 0
        self.hardware_circuits = 0
        self.calls = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @torch.no_grad()
    def blocks_at(self, x: torch.Tensor | None, w: torch.Tensor) -> list[torch.Tensor]:
        """One (k_l, k_l) metric block per circuit block, averaged over the rows of x."""
        rdt = torch.float64 if self.dtype == torch.complex128 else torch.float32
        w = w.detach().to(rdt)
        x = None if x is None else x.detach().to(rdt)
        rows = 1 if x is None else x.shape[0]
        out = []
        for b, pre in zip(self.blocks, self.prefixes):
            psi = pre.state(x, w)  # (B, 2^n)
            phi = torch.stack([apply_pauli(psi, p, q, self.n) for p, q in zip(b.paulis, b.qubits)], 1)  # (B, k, 2^n)
            gram = torch.einsum("bid,bjd->bij", phi.conj(), phi).real  # <psi|P_i P_j|psi>
            e = torch.einsum("bd,bid->bi", psi.conj(), phi).real  # <psi|P_i|psi>
            cov = (gram - e[:, :, None] * e[:, None, :]).mean(0)
            c = torch.as_tensor(b.coefs, dtype=rdt)
            out.append(cov * (c[:, None] * c[None, :]) / 4.0)
        self.evaluations += rows * len(self.blocks)
        self.hardware_circuits += rows * len(self.blocks)
        self.calls += 1
        return out

    def dense(self, x: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """The block-diagonal metric as a (P, P) matrix (zeros between blocks), in weight order."""
        p = len(self.vc.weights)
        g = torch.zeros(p, p, dtype=torch.float64)
        for b, blk in zip(self.blocks, self.blocks_at(x, w)):
            idx = torch.as_tensor(b.weights)
            g[idx[:, None], idx[None, :]] = blk.to(torch.float64)
        return g

    def cost(self) -> dict:
        return {"metric_calls": self.calls, "metric_blocks": self.num_blocks,
                "metric_statevectors": self.evaluations, "metric_hardware_circuits": self.hardware_circuits}


def fubini_study(state_fn, w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The full Fubini-Study metric Re[<d_i psi|d_j psi> - <d_i psi|psi><psi|d_j psi>] of the state
    state_fn(w) (2^n,) by central finite differences (the reference the block-diagonal metric is tested
    against)."""
    w = w.detach().to(torch.float64)
    psi = state_fn(w)
    cols = []
    for i in range(len(w)):
        d = torch.zeros_like(w)
        d[i] = eps
        cols.append((state_fn(w + d) - state_fn(w - d)) / (2 * eps))
    jac = torch.stack(cols, 1)  # (2^n, P)
    inner = jac.conj().T @ jac
    proj = (jac.conj().T @ psi)[:, None] * (psi.conj() @ jac)[None, :]
    return (inner - proj).real


class QNG(torch.optim.Optimizer):
    """Quantum natural gradient for the weight vector of a circuit: `step(x)` computes the block-diagonal
    metric at the circuit inputs x (detached; None for a circuit without inputs) and the current weights,
    then theta <- theta - lr (g_l + regularization I)^-1 grad_l for every block l."""

    def __init__(self, weights: torch.nn.Parameter, metric: BlockDiagMetric, lr: float = 0.05,
                 regularization: float = 1e-3):
        if lr <= 0 or regularization < 0:
            raise ValueError(f"QNG needs lr > 0 and regularization >= 0; got {lr}, {regularization}")
        if weights.ndim != 1 or weights.numel() != len(metric.vc.weights):
            raise ValueError(f"QNG: weights of shape {tuple(weights.shape)} for a circuit with "
                             f"{len(metric.vc.weights)} weights")
        super().__init__([weights], {"lr": lr, "regularization": regularization})
        self.metric = metric

    @torch.no_grad()
    def step(self, x: torch.Tensor | None = None, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        group = self.param_groups[0]
        w = group["params"][0]
        if w.grad is None:
            return loss
        grad = w.grad.detach().to(torch.float64)
        delta = torch.zeros_like(grad)
        for b, g in zip(self.metric.blocks, self.metric.blocks_at(x, w)):
            idx = torch.as_tensor(b.weights)
            reg = g.to(torch.float64) + group["regularization"] * torch.eye(len(idx), dtype=torch.float64)
            delta[idx] = torch.linalg.solve(reg, grad[idx])
        w.sub_(group["lr"] * delta.to(w.dtype))
        return loss
