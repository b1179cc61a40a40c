"""Gate kernels for the torch statevector simulator (qiskit conventions, little-endian qubit order).

`GATES` names every supported gate; states are batches psi (B, 2^n). Fixed gates take their matrix from
qiskit itself; runs of permutation gates (CX, SWAP, CCX...) compose into one index gather, runs of
diagonal ones (CZ, CCZ...) into one multiply. Single-qubit gates are fused per qubit and applied a layer
at a time as Kronecker blocks of <= 6 qubits (one matmul per block); input-dependent angles (B,) give
batched matrices. Other gates contract their (4, 4)/(8, 8) matrix with the target axes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from qiskit.circuit.library import get_standard_gate_name_mapping

Entry = Any  # a python number or a tensor of shape () or (B,)

FIXED = (
    "id",
    "x",
    "y",
    "z",
    "h",
    "s",
    "sdg",
    "t",
    "tdg",
    "sx",
    "sxdg",
    "cx",
    "cy",
    "cz",
    "ch",
    "swap",
    "iswap",
    "ecr",
    "dcx",
    "csx",
    "cs",
    "csdg",
    "ccx",
    "cswap",
    "ccz",
)


def _rx(t: Entry) -> list[Entry]:
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return [c, -1j * s, -1j * s, c]


def _ry(t: Entry) -> list[Entry]:
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return [c, -s, s, c]


def _rz(t: Entry) -> list[Entry]:
    return [torch.exp(-0.5j * t), 0, 0, torch.exp(0.5j * t)]


def _p(t: Entry) -> list[Entry]:
    return [1, 0, 0, torch.exp(1j * t)]


def _u(t: Entry, phi: Entry, lam: Entry) -> list[Entry]:
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return [c, -torch.exp(1j * lam) * s, torch.exp(1j * phi) * s, torch.exp(1j * (phi + lam)) * c]


def _u2(phi: Entry, lam: Entry) -> list[Entry]:
    return _u(torch.full_like(phi, np.pi / 2), phi, lam)


def _r(t: Entry, phi: Entry) -> list[Entry]:
    c, s = torch.cos(t / 2), torch.sin(t / 2)
    return [c, -1j * torch.exp(-1j * phi) * s, -1j * torch.exp(1j * phi) * s, c]


ONE_QUBIT: dict[str, Callable[..., list[Entry]]] = {
    "rx": _rx,
    "ry": _ry,
    "rz": _rz,
    "p": _p,
    "u1": _p,
    "u": _u,
    "u3": _u,
    "u2": _u2,
    "r": _r,
}


def _controlled(u: list[Entry]) -> list[list[Entry]]:
    # local index = b_control + 2 * b_target; U acts where the control bit is 1
    return [[1, 0, 0, 0], [0, u[0], 0, u[1]], [0, 0, 1, 0], [0, u[2], 0, u[3]]]


def _cu(t: Entry, phi: Entry, lam: Entry, gamma: Entry) -> list[list[Entry]]:
    g = torch.exp(1j * gamma)
    return _controlled([g * e for e in _u(t, phi, lam)])


def _pauli_rot(pauli: np.ndarray) -> Callable[[Entry], list[list[Entry]]]:
    """exp(-i t/2 P) = cos(t/2) I - i sin(t/2) P for a two-qubit Pauli product P (P^2 = I)."""

    def rot(t: Entry) -> list[list[Entry]]:
        c, s = torch.cos(t / 2), torch.sin(t / 2)
        return [[c * (i == j) - 1j * s * complex(pauli[i, j]) for j in range(4)] for i in range(4)]

    return rot


_X, _Y, _Z = (np.array(m, dtype=complex) for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]))
TWO_QUBIT: dict[str, Callable[..., list[list[Entry]]]] = {
    "crx": lambda t: _controlled(_rx(t)),
    "cry": lambda t: _controlled(_ry(t)),
    "crz": lambda t: _controlled(_rz(t)),
    "cp": lambda t: _controlled(_p(t)),
    "cu1": lambda t: _controlled(_p(t)),
    "cu3": lambda t, p, lam: _controlled(_u(t, p, lam)),
    "cu": _cu,
    "rxx": _pauli_rot(np.kron(_X, _X)),
    "ryy": _pauli_rot(np.kron(_Y, _Y)),
    "rzz": _pauli_rot(np.kron(_Z, _Z)),
    "rzx": _pauli_rot(np.kron(_X, _Z)),  # qiskit: Z on q0, X on q1
}
GATES = set(FIXED) | set(ONE_QUBIT) | set(TWO_QUBIT)


@functools.cache
def _fixed_matrix(name: str) -> np.ndarray:
    m = np.array(get_standard_gate_name_mapping()[name].to_matrix(), dtype=complex)
    m.setflags(write=False)
    return m


def _global_index(n: int, qubits: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For every basis index i: its gate-local index and i with the gate's bits cleared."""
    idx = np.arange(2**n)
    local = sum(((idx >> q) & 1) << j for j, q in enumerate(qubits))
    cleared = idx & ~sum(1 << q for q in qubits)
    return local, cleared


