"""Stage 6 — pruning, inference & deployment: the pruning step (`dvc repro deploy`).

Stage 6 is three DVC steps, each rerun only when its own params and inputs change: this one (pruning),
`stages/compress.py` (tensor-network compression, `deploy.compress`) and `stages/serving.py` (serving cost of
every candidate, `deploy.serving`).

Inputs: `paths.teacher/`, `paths.encoded/tokenized`, `paths.student/`, `paths.metrics/distill.json`.
Method: structured pruning of the fine-tuned teacher, attention heads and FFN neurons physically removed. One
calibration pass per kind over `deploy.calib_docs` training documents (qlife.methods.pruning.calibrate); the
selectors of qlife.methods.prune_plan at equal sparsity: magnitude, activation, structured Wanda, random,
`diagonal` (the QUBO's classical twin: each unit's own removal cost) and `qubo` (the removal cost with its cross
terms under `deploy.objective`, solved by `deploy.<kind>.solver`: QAOA on a layer's heads, swap_tabu on its
neurons by default). Each selection's energy is reported with its gap to the best known (exact at <= 24
variables), and the QUBO's low-energy samples are scored on validation documents: does lower energy mean a
better model (Spearman)?
Outputs: `paths.pruned/` (`deploy.apply`'s method at its sparsities), `reports/plots/prune_{heads,ffn}.json`.
Report: per kind, sparsity and method: quality, parameters, bytes, energy, solver time and quantum resources;
`decision.candidates`: the pruned teacher and distill's students, which `qlife.promote` registers and gates after
`dvc repro` (with the compression step's candidate).
Params: `deploy` (less `compress` and `serving`), `quality`, `train` (fine-tuning mode of the healing step).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from qlife.io import read_json, write_json
from qlife.ledger import measure
from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import Calibration, calibrate_all, prune_units, split_global
from qlife.models import architecture
from qlife.params import Params
from qlife.quality import majority_baseline
from qlife.stage import Report
from qlife.stage import main as stage_main
from qlife.teacher_ops import Workbench, load, quality_fields, save_model, weight_bytes

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


def candidate_fields(m: dict) -> dict:
    """What promote needs of a candidate's test figures."""
    keys = ("quality", "metric", "accuracy", "macro_f1", "teacher_agreement")
    return {k: m[k] for k in keys if k in m}


def student_candidates(params: Params) -> dict[str, dict]:
    """Distill's students on offer: artifacts, serving kind, test figures (from metrics/distill.json)."""
    path, paths, students = Path(params.paths.metrics) / "distill.json", params.paths, Path(params.paths.student)
    distilled = read_json(path).get("methods", {}) if path.exists() else {}
    static = students / "static"  # students on the static input: served without the teacher
    offers = (("student", students, "classical_student", "student", "torch-cpu"),
              ("vqc_student", students / "vqc", "vqc_student", "student", "statevector"),
              ("student_static", static, "classical_student_static", "static_student", "torch-cpu"),
              ("vqc_student_static", static / "vqc", "vqc_student_static", "static_student", "statevector"))
    out = {}
    for role, folder, method, kind, backend in offers:
        if (folder / "student.json").exists() and method in distilled:
            artifacts = ({"model": paths.teacher, "student": str(folder)} if kind == "student"
                         else {"static": str(static), "student": str(folder)})
            out[role] = {"kind": kind, "artifacts": artifacts, "backend": backend,
                         **candidate_fields(distilled[method])}
    return out


def headline(kinds: dict) -> dict:
    """Per kind at its first sparsity: the QUBO's quality and the best baseline's (not random)."""
    out = {}
    for kind, rep in kinds.items():
        s, row = next(iter(rep["sparsity"].items()))
        methods = row["methods"]
        if "qubo" in methods:
            out[f"{kind}{s}_qubo_{methods['qubo']['metric']}"] = methods["qubo"]["quality"]
        others = {m: r["quality"] for m, r in methods.items() if m not in ("qubo", "random")}
        if others:
            best = max(others, key=others.get)
            out[f"{kind}{s}_best_baseline"] = f"{best} {others[best]:.4f}"
    return out


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


def run(params: Params) -> Report:
    dp = params.deploy
    wb = load(params, "deploy")
    test, (_, train_y) = wb.split("test"), wb.split("train")
    teacher_q = {**wb.evaluate(wb.teacher, *test), "weight_bytes": wb.teacher_bytes()}
    kinds, applied, costs = {}, {}, {}
    with measure(params.ledger) as cost:
        cals = calibrate_all(wb.teacher, KINDS, *wb.calibration_batches(dp.calib_docs, dp.seed))
    costs["calibration"] = cost.as_dict()
    for kind in KINDS:
        with measure(params.ledger) as cost:
            kinds[kind], plot, applied[kind] = prune_kind(wb, kind, cals[kind], test)
            for row in kinds[kind]["sparsity"].values():
                res = row["methods"].get("qubo", {}).get("resources") or {}
                if res.get("hardware_equivalent") or res.get("executed_on", "cpu") != "cpu":
                    cost.add_quantum(res)  # QAOA circuits (simulated), D-Wave reads; not tabu / annealing on CPU
        costs[f"prune_{kind}"] = cost.as_dict()
        write_json(Path(params.paths.reports) / "plots" / f"prune_{kind}.json", plot)
    with measure(params.ledger) as cost:
        pruned_q = apply_pruning(wb, applied, test)
    costs["applied"] = cost.as_dict()
    majority = majority_baseline(train_y, test[1], wb.labels, params.quality)
    offered = {"pruned_teacher": {"kind": "classifier", "artifacts": {"model": params.paths.pruned},
                                  "backend": "torch-cpu", **candidate_fields(pruned_q)},
               **student_candidates(params)}
    metric = params.quality.name
    name = f"{dp.apply.method}_heads{dp.apply.heads:g}_ffn{dp.apply.ffn:g}"
    return {"summary": {f"teacher_{metric}": teacher_q["quality"], f"pruned_{metric}": pruned_q["quality"],
                        f"majority_{metric}": majority["quality"],
                        "param_ratio": pruned_q["parameters"] / teacher_q["parameters"],
                        **headline(kinds), "candidates": len(offered)},
            "methods": {"teacher": teacher_q, "pruned": {**pruned_q, "applied": name}, "majority_class": majority},
            "teacher": {**architecture(wb.teacher), "memory_estimate": wb.memory},
            "units": kinds,
            "decision": {"applied": name, "method": dp.apply.method, "heads_sparsity": dp.apply.heads,
                         "ffn_sparsity": dp.apply.ffn, "recovery_steps": dp.recovery_steps,
                         "metric": metric, "majority_baseline": majority["quality"], "candidates": offered,
                         "why": "candidates for `qlife.promote`: registered after dvc repro, gated there"},
            "cost": costs}


def main() -> None:
    stage_main("deploy", run)


if __name__ == "__main__":
    main()
