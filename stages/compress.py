"""Stage 6 — pruning, inference & deployment: the compression step (`dvc repro compress`).

Inputs: `paths.teacher/`, `paths.encoded/tokenized`.
Method: every compressor of `deploy.compress.methods` (qlife.methods.compressors: an MPO by TT-SVD, an MPO after
a disentangler circuit, a truncated SVD, FFN pruning to the same parameter count) at each ratio of dense to
compressed parameters on the same target layers, each with the same layer-wise fit on calibration tokens and the
same recovery fine-tune; scored on the test split before and after recovery. The disentanglers are exported as
OpenQASM 3 and checked against the torch layer by qiskit's Statevector.
Outputs: `paths.compressed/` (`deploy.compress.apply`'s method and ratio, with `circuits/*.qasm`; the better of
before and after its recovery), `reports/plots/compress.json` (quality against parameters).
Report: per ratio and method: quality, parameters, bytes, fit error, circuit resources; `decision.candidates`:
the compressed teacher, for `qlife.promote`.
Params: `deploy.compress`; for its `prune` method `deploy.apply.method`'s selector (`deploy.ffn`,
`deploy.objective`, `deploy.penalty_scale`, `deploy.calib_docs`, `deploy.seed`); `quality`; `train` (healing).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np

from qlife.classifiers import load_teacher
from qlife.io import atomic_path, write_json
from qlife.ledger import measure
from qlife.methods import tensornet as tn
from qlife.methods.compressors import COMPRESSORS, Budget
from qlife.methods.finetune import predict_ids
from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import calibrate_all, count_parameters, linear_targets
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main
from qlife.teacher_ops import Workbench, load, quality_fields, save_model, weight_bytes


def cannot_compress(teacher, targets: list[str]) -> str | None:
    """Why the tensor-network compressor cannot take these layers of the teacher (None: it can)."""
    try:
        linear_targets(teacher, targets)
    except ValueError as err:
        return str(err)
    return None


def make_budget(wb: Workbench, calibration_split: str = "train") -> Budget:
    """The target layers, their calibration inputs and fit settings (the ratio set per call: `Budget.at`); the
    FFN pruning planner when `prune` is among the methods (the pruning step's calibration, same docs and seed)."""
    dp, cp = wb.params.deploy, wb.params.deploy.compress
    names = linear_targets(wb.teacher, cp.targets)
    dense = {n: wb.teacher.get_submodule(n) for n in names}
    batches, ys = wb.calibration_batches(dp.calib_docs, dp.seed, calibration_split)
    plan = None
    if "prune" in cp.methods:
        plan = KindPlan(wb.teacher, "ffn", calibrate_all(wb.teacher, ("ffn",), batches, ys)["ffn"], dp,
                        wb.params.orchestration)
    return Budget(ratio=1.0, names=names, dense=dense, inputs=tn.capture_inputs(wb.teacher, names, batches,
                                                                                 cp.calib_tokens),
                  dense_parameters=sum(tn.dense_parameters(m.out_features, m.in_features, m.bias is not None)
                                       for m in dense.values()),
                  teacher_parameters=count_parameters(wb.teacher), sites=cp.sites,
                  disentangler_layers=cp.disentangler_layers, fit_steps=cp.fit_steps,
                  fit_learning_rate=cp.fit_learning_rate, disentangler_learning_rate=cp.disentangler_learning_rate,
                  seed=dp.seed, ffn_plan=plan, ffn_method=dp.apply.method)


def compress_one(wb: Workbench, budget: Budget, method: str, test) -> tuple[dict, object]:
    """One compressor at one budget: fitted, scored, healed, scored again; (report row, model)."""
    cp = wb.params.deploy.compress
    t0 = time.perf_counter()
    model, row = COMPRESSORS[method](wb.teacher, budget)
    row["before_recovery"] = quality_fields(wb.evaluate(model, *test))
    if cp.recovery_steps > 0:  # a short healing can collapse a layer on imbalanced data: keep the better of
        val = wb.split("val", wb.params.deploy.energy_val_docs, wb.params.deploy.seed)  # the two on validation
        state, val_before = copy.deepcopy(model.state_dict()), wb.evaluate(model, *val)["quality"]
        wb.recover(model, cp.recovery_steps, cp.recovery_learning_rate, wb.params.deploy.seed)
        row["after_recovery"] = quality_fields(wb.evaluate(model, *test))
        val_after = wb.evaluate(model, *val)["quality"]
        row["kept"] = {"recovery": val_after >= val_before, "val_before": val_before, "val_after": val_after}
        if val_after < val_before:
            model.load_state_dict(state)
    row.update(row["after_recovery"] if row.get("kept", {}).get("recovery") else row["before_recovery"])
    row.update(compressed_layer_parameters=count_parameters(model) - (budget.teacher_parameters
                                                                      - budget.dense_parameters),
               weight_bytes=weight_bytes(model), wall_s=time.perf_counter() - t0)
    row["ratio_achieved"] = budget.dense_parameters / max(1, row["compressed_layer_parameters"])
    print(f"compress: x{budget.ratio:g} {method}: {row['metric']} {row['before_recovery']['quality']:.3f} "
          f"before recovery, {row['quality']:.3f} kept, {row['compressed_layer_parameters']:,} parameters "
          f"({row['wall_s']:.0f} s)", flush=True)
    return row, model


def compress_all(wb: Workbench, test, circuits: Path, calibration_split: str = "train"
                 ) -> tuple[dict, list[dict], object]:
    """Every method at every ratio on the same layers: report, plot rows, the applied model."""
    cp = wb.params.deploy.compress
    base = make_budget(wb, calibration_split)
    out: dict = {"targets": cp.targets, "layers": len(base.names), "dense_parameters": base.dense_parameters,
                 "calibration_tokens": base.calibration_tokens, "fit_steps": cp.fit_steps,
                 "recovery_steps": cp.recovery_steps, "ratios": {}}
    plot, applied = [], None
    for ratio in cp.ratios:
        budget, rows = base.at(ratio), {}
        for method in cp.methods:
            if method == "prune" and cp.targets != ["ffn"]:
                rows[method] = {"skipped": "prune matches FFN-only targets (compress.targets: [ffn])"}
                continue
            row, model = compress_one(wb, budget, method, test)
            is_applied = method == cp.apply.method and abs(ratio - cp.apply.ratio) < 1e-9
            if method == "mpo_disentangled":
                row["circuits"] = disentangler_circuits(model, circuits if is_applied else None)
            rows[method] = row
            plot.append({"method": method, "ratio": ratio, "parameters": row["parameters"],
                         "accuracy": row["accuracy"], "quality": row["quality"]})
            if is_applied:
                applied = model
        out["ratios"][f"{ratio:g}"] = {"methods": rows, "verdict": verdict(rows)}
    return out, plot, applied


def verdict(rows: dict) -> str:
    scored = {m: r["quality"] for m, r in rows.items() if "quality" in r}
    if not scored:
        return "nothing evaluated"
    best = max(scored, key=scored.get)
    text = f"best {best} ({scored[best]:.4f})"
    if "mpo_disentangled" in scored and "svd" in scored:
        d = scored["mpo_disentangled"] - scored["svd"]
        text += f"; MPO + disentanglers {'above' if d > 0 else 'not above'} SVD by {d:+.4f}"
    if "mpo_disentangled" in scored and "mpo" in scored:
        text += f"; disentanglers vs plain MPO {scored['mpo_disentangled'] - scored['mpo']:+.4f}"
    return text + " (one seed, test split: the bench has the spread)"


def disentangler_circuits(model, folder: Path | None) -> dict:
    """Each compressed layer's disentangler as OpenQASM 3 (written under `folder` when given), its resources,
    and the largest entry of |U_qasm - U_torch| with the exported text re-imported and simulated by qiskit's
    Statevector."""
    resources, worst = [], 0.0
    for name, layer in tn.compressed_layers(model).items():
        dis = getattr(layer, "disentangler", None)
        if dis is None:
            continue
        text, res = tn.export_disentangler(dis)
        worst = max(worst, tn.unitary_distance(tn.qasm_unitary(text), dis.qubit_unitary()))
        resources.append(res)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.qasm").write_text(text)
    if not resources:
        return {}
    return {"circuits": len(resources), "qubits": resources[0]["qubits"],
            "depth_max": max(r["depth"] for r in resources),
            "cx_total": sum(r["two_qubit_gates"] for r in resources),
            "blocks_per_circuit": resources[0]["two_qubit_blocks"],
            "blocks_across_bonds": resources[0]["blocks_across_bonds"],
            "angles_total": sum(r["parameters"] for r in resources),
            "statevector_max_abs_diff": worst}


def save_compressed(wb: Workbench, model, circuits: Path, ids) -> dict:
    """Save the compressed model (with its disentangler circuits) and reload it through load_teacher: the
    largest logit difference on test documents must stay under 1e-5."""
    target = wb.params.paths.compressed
    nbytes = save_model(model, wb.teacher_dir, target, circuits)
    before, _ = predict_ids(model, ids, wb.max_length, wb.pad_id)
    after, _ = predict_ids(load_teacher(target), ids, wb.max_length, wb.pad_id)
    diff = float(np.abs(before - after).max()) if len(ids) else 0.0
    if diff > 1e-5:
        raise RuntimeError(f"{target}: the reloaded compressed model's logits differ by {diff:.2e} (> 1e-5)")
    return {"weight_bytes": nbytes, "reload_max_abs_logit_diff": diff, "reload_docs": len(ids),
            "circuit_files": len(list((Path(target) / "circuits").glob("*.qasm")))}


def skipped(params: Params, why: str) -> Report:
    """No compressed model: its folder holds only the reason (DVC's declared output exists), nothing is offered."""
    with atomic_path(params.paths.compressed, is_dir=True) as tmp:
        (tmp / "SKIPPED").write_text(why + "\n")
    return {"summary": {"compressed": "skipped"}, "methods": {}, "compression": {"skipped": why},
            "decision": {"candidates": {}, "why": why}}


def run(params: Params) -> Report:
    cp = params.deploy.compress
    if not cp.enabled:
        return skipped(params, "deploy.compress.enabled is false")
    wb = load(params, "compress")
    unsupported = cannot_compress(wb.teacher, cp.targets)
    if unsupported:  # a layout the compressor cannot replace (GPT-2's Conv1D): said in the report, not fatal
        return skipped(params, unsupported)
    test = wb.split("test")
    teacher_parameters = count_parameters(wb.teacher)
    with measure(params.ledger) as cost, tempfile.TemporaryDirectory() as scratch:
        compression, plot, model = compress_all(wb, test, Path(scratch) / "circuits")
        write_json(Path(params.paths.reports) / "plots" / "compress.json", plot)
        row = compression["ratios"][f"{cp.apply.ratio:g}"]["methods"][cp.apply.method]
        applied = {**{k: row[k] for k in ("quality", "metric", "accuracy", "macro_f1", "parameters")},
                   **save_compressed(wb, model, Path(scratch) / "circuits", test[0][:64]),
                   "applied": f"{cp.apply.method}_x{cp.apply.ratio:g}"}
    metric = params.quality.name
    return {"summary": {f"compress_x{r}_{m}_{metric}": row["quality"]
                        for r, rep in compression["ratios"].items()
                        for m, row in rep["methods"].items() if "quality" in row}
            | {"compressed_param_ratio": applied["parameters"] / teacher_parameters},
            "methods": {"compressed": applied},
            "compression": compression,
            "decision": {"applied": applied["applied"], "candidates": {"compressed_teacher": {
                "kind": "classifier", "artifacts": {"model": params.paths.compressed}, "backend": "torch-cpu",
                **{k: applied[k] for k in ("quality", "metric", "accuracy", "macro_f1")}}}},
            "cost": {"compress": cost.as_dict()}}


def main() -> None:
    stage_main("compress", run)


if __name__ == "__main__":
    main()