def _fixed_kernel(name: str, qubits: tuple[int, ...], n: int, ref: torch.Tensor) -> tuple[str, Any]:
    m, kind = _fixed_matrix(name), fixed_kind(name)
    local, cleared = _global_index(n, qubits)
    if kind == "diag":
        return "diag", torch.as_tensor(np.diag(m)[local], dtype=ref.dtype, device=ref.device)
    if kind != "perm":
        raise ValueError(f"{name} is neither a permutation nor diagonal")
    src_local = m.argmax(axis=1)[local]  # new[i] = old[src]
    src = cleared | sum(((src_local >> j) & 1) << q for j, q in enumerate(qubits))
    return "perm", torch.as_tensor(src, dtype=torch.long, device=ref.device)


def _as_complex(e: Entry, ref: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(e, device=ref.device).to(ref.dtype)


BLOCK = 6  # fused single-qubit layers act on blocks of <= 6 qubits: one (64 x 64) matmul per block


def one_qubit_matrix(name: str, angles: list[Any], ref: torch.Tensor) -> torch.Tensor:
    """The (2, 2) or batched (B, 2, 2) matrix of a single-qubit gate, in ref's complex dtype/device."""
    if name in FIXED:
        return torch.tensor(_fixed_matrix(name), dtype=ref.dtype, device=ref.device)
    rdt = ref.real.dtype
    angles = [
        a.to(rdt) if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=rdt, device=ref.device)
        for a in angles
    ]
    e = ONE_QUBIT[name](*angles)
    return _stack_matrix([e[:2], e[2:]], ref)


def _kron(mats: list[torch.Tensor]) -> torch.Tensor:
    """Kronecker product, first matrix most significant; any of them may carry a batch dim."""
    out = mats[0]
    for m in mats[1:]:
        a, b = out.shape[-1], m.shape[-1]
        out = (out[..., :, None, :, None] * m[..., None, :, None, :]).reshape(
            *torch.broadcast_shapes(out.shape[:-2], m.shape[:-2]), a * b, a * b
        )
    return out


def product_state(mats: dict[int, torch.Tensor], n: int, batch: int, ref: torch.Tensor) -> torch.Tensor:
    """(B, 2^n) state of U_q|0> on every qubit (identity where no U): a fused first layer on |0...0>."""
    psi = torch.ones(batch, 1, dtype=ref.dtype, device=ref.device)
    for q in reversed(range(n)):  # most significant first
        col = mats[q][..., :, 0] if q in mats else torch.tensor([1, 0], dtype=ref.dtype, device=ref.device)
        psi = (psi[:, :, None] * col.reshape(-1, 1, 2)).reshape(batch, -1)
    return psi


