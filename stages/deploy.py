"""Stage 6 — pruning, inference & deployment: the pruning step (`dvc repro deploy`).

Stage 6 is three DVC steps, each rerun only when its own params and inputs change: this one (pruning),
`stages/compress.py` (tensor-network compression, `deploy.compress`) and `stages/serving.py` (serving cost of
every candidate, `deploy.serving`).

Inputs: `paths.teacher/`, `paths.encoded/tokenized`, `paths.student/`, `paths.reports/distill.json`.
Method: structured pruning of the fine-tuned teacher, attention heads and FFN neurons physically removed, and
with `deploy.blocks.enabled` whole transformer blocks (qlife.methods.blocks: the QUBO of each block's and each
pair's measured removal cost, against Block Influence, magnitude, its diagonal twin and random). One
calibration pass per kind over `deploy.calib_docs` training documents (qlife.methods.prune_plan.calibrate_kinds); the
selectors of qlife.methods.prune_plan at equal sparsity: magnitude, activation, structured Wanda, random,
`diagonal` (the QUBO's classical twin: each unit's own removal cost) and `qubo` (the removal cost with its cross
terms under `deploy.objective`, solved by `deploy.<kind>.solver`: QAOA on a layer's heads, swap_tabu on its
neurons by default). Each selection's energy is reported with its gap to the best known (exact at <= 24
variables), and the QUBO's low-energy samples are scored on validation documents: does lower energy mean a
better model (Spearman)?
Outputs: `paths.pruned/` (`deploy.apply`'s method at its sparsities), `reports/plots/prune_{heads,ffn,blocks}.json`
(blocks: an empty list when not enabled).
Report: per kind, sparsity and method: quality, parameters, bytes, energy, solver time and quantum resources;
per kind its verdict (qlife.verdict: the QUBO against its diagonal twin and the best of magnitude / activation /
wanda / random, paired over the test documents in the quality metric) and `verdict`, the lead kind's
(`lead_verdict`); with `deploy.recovery_steps`, a healing that lowers validation quality is rolled back (said in
`decision.recovery`); `decision.candidates`: the pruned teacher and distill's students, which `qlife.promote`
registers and gates after `dvc repro` (with the compression step's candidate).
Params: `deploy` (less `compress` and `serving`), `quality`, `train` (fine-tuning mode of the healing step).
"""

from __future__ import annotations

from pathlib import Path

from qlife.deploy_prune import KINDS, active_kinds, apply_pruning, prune_kind
from qlife.io import read_json, write_json
from qlife.ledger import measure
from qlife.methods.prune_plan import calibrate_kinds
from qlife.models import architecture
from qlife.params import Params
from qlife.quality import majority_baseline
from qlife.stage import Report, report_path
from qlife.stage import main as stage_main
from qlife.teacher_ops import load


def candidate_fields(m: dict) -> dict:
    """What promote needs of a candidate's test figures."""
    keys = ("quality", "metric", "accuracy", "macro_f1", "teacher_agreement")
    return {k: m[k] for k in keys if k in m}


def student_candidates(params: Params) -> dict[str, dict]:
    """Distill's students on offer: artifacts, serving kind, test figures (from reports/distill.json)."""
    path, paths, students = report_path(params, "distill"), params.paths, Path(params.paths.student)
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


def headline(kinds: dict, metric: str) -> dict:
    """Per kind at its verdict's sparsity (else its first): the QUBO's quality, its diagonal twin's and the best
    classical selector's (random included, as in the verdict), in the quality metric."""
    out = {}
    for kind, rep in kinds.items():
        s = rep.get("verdict_sparsity") or next(iter(rep["sparsity"]))
        methods = rep["sparsity"][s]["methods"]
        for name in ("qubo", "diagonal"):
            if name in methods:
                out[f"{kind}{s}_{name}_{metric}"] = methods[name]["quality"]
        others = {m: r["quality"] for m, r in methods.items() if m not in ("qubo", "diagonal")}
        if others:
            best = max(others, key=others.get)
            out[f"{kind}{s}_best_classical"] = best
            out[f"{kind}{s}_best_classical_{metric}"] = others[best]
    return out


def lead_verdict(kinds: dict, params: Params) -> dict | None:
    """The pruning step's verdict: per kind, since each kind is pruned and scored on its own (the applied
    combination is scored for `deploy.apply.method` only: every selector's would cost a test pass each). It leads
    with the applied kind whose QUBO runs on a quantum solver (QAOA, D-Wave), else the first applied kind; the
    other kind's verdict is named in its note and kept under `units.<kind>.verdict`."""
    dp = params.deploy
    have = [k for k in KINDS if (kinds.get(k) or {}).get("verdict")]
    if not have:
        return None
    applied = [k for k in have if getattr(dp.apply, k) > 0] or have
    quantum = [k for k in applied if getattr(dp, k).solver.kind in ("qaoa", "dwave")]
    lead = (quantum or applied)[0]
    v = dict(kinds[lead]["verdict"])
    others = [f"{k}: qubo {kinds[k]['verdict']['quantum']['value']:.3f} vs diagonal "
              f"{kinds[k]['verdict']['twin']['value']:.3f}, {kinds[k]['verdict']['verdict']} (units.{k}.verdict)"
              for k in have if k != lead]
    v["note"] = "; ".join([f"per kind, this row {lead}: {v['note']}", *others])
    return v


def run(params: Params) -> Report:
    dp = params.deploy
    wb = load(params, "deploy")
    test, (_, train_y) = wb.split("test"), wb.split("train")
    teacher_q = {**wb.evaluate(wb.teacher, *test), "weight_bytes": wb.teacher_bytes()}
    kinds, applied, costs, run_kinds = {}, {}, {}, active_kinds(dp)
    with measure(params.ledger) as cost:
        cals = calibrate_kinds(wb.teacher, run_kinds, *wb.calibration_batches(dp.calib_docs, dp.seed))
    costs["calibration"] = cost.as_dict()
    for kind in (k for k in KINDS if k not in run_kinds):  # a declared output: written, empty
        write_json(Path(params.paths.reports) / "plots" / f"prune_{kind}.json", [])
    for kind in run_kinds:
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
    name = (f"{dp.apply.method}_heads{dp.apply.heads:g}_ffn{dp.apply.ffn:g}"
            + (f"_blocks{dp.apply.blocks:g}" if dp.apply.blocks > 0 else ""))
    return {"summary": {f"teacher_{metric}": teacher_q["quality"], f"pruned_{metric}": pruned_q["quality"],
                        f"majority_{metric}": majority["quality"],
                        "param_ratio": pruned_q["parameters"] / teacher_q["parameters"],
                        **headline(kinds, metric), "candidates": len(offered)},
            "methods": {"teacher": teacher_q, "pruned": {**pruned_q, "applied": name}, "majority_class": majority},
            "verdict": lead_verdict(kinds, params),
            "teacher": {**architecture(wb.teacher), "memory_estimate": wb.memory},
            "units": kinds,
            "decision": {"applied": name, "method": dp.apply.method, "heads_sparsity": dp.apply.heads,
                         "ffn_sparsity": dp.apply.ffn, "blocks_sparsity": dp.apply.blocks,
                         "recovery_steps": dp.recovery_steps,
                         "recovery": pruned_q.get("recovery", {}).get("kept"),
                         "metric": metric, "majority_baseline": majority["quality"], "candidates": offered,
                         "why": "candidates for `qlife.promote`: registered after dvc repro, gated there"},
            "cost": costs}


def main() -> None:
    stage_main("deploy", run)


if __name__ == "__main__":
    main()
