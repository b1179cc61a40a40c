"""Tabu search over exactly-k selections: minimise a binary quadratic model subject to sum(x) = num_ones.

The unconstrained samplers (dwave-samplers' tabu, simulated and path-integral annealing, QAOA, a QPU) see the
cardinality as a penalty lambda (sum x - m)^2 that must outweigh every one-flip change: on a 1,536-variable
pruning QUBO the penalty dominates the landscape and single flips mostly leave the feasible set. This sampler
never leaves it. Its move swaps one 1 for one 0; the change in energy is exact and costs O(1) from the local
fields f_i = h_i + sum_l J_il x_l (J symmetric):

    dE(i out, j in) = f_j - f_i - J_ij,

and after the move f += J[j] - J[i]. Each step scores the `candidates` ones of largest field against every 0,
and every 1 against the `candidates` zeros of smallest field (the swaps that matter most, and every pair they
form whatever its interaction), takes the best non-tabu swap (a tabu swap only if it beats the best seen:
aspiration), and forbids both units for `tenure` (+0..2 at random) steps. After `stall` steps without a new
best it restarts from the best with `kick` random swaps (iterated local search). Read r starts from the greedy
selection (units added one at a time, each the cheapest given those before) and uses seed + r.

Classical: resources are reported as CPU, never as quantum hardware. The sample set holds each read's best and
the distinct best states of its restarts (low-energy local optima), lowest energy first.
"""

from __future__ import annotations

import time
from typing import Any

import dimod
import numpy as np


def dense(bqm: dimod.BinaryQuadraticModel) -> tuple[np.ndarray, np.ndarray, float]:
    """(h, J symmetric with zero diagonal, offset) of a BINARY model, in `list(bqm.variables)` order."""
    ldata, (irow, icol, qdata), offset = bqm.to_numpy_vectors(sort_indices=False)
    n = len(ldata)
    js = np.zeros((n, n))
    js[irow, icol] = qdata  # a BQM has no self-loops: the diagonal stays zero
    js[icol, irow] = qdata
    return np.asarray(ldata, dtype=np.float64), js, float(offset)


def greedy(h: np.ndarray, js: np.ndarray, m: int) -> np.ndarray:
    """m ones added one at a time, each the one that raises the energy least given those before."""
    z = np.zeros(len(h))
    f = h.copy()
    for _ in range(m):
        j = int(np.argmin(np.where(z == 1, np.inf, f)))
        z[j] = 1
        f += js[j]
    return z


