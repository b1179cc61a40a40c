"""The pruning planner: which units of one kind (attention heads, FFN neurons, or whole transformer blocks) each
selector keeps.

`KindPlan(teacher, kind, calibration, deploy, orchestration)` holds one kind's removal model (per layer, or one
global model for `scope: global`; blocks: one problem over the stack, qlife.methods.blocks) and answers
`select(method, sparsity) -> (keep per layer, solver info)` for every selector of `qlife.methods.selection` at
equal sparsity, `energy(keep)` (the removal cost under the model) and `best_known(sparsity, energies)` (exact at
<= EXACT_MAX variables). A new selector is one class in
qlife.methods.selection and one line in `SELECTORS`. Per-layer QUBOs go through qlife.parallel.
`calibrate_kinds` and `remove_units` are every kind's calibration and removal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qlife.methods.blocks import BlockCalibration, block_magnitude_importance, calibrate_blocks, keep_blocks, n_blocks
from qlife.methods.pruning import (
    Calibration,
    calibrate_all,
    global_scores,
    kept_per_layer,
    layer_scores,
    method_importance,
    prune_units,
    split_global,
    unit_counts,
)
from qlife.methods.selection import DiagonalSelector, QuboSelector, RandomSelector, TopKSelector, UnitScores
from qlife.parallel import pmap
from qlife.params import Deploy, ExactSampler, Orchestration

EXACT_MAX = 24  # variables up to which the exact optimum is the reference energy
# selector name -> factory(solver spec, param name for messages, deploy section)
SELECTORS: dict[str, Callable[[Any, str, Deploy], Any]] = {
    "qubo": lambda solver, param, dp: QuboSelector(solver, param, dp.penalty_scale),
    "random": lambda solver, param, dp: RandomSelector(dp.seed),
    "diagonal": lambda solver, param, dp: DiagonalSelector(),
    "magnitude": lambda solver, param, dp: TopKSelector(),
    "activation": lambda solver, param, dp: TopKSelector(),
    "wanda": lambda solver, param, dp: TopKSelector(),
    "influence": lambda solver, param, dp: TopKSelector(),
}
# selectors that rank by their own importance (the rest rank ties / repair by the removal model's diagonal)
OWN_IMPORTANCE = ("magnitude", "activation", "wanda", "influence")
BLOCKS = "blocks"


def calibrate_kinds(model, kinds, batches, labels) -> dict[str, Calibration | BlockCalibration]:
    """Every kind's calibration on the same batches: heads and FFN neurons in one gated forward/backward per batch
    (qlife.methods.pruning.calibrate_all), blocks by removal passes (qlife.methods.blocks.calibrate_blocks)."""
    batches, labels, kinds = list(batches), list(labels), tuple(kinds)
    units = tuple(k for k in kinds if k != BLOCKS)
    out: dict = calibrate_all(model, units, batches, labels) if units else {}
    if BLOCKS in kinds:
        out[BLOCKS] = calibrate_blocks(model, batches, labels)
    return out


def remove_units(model, kind: str, keep: list[np.ndarray]):
    """The model with only `keep` of `kind` left (blocks: keep[0], the blocks kept)."""
    return keep_blocks(model, keep) if kind == BLOCKS else prune_units(model, kind, keep)


def _block_importance(teacher, method: str, cal: BlockCalibration, objective: str) -> list[np.ndarray]:
    """Per-method importance of blocks (higher: keep): Block Influence, magnitude, else the QUBO's diagonal."""
    if method == "influence":
        return [cal.influence.copy()]
    if method == "magnitude":
        return [block_magnitude_importance(teacher)]
    return [cal.scores(objective).importance]


@dataclass(frozen=True)
class LayerSolve:
    """One layer's keep-k-of-n QUBO, picklable for a worker: (scores, k) -> (keep, the selector's QuboSelection).
    Each solve is seeded by its solver spec alone, so the layers do not depend on the order they run in."""

    selector: QuboSelector

    def __call__(self, problem: tuple[UnitScores, int]) -> tuple[np.ndarray, Any]:
        keep = self.selector.select(*problem)
        return keep, self.selector.last


def sum_resources(items: list) -> dict:
    """The quantum resource records of several solves added up (empty: no quantum work)."""
    items = [r for r in items if r is not None]
    if not items:
        return {}
    total = items[0]
    for r in items[1:]:
        total = total + r
    return total.to_dict() if hasattr(total, "to_dict") else dict(total)


