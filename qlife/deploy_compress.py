"""Stage 6's compression workflow on the teacher (`stages/compress.py` runs it; bench/compress.py too): every
compressor of qlife.methods.compressors at every ratio on the same target layers, with the same layer-wise fit and
healing fine-tune (the better of before / after it kept, judged on validation), the disentangler circuits
exported as OpenQASM 3 and checked by qiskit's Statevector, and the applied model saved and reloaded.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from qlife.io import current
from qlife.loading import load_saved
from qlife.methods import tensornet as tn
from qlife.methods.compressors import COMPRESSORS, Budget
from qlife.methods.finetune import predict_ids
from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import calibrate_all, count_parameters, linear_targets
from qlife.teacher_ops import Workbench, quality_fields, save_model, weight_bytes


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
    """Save the compressed model (with its disentangler circuits) and reload it through load_saved: the
    largest logit difference on test documents must stay under 1e-5."""
    target = wb.params.paths.compressed
    nbytes = save_model(model, wb.teacher_dir, target, circuits)
    before, _ = predict_ids(model, ids, wb.max_length, wb.pad_id)
    after, _ = predict_ids(load_saved(target).model, ids, wb.max_length, wb.pad_id)
    diff = float(np.abs(before - after).max()) if len(ids) else 0.0
    if diff > 1e-5:
        raise RuntimeError(f"{target}: the reloaded compressed model's logits differ by {diff:.2e} (> 1e-5)")
    return {"weight_bytes": nbytes, "reload_max_abs_logit_diff": diff, "reload_docs": len(ids),
            "circuit_files": len(list((current(target) / "circuits").glob("*.qasm")))}
