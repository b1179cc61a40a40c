"""Stage 6's pruning workflow on the teacher (`stages/deploy.py` runs it; bench/prune.py too): every selector of
qlife.methods.prune_plan at every sparsity of a unit kind, each pruned copy scored (and healed, when
`deploy.recovery_steps`), the QUBO's energy against the best known, its low-energy samples scored on validation
documents (does lower energy mean a better model?), and `deploy.apply`'s selection applied and saved.
"""

from __future__ import annotations

import copy
import time

import numpy as np
from scipy.stats import spearmanr

from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import Calibration, prune_units, split_global
from qlife.teacher_ops import Workbench, quality_fields, save_model, weight_bytes

KINDS = ("heads", "ffn")


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
        q = wb.evaluate(prune_units(copy.deepcopy(wb.teacher), plan.kind, keep), *val)
        rows.append({"rank": r, "energy": plan.energy(keep), "quality": q["quality"], "accuracy": q["accuracy"]})
    return {"candidates": len(rows), "val_docs": len(val[0]), "rows": rows,
            "spearman": spearman([r["energy"] for r in rows], [r["quality"] for r in rows])}


def score_selection(wb: Workbench, plan: KindPlan, method: str, sparsity: float, test) -> tuple[dict, list]:
    """One method at one sparsity: its keep, the pruned model's test figures (and after healing)."""
    dp = wb.params.deploy
    t0 = time.perf_counter()
    keep, info = plan.select(method, sparsity)
    select_s = time.perf_counter() - t0
    samples = info.pop("_samples", None)
    model = prune_units(copy.deepcopy(wb.teacher), plan.kind, keep)
    row = {"kept_per_layer": [len(k) for k in keep], "energy": plan.energy(keep), "select_s": select_s, **info,
           **quality_fields(wb.evaluate(model, *test)), "weight_bytes": weight_bytes(model)}
    if dp.recovery_steps > 0:
        wb.recover(model, dp.recovery_steps, dp.recovery_learning_rate, dp.seed)
        row["recovered"] = {**quality_fields(wb.evaluate(model, *test)), "steps": dp.recovery_steps}
    if method == "qubo" and abs(sparsity - getattr(dp.apply, plan.kind)) < 1e-9:
        row["energy_vs_accuracy"] = energy_vs_accuracy(wb, plan, samples or [])
    return row, keep


def prune_kind(wb: Workbench, kind: str, cal: Calibration, test) -> tuple[dict, list[dict], list | None]:
    """Every method at every sparsity of one kind: the report, the plot rows, the applied keep."""
    dp = wb.params.deploy
    plan = KindPlan(wb.teacher, kind, cal, dp, wb.params.orchestration)
    out: dict = {"units_per_layer": plan.counts, "scope": plan.units.scope, "solver": plan.units.solver.kind,
                 "calibration_examples": cal.examples, "sparsity": {}}
    plot, applied_keep = [], None
    for s in plan.units.sparsity:
        rows, keeps = {}, {}
        for method in dp.methods:
            rows[method], keeps[method] = score_selection(wb, plan, method, s, test)
        best, how = plan.best_known(s, [r["energy"] for r in rows.values()])
        for r in rows.values():
            r["energy_gap"] = (r["energy"] - best) / max(abs(best), 1e-30)
        ranked = [m for m in rows if m != "random"]
        out["sparsity"][f"{s:g}"] = {"best_known_energy": best, "best_known": how, "methods": rows,
                                     "energy_vs_test_quality_spearman": spearman(
                                         [rows[m]["energy"] for m in ranked], [rows[m]["quality"] for m in ranked])}
        plot.append({"sparsity": s, **{m: rows[m]["accuracy"] for m in rows}})
        if abs(s - getattr(dp.apply, kind)) < 1e-9:
            applied_keep = keeps[dp.apply.method]
    return out, plot, applied_keep


def apply_pruning(wb: Workbench, applied: dict, test) -> dict:
    """`deploy.apply`'s selection of every kind on one copy of the teacher, healed, scored and saved."""
    dp, params = wb.params.deploy, wb.params
    pruned = copy.deepcopy(wb.teacher)
    for kind in KINDS:
        if getattr(dp.apply, kind) > 0:
            prune_units(pruned, kind, applied[kind])
    wb.recover(pruned, dp.recovery_steps, dp.recovery_learning_rate, dp.seed)
    q = wb.evaluate(pruned, *test)
    q["weight_bytes"] = save_model(pruned, wb.teacher_dir, params.paths.pruned)
    return q
