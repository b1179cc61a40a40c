"""Seeded benchmark QUBOs: the k-of-n selection shape of structured pruning (importance - redundancy)."""

from __future__ import annotations

import dimod
import numpy as np

from qlife.quantum.qubo import k_hot_penalty


def selection_qubo(
    n: int, seed: int = 0, k: int | None = None, density: float = 1.0
) -> dimod.BinaryQuadraticModel:
    """min -sum w_i x_i + sum_{i<j} R_ij x_i x_j + P (sum x - k)^2, w ~ U(0,1), R ~ U(0, 0.3) / k.

    An item's total redundancy within a k-set is < 0.3, so P = 1.3 + max w makes every optimum k-hot.
    `density` < 1 keeps that fraction of the R pairs (sparse models for large n).
    """
    rng = np.random.default_rng(seed)
    k = max(1, n // 4) if k is None else k
    w = rng.uniform(0, 1, n)
    bqm = dimod.BinaryQuadraticModel({i: -w[i] for i in range(n)}, {}, 0.0, dimod.BINARY)
    if density >= 1.0:
        r = np.triu(rng.uniform(0, 0.3 / k, (n, n)), 1)
        bqm.add_quadratic_from({(i, j): r[i, j] for i in range(n) for j in range(i + 1, n)})
    else:
        m = int(density * n * (n - 1) / 2)
        i, j = rng.integers(0, n, m), rng.integers(0, n, m)
        keep = i != j
        bqm.add_quadratic_from(
            zip(i[keep].tolist(), j[keep].tolist(), rng.uniform(0, 0.3 / k, keep.sum()).tolist())
        )
    bqm.update(k_hot_penalty(range(n), k, strength=1.3 + w.max()))
    return bqm
