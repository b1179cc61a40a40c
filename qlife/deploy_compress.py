"""Stage 6's compression workflow on the teacher (`stages/compress.py` runs it; bench/compress.py too): every
compressor of qlife.methods.compressors at every ratio on the same target layers, with the same layer-wise fit and
healing fine-tune (the better of before / after it kept, judged on validation), the disentangler circuits
exported as OpenQASM 3 and checked by qiskit's Statevector, and the applied model saved and reloaded. Per ratio,
a verdict (qlife.verdict): MPO + disentanglers against plain MPO and the best of SVD and FFN pruning, paired over
the same test documents in the quality metric.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from qlife.io import current
from qlife.ledger import measure, verdict_cost
from qlife.loading import load_saved
from qlife.methods import tensornet as tn
from qlife.methods.compressors import COMPRESSORS, Budget
from qlife.methods.finetune import predict_ids
from qlife.methods.prune_plan import KindPlan
from qlife.methods.pruning import calibrate_all, count_parameters, linear_targets
from qlife.quality import document_verdict
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


def compress_one(wb: Workbench, budget: Budget, method: str, test) -> tuple[dict, object, np.ndarray]:
    """One compressor at one budget: fitted, scored, healed (kept only when validation does not get worse), scored
    again; (report row, model, the kept model's test predictions)."""
    cp = wb.params.deploy.compress
    t0 = time.perf_counter()
    with measure(wb.params.ledger) as cost:
        model, row = COMPRESSORS[method](wb.teacher, budget)
        before = wb.scored(model, *test)
        healing, pred = wb.recover_kept(model, cp.recovery_steps, cp.recovery_learning_rate, test, before)
    row["before_recovery"] = quality_fields(before[0])
    row.update(healing)
    row.update(row["after_recovery"] if row.get("kept", {}).get("recovery") else row["before_recovery"])
    row.update(compressed_layer_parameters=count_parameters(model) - (budget.teacher_parameters
                                                                      - budget.dense_parameters),
               weight_bytes=weight_bytes(model), wall_s=time.perf_counter() - t0, cost=cost.as_dict())
    row["ratio_achieved"] = budget.dense_parameters / max(1, row["compressed_layer_parameters"])
    print(f"compress: x{budget.ratio:g} {method}: {row['metric']} {row['before_recovery']['quality']:.3f} "
          f"before recovery, {row['quality']:.3f} kept, {row['compressed_layer_parameters']:,} parameters "
          f"({row['wall_s']:.0f} s)", flush=True)
    return row, model, pred


def compress_all(wb: Workbench, test, circuits: Path, calibration_split: str = "train"
                 ) -> tuple[dict, list[dict], object]:
    """Every method at every ratio on the same layers: report (each ratio with its verdict, the applied ratio's
    as `verdict`), plot rows, the applied model."""
    cp = wb.params.deploy.compress
    base = make_budget(wb, calibration_split)
    out: dict = {"targets": cp.targets, "layers": len(base.names), "dense_parameters": base.dense_parameters,
                 "calibration_tokens": base.calibration_tokens, "fit_steps": cp.fit_steps,
                 "recovery_steps": cp.recovery_steps, "ratios": {}}
    plot, applied = [], None
    for ratio in cp.ratios:
        budget, rows, preds = base.at(ratio), {}, {}
        for method in cp.methods:
            if method == "prune" and cp.targets != ["ffn"]:
                rows[method] = {"skipped": "prune matches FFN-only targets (compress.targets: [ffn])"}
                continue
            row, model, preds[method] = compress_one(wb, budget, method, test)
            is_applied = method == cp.apply.method and abs(ratio - cp.apply.ratio) < 1e-9
            if method == "mpo_disentangled":
                row["circuits"] = disentangler_circuits(model, circuits if is_applied else None)
            rows[method] = row
            plot.append({"method": method, "ratio": ratio, "parameters": row["parameters"],
                         "metric": row["metric"], "quality": row["quality"], "accuracy": row["accuracy"]})
            if is_applied:
                applied = model
        out["ratios"][f"{ratio:g}"] = {"methods": rows, "verdict": verdict(wb, rows, preds, test[1], ratio)}
    out["verdict"] = out["ratios"].get(f"{cp.apply.ratio:g}", {}).get("verdict")
    return out, plot, applied


QUANTUM, TWIN, CLASSICAL = "mpo_disentangled", "mpo", ("svd", "prune")


def verdict(wb: Workbench, rows: dict, preds: dict[str, np.ndarray], y: np.ndarray, ratio: float) -> dict | None:
    """MPO + disentanglers against plain MPO (its twin: the same cores without the circuit) and the best of SVD and
    FFN pruning, at equal parameters (this ratio), in the quality metric, paired over the test documents: each
    method's kept model (before or after healing, judged on validation). None without both MPO methods."""
    if QUANTUM not in preds or TWIN not in preds:
        return None
    classical = [m for m in (TWIN, *CLASSICAL) if m in preds]
    note = (f"x{ratio:g} dense/compressed parameters of the compressed layers, the same layer-wise fit "
            f"and healing for each; the disentanglers run as orthogonal matrices in torch (no QPU); cost: fit, "
            f"healing and scoring of each method")
    return document_verdict(y, {m: preds[m] for m in (QUANTUM, *classical)}, wb.labels, wb.params.quality,
                            QUANTUM, TWIN, classical=classical, seed=wb.params.deploy.seed, note=note,
                            cost={m: verdict_cost(rows[m]["cost"], m == QUANTUM) for m in (QUANTUM, *classical)})


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
