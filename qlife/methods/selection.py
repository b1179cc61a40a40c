"""Choosing exactly k of n units to keep (structured pruning): one interface for top-k and QUBO selectors.

A selector's `select(scores, k) -> keep` returns k sorted indices. `UnitScores` carries what selectors may use:
`importance` (higher: more worth keeping; what top-k ranks) and, for the QUBO, a quadratic model of the cost of
removing the units of z in {0, 1}^n (z_i = 1: removed),

    dL(z) = -g . z + 1/2 z^T H z,    subject to sum(z) = n - k,

with H either the exact Hessian of a layer's relative squared output error (qlife.methods.pruning's
`reconstruction` objective: dL is then exact, not a Taylor model) or the empirical Fisher E[g g^T] of the
per-example gate gradients g (the `fisher` objective: a second-order Taylor model of the loss, as in Optimal
Brain Damage / Kwon et al. 2022). Its diagonal alone is the classical twin (`diagonal`: top-k of each unit's
cost removed alone); the QUBO keeps the cross terms H_ij (two units whose contributions overlap cost less, or
more, removed together than apart). For the unconstrained solvers the constraint is dimod's linear equality
penalty lambda (sum z - (n - k))^2 with lambda above the largest change one flip makes to the objective
(`penalty_strength`), so the penalised optimum is feasible; a sample that is not is repaired greedily to
exactly n - k removals and counted. `swap_tabu` (qlife.quantum.swap_tabu) gets the objective alone and never
leaves the exactly-(n - k) set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class UnitScores:
    importance: np.ndarray  # (n,) higher: keep
    gradient: np.ndarray | None = None  # (n,) mean dL/dm_i over calibration examples
    curvature: np.ndarray | None = None  # (n, n) H: the Fisher E[g g^T], or an exact Hessian
    _qubo: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.importance = np.asarray(self.importance, dtype=np.float64)
        n = len(self.importance)
        if self.importance.ndim != 1 or n == 0:
            raise ValueError(f"importance must be a non-empty vector; got shape {self.importance.shape}")
        if self.gradient is not None and np.shape(self.gradient) != (n,):
            raise ValueError(f"gradient has shape {np.shape(self.gradient)}, expected ({n},)")
        if self.curvature is not None and np.shape(self.curvature) != (n, n):
            raise ValueError(f"curvature has shape {np.shape(self.curvature)}, expected ({n}, {n})")

    @property
    def n(self) -> int:
        return len(self.importance)

    def removal_qubo(self) -> tuple[np.ndarray, np.ndarray]:
        """(h, J): dL(z) = h . z + sum_{i<j} J_ij z_i z_j, J upper triangular (zero diagonal). Computed once
        (the scores are not meant to change after construction)."""
        if self._qubo is None:
            self._qubo = self._removal_qubo()
        return self._qubo

    def _removal_qubo(self) -> tuple[np.ndarray, np.ndarray]:
        if self.curvature is None:
            raise ValueError("the QUBO selector needs UnitScores.curvature (and gradient): from "
                             "qlife.methods.pruning.calibrate (layer_scores)")
        f = np.asarray(self.curvature, dtype=np.float64)
        g = np.zeros(self.n) if self.gradient is None else np.asarray(self.gradient, dtype=np.float64)
        return -g + 0.5 * np.diag(f), np.triu(f + f.T, 1) / 2

    def loss_increase(self, keep: np.ndarray) -> float:
        """The model's dL for keeping exactly `keep` (removing the rest)."""
        h, j = self.removal_qubo()
        z = np.ones(self.n)
        z[np.asarray(keep, dtype=np.int64)] = 0
        return float(h @ z + z @ j @ z)


def check_k(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"keep k = {k} of n = {n} units: need 1 <= k <= n")


def penalty_strength(h: np.ndarray, j: np.ndarray, scale: float) -> float:
    """scale * max_i (|h_i| + sum_j |J_ij|): above the largest change one bit flip makes to the objective, so
    a penalised minimum that breaks sum(z) = m can be improved by a flip towards m (the optimum is feasible)."""
    jj = np.abs(j) + np.abs(j).T
    return float(scale * max(np.max(np.abs(h) + jj.sum(1), initial=0.0), 1e-12))


def repair(z: np.ndarray, m: int, h: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, int]:
    """z with exactly m ones: flip the unit whose flip lowers the objective most (or raises it least) until the
    count is right. Returns (z, flips made)."""
    z = np.asarray(z, dtype=np.float64).copy()
    js = j + j.T
    flips = 0
    while (count := int(z.sum())) != m:
        field_ = h + js @ z  # dE of turning z_i on (off: the negative)
        if count > m:  # turn one off: the largest field gains most
            cand = np.flatnonzero(z == 1)
            i = cand[np.argmax(field_[cand])]
            z[i] = 0
        else:
            cand = np.flatnonzero(z == 0)
            i = cand[np.argmin(field_[cand])]
            z[i] = 1
        flips += 1
    return z.astype(np.int8), flips


class Selector(Protocol):
    name: str
    info: dict[str, Any]

    def select(self, scores: UnitScores, k: int) -> np.ndarray: ...


class TopKSelector:
    """The k units of highest `rank(scores)` (importance; ties: the lower index)."""

    name = "topk"

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def rank(self, scores: UnitScores) -> np.ndarray:
        return scores.importance

    def select(self, scores: UnitScores, k: int) -> np.ndarray:
        check_k(scores.n, k)
        return np.sort(np.argsort(-self.rank(scores), kind="stable")[:k])


class DiagonalSelector(TopKSelector):
    """The QUBO's classical twin: its diagonal only (each unit's own cost removed alone); keeps the k costliest."""

    name = "diagonal"

    def rank(self, scores: UnitScores) -> np.ndarray:
        return scores.removal_qubo()[0]


