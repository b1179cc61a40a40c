"""qiskit-optimization 0.7's QAOA + MinimumEigenOptimizer: the reference the fast QAOA is tested against.

`to_quadratic_program(bqm)` converts a BQM; `qiskit_qaoa(bqm, p, maxiter, seed, initial_point)` runs their
QAOA (StatevectorSampler, their COBYLA) and returns (best x in bqm variable order, energy, evaluations).

Workaround: with qiskit 2.6, their DiagonalEstimator's circuit cache key hashes ParameterExpressions that
sometimes raise "OverflowError: can't convert negative int to unsigned". The estimator keeps every circuit
it caches alive, so keying by object identity is equivalent; we patch that one key function, nothing else.
"""

from __future__ import annotations

from typing import Any

import dimod
import numpy as np

from qlife.quantum.qubo import as_binary


def _patch_circuit_key() -> None:
    from qiskit_optimization.minimum_eigensolvers import diagonal_estimator

    diagonal_estimator._circuit_key = lambda circuit, functional=True: (id(circuit),)


def to_quadratic_program(bqm: dimod.BinaryQuadraticModel) -> Any:
    from qiskit_optimization import QuadraticProgram

    bqm = as_binary(bqm)
    qp = QuadraticProgram("bqm")
    names = {v: f"x{i}" for i, v in enumerate(bqm.variables)}
    for v in bqm.variables:
        qp.binary_var(names[v])
    qp.minimize(
        constant=float(bqm.offset),
        linear={names[v]: float(b) for v, b in bqm.linear.items()},
        quadratic={(names[u], names[v]): float(b) for (u, v), b in bqm.quadratic.items()},
    )
    return qp


def qiskit_qaoa(
    bqm: dimod.BinaryQuadraticModel, p: int = 1, maxiter: int = 50, seed: int = 0, initial_point: Any = None
) -> tuple[np.ndarray, float, int]:
    """Their QAOA end to end; returns (x in `list(bqm.variables)` order, energy, objective evaluations)."""
    from qiskit.primitives import StatevectorSampler
    from qiskit_optimization.algorithms import MinimumEigenOptimizer
    from qiskit_optimization.minimum_eigensolvers import QAOA
    from qiskit_optimization.optimizers import COBYLA

    _patch_circuit_key()
    evals = []
    qaoa = QAOA(
        StatevectorSampler(seed=seed),
        COBYLA(maxiter=maxiter),
        reps=p,
        initial_point=initial_point,
        callback=lambda count, *_: evals.append(count),
    )
    res = MinimumEigenOptimizer(qaoa).solve(to_quadratic_program(bqm))
    x = np.asarray(res.x, dtype=np.int8)
    return x, float(as_binary(bqm).energy(dict(zip(bqm.variables, x)))), len(evals)
