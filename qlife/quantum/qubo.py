"""QUBO models: binary `dimod.BinaryQuadraticModel`s and the helpers the samplers need.

Solvers live in `qlife.quantum.backends` (`qubo_sampler`, `solve`): dimod samplers built from one spec.
Here: `k_hot_penalty` / `one_hot_penalty` (dimod.generators.combinations), `from_quadratic_program`,
`from_matrix` / `to_matrix`, `normalize` (dimod's own), `all_energies` (every assignment, for exact and QAOA),
`bits`. Variable order everywhere is `list(bqm.variables)`; bit i of a basis index is variable i.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import dimod
import numpy as np

from qlife.quantum.errors import QuantumBackendError

EXACT_MAX_VARIABLES = 24


# --- model helpers -----------------------------------------------------------------------------------


def as_binary(bqm: dimod.BinaryQuadraticModel) -> dimod.BinaryQuadraticModel:
    return bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, inplace=False)


def from_matrix(q: np.ndarray, offset: float = 0.0) -> dimod.BinaryQuadraticModel:
    """x^T Q x + offset over binary x (Q need not be symmetric; its diagonal is linear since x^2 = x)."""
    q = np.asarray(q, dtype=float)
    return dimod.BinaryQuadraticModel(
        np.diag(q).copy(), np.triu(q, 1) + np.tril(q, -1).T, offset, dimod.BINARY
    )


def to_matrix(bqm: dimod.BinaryQuadraticModel) -> tuple[np.ndarray, np.ndarray, float]:
    """(h, J upper-triangular, offset) in `list(bqm.variables)` order."""
    bqm = as_binary(bqm)
    lin, (row, col, quad), offset = bqm.to_numpy_vectors(variable_order=list(bqm.variables))
    n = len(lin)
    j = np.zeros((n, n))
    np.add.at(j, (np.minimum(row, col), np.maximum(row, col)), quad)
    return np.asarray(lin, dtype=float), j, float(offset)


def k_hot_penalty(variables: Iterable[Hashable], k: int, strength: float) -> dimod.BinaryQuadraticModel:
    """strength * (sum x - k)^2 as a BQM (dimod.generators.combinations): zero exactly on assignments with k
    ones. Add it to a model."""
    return dimod.generators.combinations(list(variables), k, strength, dimod.BINARY)


def one_hot_penalty(variables: Iterable[Hashable], strength: float) -> dimod.BinaryQuadraticModel:
    return k_hot_penalty(variables, 1, strength)


def normalize(bqm: dimod.BinaryQuadraticModel) -> tuple[dimod.BinaryQuadraticModel, float]:
    """A copy scaled so the largest |bias| is 1 (dimod's `normalize`); returns (scaled model, factor applied):
    energies scale by the factor."""
    out = bqm.copy()
    return out, float(out.normalize(1.0))


def from_quadratic_program(qp: Any, penalty: float | None = None) -> dimod.BinaryQuadraticModel:
    """qiskit-optimization QuadraticProgram -> binary BQM (constraints become penalties, max -> min)."""
    from qiskit_optimization.converters import QuadraticProgramToQubo

    qubo = QuadraticProgramToQubo(penalty=penalty).convert(qp)
    sign = -1.0 if qubo.objective.sense.name == "MAXIMIZE" else 1.0
    names = [v.name for v in qubo.variables]
    bqm = dimod.BinaryQuadraticModel(
        {n: 0.0 for n in names}, {}, sign * qubo.objective.constant, dimod.BINARY
    )
    for name, c in qubo.objective.linear.to_dict(use_name=True).items():
        bqm.add_linear(name, sign * c)
    for (a, b), c in qubo.objective.quadratic.to_dict(use_name=True).items():
        if a == b:
            bqm.add_linear(a, sign * c)
        else:
            bqm.add_quadratic(a, b, sign * c)
    return bqm


def all_energies(bqm: dimod.BinaryQuadraticModel) -> np.ndarray:
    """Energy of every assignment, indexed by sum_i x_i 2^i (n <= 24): low/high halves + one cross GEMM."""
    h, j, offset = to_matrix(bqm)
    n = len(h)
    if n > EXACT_MAX_VARIABLES:
        raise QuantumBackendError(f"exact enumeration is limited to {EXACT_MAX_VARIABLES} variables, got {n}")
    lo = n // 2

    def part(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bits = ((np.arange(2 ** len(idx))[:, None] >> np.arange(len(idx))) & 1).astype(float)
        jj = j[np.ix_(idx, idx)]
        return bits, bits @ h[idx] + np.einsum("si,ij,sj->s", bits, jj, bits)

    lo_idx, hi_idx = np.arange(lo), np.arange(lo, n)
    bl, el = part(lo_idx)
    bh, eh = part(hi_idx)
    cross = bl @ j[np.ix_(lo_idx, hi_idx)] @ bh.T  # (2^lo, 2^hi)
    return (el[:, None] + eh[None, :] + cross + offset).T.ravel()  # index = x_hi * 2^lo + x_lo


def bits(index: np.ndarray, n: int) -> np.ndarray:
    """Rows of bits (int8) of basis indices: bit i of index k is variable i."""
    return ((np.asarray(index)[:, None] >> np.arange(n)) & 1).astype(np.int8)