class RandomSelector:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.info: dict[str, Any] = {}

    def select(self, scores: UnitScores, k: int) -> np.ndarray:
        check_k(scores.n, k)
        return np.sort(self.rng.choice(scores.n, size=k, replace=False))


@dataclass
class QuboSelection:
    keep: np.ndarray
    energy: float  # the objective dL of the (repaired) selection
    raw_feasible: bool
    repaired_flips: int
    wall_s: float
    solver: str
    resources: Any
    samples: list[tuple[float, np.ndarray]] = field(default_factory=list)  # distinct feasible (dL, keep)


# solvers that keep the exactly-(n - k) constraint themselves (they get the objective alone and num_ones)
CONSTRAINED_SOLVERS = ("swap_tabu",)


class QuboSelector:
    """Keep k of n by minimising the removal QUBO with `solver` (a QuboSampler spec of qlife.params) through
    qlife.quantum.backends.solve: exact, qaoa, sa, path_integral, tabu and dwave minimise it plus dimod's
    exactly-(n - k) penalty; swap_tabu searches the exactly-(n - k) set itself. `last` holds the full result of
    the latest call."""

    name = "qubo"

    def __init__(self, solver: Any, param: str = "deploy.solver", penalty_scale: float = 1.5,
                 max_samples: int = 16) -> None:
        if penalty_scale <= 1.0:
            raise ValueError(f"{param}: penalty_scale must be > 1 (feasible optimum); got {penalty_scale}")
        self.solver, self.param, self.penalty_scale, self.max_samples = solver, param, penalty_scale, max_samples
        self.info: dict[str, Any] = {}
        self.last: QuboSelection | None = None

    def bqm(self, scores: UnitScores, k: int):
        """The normalised objective plus the penalty (none for a constrained solver), as a dimod BQM over
        z_0..z_{n-1} (1: removed); the normalisation (energies of the BQM x scale = dL); the penalty strength."""
        import dimod

        check_k(scores.n, k)
        from qlife.params import FMQA_SIMULATED_MAX_BITS

        limit = FMQA_SIMULATED_MAX_BITS.get(self.solver.kind)
        if limit is not None and scores.n > limit:
            raise ValueError(f"{self.param}: {self.solver.kind} simulates at most {limit} variables here; this "
                             f"problem has {scores.n} (use tabu, sa, path_integral or dwave, or a per-layer scope)")
        h, j = scores.removal_qubo()
        scale = max(float(np.max(np.abs(h), initial=0.0)), float(np.max(np.abs(j), initial=0.0)), 1e-30)
        hn, jn = h / scale, j / scale
        bqm = dimod.BinaryQuadraticModel(hn, jn, 0.0, dimod.BINARY)
        if self.solver.kind in CONSTRAINED_SOLVERS:  # searches only the exactly-(n - k) set: no penalty
            return bqm, scale, 0.0
        lam = penalty_strength(hn, jn, self.penalty_scale)
        bqm.add_linear_equality_constraint([(v, 1.0) for v in range(scores.n)], lagrange_multiplier=lam,
                                           constant=-float(scores.n - k))
        return bqm, scale, lam

    def select(self, scores: UnitScores, k: int) -> np.ndarray:
        from qlife.quantum.backends import solve

        bqm, scale, lam = self.bqm(scores, k)
        h, j = scores.removal_qubo()
        m = scores.n - k
        extra = {"num_ones": m} if self.solver.kind in CONSTRAINED_SOLVERS else {}
        res = solve(bqm, self.solver, self.param, **extra)
        order = list(bqm.variables)
        z = np.zeros(scores.n, dtype=np.int8)
        z[np.asarray(order, dtype=np.int64)] = res.x
        feasible = int(z.sum()) == m
        z, flips = repair(z, m, h, j)
        keep = np.flatnonzero(z == 0)
        samples = self._distinct(res.sampleset, scores, m)
        self.last = QuboSelection(keep, scores.loss_increase(keep), feasible, flips, res.wall_s, self.solver.kind,
                                  res.resources, samples)
        self.info = {"energy": self.last.energy, "raw_feasible": feasible, "repaired_flips": flips,
                     "wall_s": res.wall_s, "solver": self.solver.kind, "penalty": lam * scale,
                     "distinct_feasible_samples": len(samples)}
        return keep

    def _distinct(self, ss, scores: UnitScores, m: int) -> list[tuple[float, np.ndarray]]:
        """The sampleset's distinct feasible selections, lowest dL first (at most max_samples)."""
        if ss is None:
            return []
        seen, out = set(), []
        variables = list(ss.variables)
        idx = np.asarray(variables, dtype=np.int64)
        for row in ss.record.sample:
            z = np.zeros(scores.n, dtype=np.int8)
            z[idx] = row
            if int(z.sum()) != m:
                continue
            key = z.tobytes()
            if key in seen:
                continue
            seen.add(key)
            keep = np.flatnonzero(z == 0)
            out.append((scores.loss_increase(keep), keep))
        out.sort(key=lambda t: t[0])
        return out[: self.max_samples]


def brute_force_best(scores: UnitScores, k: int) -> tuple[np.ndarray, float]:
    """The best k-subset to keep under the removal objective by enumeration (small n only: C(n, k) subsets)."""
    from itertools import combinations
    from math import comb

    check_k(scores.n, k)
    if comb(scores.n, k) > 2_000_000:
        raise ValueError(f"C({scores.n}, {k}) subsets: too many to enumerate")
    best, best_e = None, np.inf
    for keep in combinations(range(scores.n), k):
        e = scores.loss_increase(np.array(keep))
        if e < best_e - 1e-15:
            best, best_e = np.array(keep), e
    return best, float(best_e)