def apply_layer(psi: torch.Tensor, mats: dict[int, torch.Tensor], n: int) -> torch.Tensor:
    """Apply commuting single-qubit matrices {qubit: (2,2) | (B,2,2)} in blocks of <= BLOCK qubits."""
    b = psi.shape[0]
    eye = torch.eye(2, dtype=psi.dtype, device=psi.device)
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        if not any(q in mats for q in range(lo, hi)):
            continue
        m = _kron([mats.get(q, eye) for q in reversed(range(lo, hi))])
        d = 2 ** (hi - lo)
        if m.dim() == 2:
            if lo == 0:
                psi = (psi.view(-1, d) @ m.T).reshape(b, -1)
            else:
                psi = torch.matmul(m, psi.view(-1, d, 2**lo)).reshape(b, -1)
        elif lo == 0:
            psi = torch.bmm(psi.view(b, -1, d), m.transpose(1, 2)).reshape(b, -1)
        else:
            psi = torch.einsum("bij,bxjr->bxir", m, psi.view(b, -1, d, 2**lo)).reshape(b, -1)
    return psi


def compose_fixed(gates: list[tuple[str, tuple[int, ...]]], n: int, ref: torch.Tensor) -> tuple[str, Any]:
    """One gather index (all permutations) or one diagonal (all diagonal) for a run of fixed gates."""
    kinds = [_fixed_kernel(name, qubits, n, ref) for name, qubits in gates]
    if all(k == "diag" for k, _ in kinds):
        diag = kinds[0][1]
        for _, d in kinds[1:]:
            diag = diag * d
        return "diag", diag
    src = kinds[0][1]
    for _, s in kinds[1:]:  # new = old[s1] then newer = new[s2] = old[s1[s2]]
        src = src[s]
    return "perm", src


def fixed_kind(name: str) -> str:
    """'perm', 'diag' or 'matrix' for a fixed gate, read off its qiskit matrix."""
    m = _fixed_matrix(name)
    if np.allclose(m, np.diag(np.diag(m))):
        return "diag"
    if np.all((m == 0) | (m == 1)) and np.all(m.sum(axis=1) == 1):
        return "perm"
    return "matrix"


def _apply_matrix(psi: torch.Tensor, mat: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """Contract a (d, d) or batched (B, d, d) matrix with the gate's axes of psi viewed as (B, 2, ..., 2)."""
    b, k = psi.shape[0], len(qubits)
    src = [1 + (n - 1 - q) for q in reversed(qubits)]  # most significant local bit first
    dst = list(range(n - k + 1, n + 1))
    t = torch.movedim(psi.view(b, *([2] * n)), src, dst).reshape(b, -1, 2**k)
    t = t @ mat.transpose(-1, -2)
    return torch.movedim(t.reshape(b, *([2] * n)), dst, src).reshape(b, -1)


def _stack_matrix(rows: list[list[Entry]], ref: torch.Tensor) -> torch.Tensor:
    entries = [_as_complex(e, ref) for r in rows for e in r]
    shape = torch.broadcast_shapes(*(e.shape for e in entries))
    d = len(rows)
    return torch.stack([e.expand(shape) for e in entries], dim=-1).reshape(*shape, d, d)


def apply(psi: torch.Tensor, name: str, qubits: tuple[int, ...], angles: list[Any], n: int) -> torch.Tensor:
    """Apply a multi-qubit gate `name` on `qubits` (angles: floats or tensors () / (B,)) to psi (B, 2^n)."""
    if name in FIXED:
        return _apply_matrix(
            psi, torch.tensor(_fixed_matrix(name), dtype=psi.dtype, device=psi.device), qubits, n
        )
    rdt = psi.real.dtype
    angles = [
        a.to(rdt) if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=rdt, device=psi.device)
        for a in angles
    ]
    return _apply_matrix(psi, _stack_matrix(TWO_QUBIT[name](*angles), psi), qubits, n)
