"""Stage 6's pruning workflow on the teacher (`stages/deploy.py` runs it; bench/prune.py too): every selector of
qlife.methods.prune_plan at every sparsity of a unit kind (attention heads, FFN neurons, transformer blocks), each
pruned copy scored (and healed, when `deploy.recovery_steps`: kept only when validation does not get worse), the
QUBO's energy against the best known,
its low-energy samples scored on validation documents (does lower energy mean a better model?), the kind's verdict
(the QUBO against its diagonal twin and the best classical selector, paired over the test documents), and
`deploy.apply`'s selection applied and saved.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.stats import spearmanr

from qlife.ledger import measure, verdict_cost
from qlife.methods.prune_plan import KindPlan, remove_units
from qlife.methods.pruning import Calibration, split_global
from qlife.quality import document_verdict
from qlife.teacher_ops import Workbench, quality_fields, save_model, weight_bytes

KINDS = ("heads", "ffn", "blocks")  # the order they are applied in (blocks last: a pruned block goes whole)
CLASSICAL = ("magnitude", "activation", "wanda", "influence", "random")  # the diagonal twin counts too


def active_kinds(dp) -> tuple[str, ...]:
    """The kinds deploy runs: heads and FFN neurons always, blocks when `deploy.blocks.enabled`."""
    return tuple(k for k in KINDS if getattr(getattr(dp, k), "enabled", True))


def spearman(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def energy_vs_accuracy(wb: Workbench, plan: KindPlan, samples: list[list]) -> dict:
    """The QUBO's distinct feasible low-energy selections (rank r in every problem), each pruned and scored on
    validation documents: Spearman of energy against quality (negative: lower energy, better model)."""
    dp = wb.params.deploy
    if not samples or dp.energy_samples < 2:
        return {"candidates": 0, "spearman": None}
    val = wb.split("val", dp.energy_val_docs, dp.seed)
    rows, seen = [], set()
    for r in range(dp.energy_samples):
        if plan.global_model is not None:
            if r >= len(samples[0]):
                break
            keep, _ = split_global(samples[0][r][1], plan.counts, plan.global_model)
        else:
            keep = [s[min(r, len(s) - 1)][1] for s in samples]
        key = b"".join(np.asarray(k, dtype=np.int64).tobytes() + b"|" for k in keep)
        if key in seen:
            continue
        seen.add(key)
        q = wb.evaluate(remove_units(copy.deepcopy(wb.teacher), plan.kind, keep), *val)
        rows.append({"rank": r, "energy": plan.energy(keep), "quality": q["quality"], "accuracy": q["accuracy"]})
    return {"candidates": len(rows), "val_docs": len(val[0]), "rows": rows,
            "spearman": spearman([r["energy"] for r in rows], [r["quality"] for r in rows])}


def score_selection(wb: Workbench, plan: KindPlan, method: str, sparsity: float, test
                    ) -> tuple[dict, list, np.ndarray]:
    """One method at one sparsity: its keep, the pruned model's test figures (the kept model's: healed when
    `deploy.recovery_steps` and validation does not get worse) and its test predictions."""
    dp = wb.params.deploy
    with measure(wb.params.ledger) as cost:
        keep, info = plan.select(method, sparsity)
    if uses_qpu(info):
        cost.add_quantum(info["resources"])
    samples = info.pop("_samples", None)
    model = remove_units(copy.deepcopy(wb.teacher), plan.kind, keep)
    before = wb.scored(model, *test)
    healing, pred = wb.recover_kept(model, dp.recovery_steps, dp.recovery_learning_rate, test, before)
    row = {"kept_per_layer": [len(k) for k in keep], "energy": plan.energy(keep), "select_s": cost.wall_s, **info,
           **quality_fields(before[0]), "weight_bytes": weight_bytes(model), **healing,
           "select_cost": cost.as_dict()}
    if healing:
        row.update(healing["after_recovery"] if healing["kept"]["recovery"] else healing["before_recovery"])
        row["recovered"] = {**healing["after_recovery"], "steps": dp.recovery_steps}  # as measured, kept or not
    if method == "qubo" and abs(sparsity - getattr(dp.apply, plan.kind)) < 1e-9:
        row["energy_vs_accuracy"] = energy_vs_accuracy(wb, plan, samples or [])
    return row, keep, pred


def uses_qpu(info: dict) -> bool:
    """A QUBO solved by a quantum algorithm (QAOA circuits, simulated or run; D-Wave reads), not tabu or SA."""
    res = info.get("resources") or {}
    return bool(res.get("hardware_equivalent") or res.get("executed_on", "cpu") != "cpu")


def kind_verdict(wb: Workbench, kind: str, rows: dict, preds: dict, y: np.ndarray, sparsity: float
                 ) -> dict | None:
    """The QUBO selection against its diagonal twin (the same removal cost without the pair terms) and the best of
    magnitude / activation / wanda / random (blocks: Block Influence / magnitude / random), at one sparsity, paired
    over the test documents in the quality metric; cost: the selection (calibration and scoring are the same for
    every method). None without both."""
    if "qubo" not in preds or "diagonal" not in preds:
        return None
    classical = [m for m in ("diagonal", *CLASSICAL) if m in preds]
    solver = getattr(wb.params.deploy, kind).solver.kind
    cost = {m: verdict_cost(rows[m]["select_cost"], m == "qubo" and uses_qpu(rows[m])) for m in ("qubo", *classical)}
    healed = ", healed where that kept validation quality" if wb.params.deploy.recovery_steps > 0 else ""
    note = (f"{kind} at sparsity {sparsity:g} pruned alone{healed}; QUBO solved by {solver}"
            f"{' (a classical solver: no QPU)' if not uses_qpu(rows['qubo']) else ''}; cost: the selection")
    return document_verdict(y, {m: preds[m] for m in ("qubo", *classical)}, wb.labels, wb.params.quality, "qubo",
                            "diagonal", classical=classical, cost=cost, seed=wb.params.deploy.seed, note=note)


def prune_kind(wb: Workbench, kind: str, cal: Calibration, test) -> tuple[dict, list[dict], list | None]:
    """Every method at every sparsity of one kind: the report (with the verdict at `deploy.apply`'s sparsity of
    this kind, else its first), the plot rows (the quality metric), the applied keep."""
    dp = wb.params.deploy
    plan = KindPlan(wb.teacher, kind, cal, dp, wb.params.orchestration)
    out: dict = {"units_per_layer": plan.counts, "scope": plan.scope, "solver": plan.units.solver.kind,
                 "calibration_examples": cal.examples, "sparsity": {}, "verdict": None}
    plot, applied_keep = [], None
    at = getattr(dp.apply, kind) if any(abs(s - getattr(dp.apply, kind)) < 1e-9 for s in plan.units.sparsity) \
        else plan.units.sparsity[0]
    for s in plan.units.sparsity:
        rows, keeps, preds = {}, {}, {}
        for method in plan.methods:
            rows[method], keeps[method], preds[method] = score_selection(wb, plan, method, s, test)
        best, how = plan.best_known(s, [r["energy"] for r in rows.values()])
        for r in rows.values():
            r["energy_gap"] = (r["energy"] - best) / max(abs(best), 1e-30)
        ranked = [m for m in rows if m != "random"]
        out["sparsity"][f"{s:g}"] = {"best_known_energy": best, "best_known": how, "methods": rows,
                                     "energy_vs_test_quality_spearman": spearman(
                                         [rows[m]["energy"] for m in ranked], [rows[m]["quality"] for m in ranked])}
        plot.append({"sparsity": s, "metric": wb.params.quality.name, **{m: rows[m]["quality"] for m in rows}})
        if abs(s - at) < 1e-9:
            out["verdict"], out["verdict_sparsity"] = kind_verdict(wb, kind, rows, preds, test[1], s), f"{s:g}"
        if abs(s - getattr(dp.apply, kind)) < 1e-9:
            applied_keep = keeps[dp.apply.method]
    return out, plot, applied_keep


def apply_pruning(wb: Workbench, applied: dict, test) -> dict:
    """`deploy.apply`'s selection of every kind on one copy of the teacher, healed (kept only when validation does
    not get worse: said under `recovery`), scored and saved."""
    dp, params = wb.params.deploy, wb.params
    pruned = copy.deepcopy(wb.teacher)
    for kind in KINDS:
        if getattr(dp.apply, kind) > 0 and applied.get(kind) is not None:
            remove_units(pruned, kind, applied[kind])
    before = wb.scored(pruned, *test)
    healing, _ = wb.recover_kept(pruned, dp.recovery_steps, dp.recovery_learning_rate, test, before)
    q = healing["after_recovery"] if healing and healing["kept"]["recovery"] else before[0]
    q = {**q, **({"recovery": healing} if healing else {})}
    q["weight_bytes"] = save_model(pruned, wb.teacher_dir, params.paths.pruned)
    return q