def swap_search(h: np.ndarray, js: np.ndarray, z0: np.ndarray, timeout_s: float, tenure: int, candidates: int,
                stall: int, kick: int, seed: int, max_iterations: int | None = None
                ) -> tuple[np.ndarray, float, list[tuple[float, np.ndarray]], dict[str, int]]:
    """(best z, its energy h.z + z^T J z / 2, distinct restart optima [(energy, z)], counters) from z0."""
    rng = np.random.default_rng(seed)
    n = len(h)
    z = np.asarray(z0, dtype=np.float64).copy()
    ones, zeros = np.flatnonzero(z == 1), np.flatnonzero(z == 0)
    m = len(ones)

    def energy(x: np.ndarray) -> float:
        return float(h @ x + 0.5 * x @ js @ x)

    e = energy(z)
    best_e, best_z = e, z.copy()
    optima: dict[bytes, tuple[float, np.ndarray]] = {}
    counters = {"iterations": 0, "restarts": 0}
    if m == 0 or m == n:
        return best_z, best_e, [(best_e, best_z)], counters
    c = max(1, min(candidates, m, n - m))
    kick = max(1, min(kick, m, n - m))
    f = h + js @ z
    tabu = np.zeros(n, dtype=np.int64)
    ep_e, ep_z = e, z.copy()  # this restart's best
    it = last = 0
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and (max_iterations is None or it < max_iterations):
        it += 1
        if it - last > stall:
            optima.setdefault(ep_z.astype(np.int8).tobytes(), (ep_e, ep_z))
            z = best_z.copy()
            ones, zeros = np.flatnonzero(z == 1), np.flatnonzero(z == 0)
            a, b = rng.choice(m, kick, replace=False), rng.choice(n - m, kick, replace=False)
            out, into = ones[a].copy(), zeros[b].copy()
            z[out], z[into] = 0, 1
            ones[a], zeros[b] = into, out
            f = h + js @ z
            e = energy(z)
            ep_e, ep_z = e, z.copy()
            tabu[:] = 0
            last = it
            counters["restarts"] += 1
        fo, fz = f[ones], f[zeros]
        to, tz = tabu[ones] > it, tabu[zeros] > it
        ci = np.argpartition(np.where(to, np.inf, -fo), c - 1)[:c]
        cj = np.argpartition(np.where(tz, np.inf, fz), c - 1)[:c]
        # candidate ones x every zero, and every one x candidate zeros; tabu pairs only by aspiration
        d1 = fz[None, :] - fo[ci][:, None] - js[ones[ci]][:, zeros]
        d1 = np.where(to[ci][:, None] | tz[None, :], np.where(e + d1 < best_e - 1e-15, d1, np.inf), d1)
        a1, b1 = np.unravel_index(np.argmin(d1), d1.shape)
        dl, ia, jb = d1[a1, b1], ci[a1], b1
        d2 = fz[cj][None, :] - fo[:, None] - js[zeros[cj]][:, ones].T
        d2 = np.where(to[:, None] | tz[cj][None, :], np.where(e + d2 < best_e - 1e-15, d2, np.inf), d2)
        a2, b2 = np.unravel_index(np.argmin(d2), d2.shape)
        if d2[a2, b2] < dl:
            dl, ia, jb = d2[a2, b2], a2, cj[b2]
        if not np.isfinite(dl):  # every swap tabu and none aspirates: let the tenure run out
            continue
        i, j = ones[ia], zeros[jb]
        e += dl
        z[i], z[j] = 0, 1
        f += js[j] - js[i]
        ones[ia], zeros[jb] = j, i
        tabu[i] = it + tenure + rng.integers(0, 3)
        tabu[j] = it + tenure + rng.integers(0, 3)
        if e < ep_e - 1e-15:
            ep_e, ep_z = e, z.copy()
        if e < best_e - 1e-15:
            best_e, best_z, last = e, z.copy(), it
    counters["iterations"] = it
    optima.setdefault(ep_z.astype(np.int8).tobytes(), (ep_e, ep_z))
    optima.setdefault(best_z.astype(np.int8).tobytes(), (best_e, best_z))
    exact = [(energy(x), x) for _, x in optima.values()]  # the incremental energies drift by rounding
    exact.sort(key=lambda t: t[0])
    return best_z, energy(best_z), exact, counters


class SwapTabuSampler(dimod.Sampler):
    """dimod sampler: tabu search with swap moves over the assignments with exactly `num_ones` ones (a required
    argument). The BQM is the objective alone; a cardinality penalty, if present, is constant on that set."""

    parameters = {"num_ones": [], "num_reads": [], "timeout_ms": [], "tenure": [], "candidates": [], "stall": [],
                  "kick": [], "seed": [], "max_samples": [], "max_iterations": []}
    properties: dict[str, Any] = {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, num_ones: int | None = None, num_reads: int = 1,
               timeout_ms: int = 1000, tenure: int = 20, candidates: int = 6, stall: int = 150, kick: int = 12,
               seed: int = 0, max_samples: int = 32, max_iterations: int | None = None) -> dimod.SampleSet:
        if bqm.vartype is not dimod.BINARY:
            bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
        n = len(bqm)
        if num_ones is None:
            raise ValueError("swap_tabu searches the assignments with exactly num_ones ones: the caller must give "
                             "num_ones (only deploy's exactly-k selection has that constraint)")
        if not 0 <= int(num_ones) <= n:
            raise ValueError(f"num_ones = {num_ones} for a model of {n} variables")
        h, js, offset = dense(bqm)
        z0 = greedy(h, js, int(num_ones))
        found: dict[bytes, tuple[float, np.ndarray]] = {}
        counters = {"iterations": 0, "restarts": 0}
        per_read = timeout_ms / 1000.0
        for r in range(num_reads):
            _, _, optima, cnt = swap_search(h, js, z0, per_read, tenure, candidates, stall, kick, seed + r,
                                            max_iterations)
            for k in counters:
                counters[k] += cnt[k]
            for e, x in optima:
                found.setdefault(x.astype(np.int8).tobytes(), (e, x))
        rows = sorted(found.values(), key=lambda t: t[0])[:max_samples]
        samples = np.array([x for _, x in rows], dtype=np.int8)
        energies = np.array([e + offset for e, _ in rows])
        return dimod.SampleSet.from_samples((samples, list(bqm.variables)), dimod.BINARY, energies,
                                            info={**counters, "greedy_start": True})
