"""Compressors: (teacher, budget) -> a compressed copy and its report row, one interface for every method.

A `Budget` is what every compressor sees alike: the target layers, their dense modules and calibration inputs,
the ratio of dense to compressed parameters on those layers, the layer-wise fit settings, and (for `prune`) the
FFN pruning planner. `COMPRESSORS` maps a method name to its function; a new compressor is one function and one
registry line:

- `mpo`: each layer as a matrix product operator (TT-SVD cores, qlife.methods.tensornet);
- `mpo_disentangled`: a brick-wall disentangler circuit on the input's qubits, then the MPO;
- `svd`: the truncated SVD at the same parameter count (the best rank-r: the classical twin);
- `prune`: FFN neurons removed by the planner's selector down to the same parameter count.
The tensor-network methods are fitted layer-wise on the calibration inputs (Adam on the relative output error).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from qlife.methods import tensornet as tn
from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import ffn_neuron_cost, prune_units, unit_counts


@dataclass(frozen=True)
class Budget:
    """The layers to compress and how much: ratio = dense parameters / compressed, on those layers."""

    ratio: float
    names: list[str]
    dense: dict[str, Any]  # layer name -> the teacher's nn.Linear
    inputs: dict[str, Any]  # layer name -> calibration inputs (tokens x features)
    dense_parameters: int
    teacher_parameters: int
    sites: int = 3
    disentangler_layers: int = 2
    fit_steps: int = 50
    fit_learning_rate: float = 1e-3
    disentangler_learning_rate: float = 1e-2
    seed: int = 0
    ffn_plan: KindPlan | None = None  # prune: the planner of FFN neurons
    ffn_method: str = "qubo"  # prune: its selector

    @property
    def calibration_tokens(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def at(self, ratio: float) -> Budget:
        return replace(self, ratio=ratio)


def tensor_network(method: str) -> Callable[[Any, Budget], tuple[Any, dict]]:
    """A compressor replacing each target layer by `method`'s factorisation (mpo, mpo_disentangled, svd), then
    fitting it layer-wise on the calibration inputs."""

    def compress(teacher, b: Budget) -> tuple[Any, dict]:
        model = copy.deepcopy(teacher)
        plans = tn.compress_model(model, method, b.ratio, b.names, b.sites, b.disentangler_layers)
        fit = tn.fit_layers(model, b.dense, b.inputs, b.fit_steps, b.fit_learning_rate,
                            b.disentangler_learning_rate, b.seed)
        layout = {"method": plans[0].method, "rank": sorted({x.rank for x in plans}), "example": plans[0].to_dict()}
        return model, {"layout": layout, "fit": {k: v for k, v in fit.items() if k != "layers"}}

    return compress


def prune_to_budget(teacher, b: Budget) -> tuple[Any, dict]:
    """FFN neurons removed by the planner's selector until each layer's FFN holds at most its share of the
    budget: k x (a neuron's parameters) + (the down projection's bias) <= dense / layers / ratio."""
    if b.ffn_plan is None:
        raise ValueError("the prune compressor needs the FFN pruning planner (Budget.ffn_plan)")
    per, fixed = ffn_neuron_cost(teacher)
    counts = unit_counts(teacher, "ffn")
    n, per_layer = counts[0], b.dense_parameters / len(counts) / b.ratio
    k = int(max(1, min(n, (per_layer - fixed) // per)))
    keep, info = b.ffn_plan.select(b.ffn_method, (n - k) / n)
    info = {key: v for key, v in info.items() if key in ("solver", "solver_wall_s", "raw_feasible")}
    model = prune_units(copy.deepcopy(teacher), "ffn", keep)
    return model, {"pruning": {"kept_per_layer": [len(x) for x in keep], "selector": b.ffn_method, **info}}


COMPRESSORS: dict[str, Callable[[Any, Budget], tuple[Any, dict]]] = {
    "mpo": tensor_network("mpo"),
    "mpo_disentangled": tensor_network("mpo_disentangled"),
    "svd": tensor_network("svd"),
    "prune": prune_to_budget,
}