class KindPlan:
    """Selections of one unit kind on the teacher: per method and sparsity, the per-layer keeps, the energy
    under the loss model of the scope, and the QUBO's solver result."""

    def __init__(self, teacher, kind: str, cal: Calibration, deploy: Deploy,
                 orchestration: Orchestration | None = None):
        self.kind, self.cal, self.deploy, self.orchestration = kind, cal, deploy, orchestration
        self.units = getattr(deploy, kind)
        self.methods = list(getattr(self.units, "methods", None) or deploy.methods)
        if kind == BLOCKS:  # one problem over the whole stack
            self.counts = [n_blocks(teacher)]
            self.model_scores = [cal.scores(self.units.objective)]
            self.importance = {m: _block_importance(teacher, m, cal, self.units.objective) for m in self.methods}
            self.global_model = None
            return
        self.counts = unit_counts(teacher, kind)
        self.model_scores = layer_scores(cal, None, deploy.objective)  # per layer (its diagonal: importance)
        own = [s.importance for s in self.model_scores]
        self.importance = {m: method_importance(teacher, kind, m, cal, deploy.objective)
                           if m in OWN_IMPORTANCE else own for m in self.methods}
        self.global_model = global_scores(cal, own, deploy.objective) if self.units.scope == "global" else None

    @property
    def scope(self) -> str:
        return getattr(self.units, "scope", "model")

    def k_of(self, sparsity: float) -> list[int] | int:
        if self.global_model is not None:
            total = sum(self.counts)
            return max(len(self.counts), total - round(sparsity * total))
        return [kept_per_layer(n, sparsity) for n in self.counts]

    def energy(self, keep: list[np.ndarray]) -> float:
        if self.global_model is not None:
            offsets = np.concatenate([[0], np.cumsum(self.counts)])
            return self.global_model.loss_increase(np.concatenate([k + offsets[i] for i, k in enumerate(keep)]))
        return float(sum(s.loss_increase(k) for s, k in zip(self.model_scores, keep)))

    def selector(self, method: str):
        if method not in SELECTORS:
            raise ValueError(f"unknown pruning method {method!r}; known: {sorted(SELECTORS)}")
        return SELECTORS[method](self.units.solver, f"deploy.{self.kind}.solver", self.deploy)

    def select(self, method: str, sparsity: float) -> tuple[list[np.ndarray], dict]:
        """(keep per layer, info): info holds the solver's figures and resources for a QUBO, and `_samples`
        (its low-energy samples per problem: energy against quality)."""
        sel, info = self.selector(method), {}
        if self.global_model is not None:
            scores = UnitScores(np.concatenate(self.importance[method]), self.global_model.gradient,
                                self.global_model.curvature)
            keep, info["empty_layer_swaps"] = split_global(sel.select(scores, self.k_of(sparsity)), self.counts,
                                                           scores)
            results = [sel.last] if method == "qubo" else []
        else:
            problems = [(UnitScores(self.importance[method][i], m.gradient, m.curvature), k)
                        for i, (m, k) in enumerate(zip(self.model_scores, self.k_of(sparsity)))]
            if method == "qubo":  # one independent QUBO per layer: qlife.parallel (serial unless orchestration says)
                picked = pmap(LayerSolve(sel), problems, self.orchestration, f"deploy {self.kind} qubo layers")
                keep, results = [k for k, _ in picked], [r for _, r in picked]
            else:
                keep, results = [sel.select(s, k) for s, k in problems], []
        if results:
            info.update(solver=self.units.solver.kind, solver_wall_s=float(sum(r.wall_s for r in results)),
                        raw_feasible=all(r.raw_feasible for r in results),
                        repaired_flips=int(sum(r.repaired_flips for r in results)), problems=len(results),
                        variables=sum(self.counts) if self.global_model is not None else max(self.counts),
                        resources=sum_resources([r.resources for r in results]),
                        _samples=[r.samples for r in results])
        return keep, info

    def best_known(self, sparsity: float, energies: list[float]) -> tuple[float, str]:
        """The lowest energy known at this sparsity: exact per problem at <= EXACT_MAX variables, else the best
        of the evaluated selections."""
        n = sum(self.counts) if self.global_model is not None else max(self.counts)
        if n > EXACT_MAX:
            return min(energies), "best_of_methods"
        exact = QuboSelector(ExactSampler(), f"deploy.{self.kind}.exact", self.deploy.penalty_scale)
        if self.global_model is not None:
            exact.select(self.global_model, self.k_of(sparsity))
            return exact.last.energy, "exact"
        total = 0.0
        for s, k in zip(self.model_scores, self.k_of(sparsity)):
            exact.select(s, k)
            total += exact.last.energy
        return min(total, *energies), "exact"
