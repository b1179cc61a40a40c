"""Parameterized qiskit circuit builders: angle and amplitude encodings, hardware-efficient ansätze.

Every builder returns a plain `QuantumCircuit` whose data parameters live in a ParameterVector named "x" and
whose trainable parameters live in one named "θ"; `VariationalCircuit` keeps the two apart so the simulator
(`qlife.quantum.simulator`) can bind a batch of inputs and one set of weights. Qubit order is qiskit's:
qubit 0 is the least significant bit of a basis-state index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit.circuit import Parameter, ParameterVector, QuantumCircuit

from qlife.arrays import unit_rows

ROTATIONS = ("rx", "ry", "rz")
ENTANGLEMENTS = ("linear", "ring", "full")
ENTANGLERS = ("cx", "cz")


@dataclass(frozen=True)
class VariationalCircuit:
    """A circuit whose input parameters (`inputs`, "x") are kept apart from its trainable ones ("θ")."""

    circuit: QuantumCircuit
    inputs: tuple[Parameter, ...]
    weights: tuple[Parameter, ...]

    @property
    def num_qubits(self) -> int:
        return self.circuit.num_qubits

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_weights(self) -> int:
        return len(self.weights)


def _rotate(qc: QuantumCircuit, rotation: str, angle, qubit: int) -> None:
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    getattr(qc, rotation)(angle, qubit)


def angle_encoding(n: int, rotation: str = "ry", x: ParameterVector | None = None) -> QuantumCircuit:
    """One rotation R(x_i) per qubit. For "rz" a Hadamard comes first, since RZ on |0> is only a phase."""
    x = ParameterVector("x", n) if x is None else x
    qc = QuantumCircuit(n, name=f"angle_{rotation}")
    for i in range(n):
        if rotation == "rz":
            qc.h(i)
        _rotate(qc, rotation, x[i], i)
    return qc


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _uniformly_controlled_ry(qc: QuantumCircuit, thetas, controls: list[int], target: int) -> None:
    """Möttönen's uniformly controlled RY: 2^k RYs and 2^k CNOTs in Gray-code order.

    `thetas` are the Gray-code-transformed angles (see `amplitude_angles`), so each RY takes one parameter.
    """
    k = len(controls)
    if k == 0:
        qc.ry(thetas[0], target)
        return
    for i in range(2**k):
        qc.ry(thetas[i], target)
        flipped = _gray(i) ^ _gray((i + 1) % 2**k)  # exactly one control bit changes
        qc.cx(controls[flipped.bit_length() - 1], target)


def amplitude_encoding(n_qubits: int, x: ParameterVector | None = None) -> QuantumCircuit:
    """State preparation of a real 2^n vector by a RY/CNOT tree (Möttönen et al. 2004), parameterized.

    The 2^n - 1 parameters "x" are the tree's rotation angles after the Gray-code transform; compute them
    for a batch of (real, any-norm) vectors with `amplitude_angles`. Level k rotates qubit n-1-k, controlled
    by the k more significant qubits. Cost: 2^n - 1 RY and 2^n - 2 CNOT.
    """
    n = n_qubits
    x = ParameterVector("x", 2**n - 1) if x is None else x
    qc = QuantumCircuit(n, name="amplitude")
    offset = 0
    for k in range(n):
        controls = list(range(n - k, n))  # bit m of the prefix index j <-> qubit n-k+m
        _uniformly_controlled_ry(qc, x[offset : offset + 2**k], controls, n - 1 - k)
        offset += 2**k
    return qc


def _gray_transform(alpha: np.ndarray) -> np.ndarray:
    """theta_i = 2^-k sum_j (-1)^{popcount(j & gray(i))} alpha_j, along the last axis (length 2^k)."""
    size = alpha.shape[-1]
    idx = np.arange(size)
    g = idx ^ (idx >> 1)
    parity = np.vectorize(lambda v: (v).bit_count() % 2)(g[:, None] & idx[None, :])
    m = 1.0 - 2.0 * parity
    return alpha @ m.T / size


def amplitude_angles(vectors: np.ndarray) -> np.ndarray:
    """Parameters of `amplitude_encoding` for real vectors of shape (B, 2^n) or (2^n,); normalized here.

    Upper tree levels split the norm (angles from atan2 of child norms); the last level uses the signed
    amplitudes, so real vectors with negative entries are prepared exactly.
    """
    v = np.asarray(vectors, dtype=np.float64)
    single = v.ndim == 1
    v = np.atleast_2d(v)
    if np.iscomplexobj(vectors):
        raise ValueError("amplitude_angles takes real vectors; use StatePreparation for complex states")
    size = v.shape[1]
    n = round(np.log2(size))
    if 2**n != size or n < 1:
        raise ValueError(f"vector length must be a power of two >= 2, got {size}")
    v = unit_rows(v)
    out = []
    for k in range(n):
        blocks = v.reshape(len(v), 2**k, 2, -1)  # prefix j (MSB first), next bit, rest
        if k == n - 1:
            alpha = 2 * np.arctan2(blocks[:, :, 1, 0], blocks[:, :, 0, 0])
        else:
            norms = np.linalg.norm(blocks, axis=3)
            alpha = 2 * np.arctan2(norms[:, :, 1], norms[:, :, 0])
        out.append(_gray_transform(alpha))
    angles = np.concatenate(out, axis=1)
    return angles[0] if single else angles


def _entangling_pairs(n: int, entanglement: str) -> list[tuple[int, int]]:
    if entanglement == "linear":
        return [(i, i + 1) for i in range(n - 1)]
    if entanglement == "ring":
        return [(i, (i + 1) % n) for i in range(n)] if n > 2 else [(i, i + 1) for i in range(n - 1)]
    if entanglement == "full":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    raise ValueError(f"entanglement must be one of {ENTANGLEMENTS}, got {entanglement!r}")


entangling_pairs = _entangling_pairs  # public: the pairs a `linear` / `ring` / `full` layout entangles


def hardware_efficient_ansatz(
    n: int,
    layers: int,
    rotations: tuple[str, ...] = ("ry", "rz"),
    entanglement: str = "linear",
    entangler: str = "cx",
    reupload: bool = False,
    encoding_rotation: str = "ry",
) -> VariationalCircuit:
    """`layers` x (a rotation per qubit per entry of `rotations`, then `entangler` on the chosen pairs).

    With `reupload`, an angle encoding of the n inputs "x" precedes every layer (data re-uploading);
    without it the ansatz has no inputs. Trainable parameters: layers * n * len(rotations).
    """
    if entangler not in ENTANGLERS:
        raise ValueError(f"entangler must be one of {ENTANGLERS}, got {entangler!r}")
    x = ParameterVector("x", n if reupload else 0)
    theta = ParameterVector("θ", layers * n * len(rotations))
    pairs = _entangling_pairs(n, entanglement)
    qc = QuantumCircuit(n, name="hea")
    t = iter(theta)
    for _ in range(layers):
        if reupload:
            qc.compose(angle_encoding(n, encoding_rotation, x), inplace=True)
        for rot in rotations:
            for q in range(n):
                _rotate(qc, rot, next(t), q)
        for a, b in pairs:
            getattr(qc, entangler)(a, b)
    return VariationalCircuit(qc, tuple(x), tuple(theta))


def variational_circuit(
    n_qubits: int,
    layers: int,
    encoding: str = "angle",
    rotations: tuple[str, ...] = ("ry", "rz"),
    entanglement: str = "linear",
    entangler: str = "cx",
    reupload: bool = False,
    encoding_rotation: str = "ry",
) -> VariationalCircuit:
    """Encoding ("angle": n inputs, "amplitude": 2^n - 1 angles from `amplitude_angles`) + ansatz."""
    if reupload:
        if encoding != "angle":
            raise ValueError("data re-uploading needs the angle encoding")
        return hardware_efficient_ansatz(
            n_qubits, layers, rotations, entanglement, entangler, True, encoding_rotation
        )
    if encoding == "angle":
        enc = angle_encoding(n_qubits, encoding_rotation)
    elif encoding == "amplitude":
        enc = amplitude_encoding(n_qubits)
    else:
        raise ValueError(f"encoding must be 'angle' or 'amplitude', got {encoding!r}")
    ans = hardware_efficient_ansatz(n_qubits, layers, rotations, entanglement, entangler)
    qc = enc.compose(ans.circuit)
    x = tuple(p for p in qc.parameters if p.name.startswith("x["))
    x = tuple(sorted(x, key=lambda p: p.index))
    return VariationalCircuit(qc, x, ans.weights)
