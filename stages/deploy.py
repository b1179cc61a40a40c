"""Stage 6 — pruning, inference & deployment.

Inputs: `paths.teacher/`, `paths.encoded/tokenized`, `paths.student/`, `paths.metrics/distill.json`.
Method: structured pruning of the fine-tuned teacher, two unit kinds — attention heads and feed-forward
neurons — physically removed (smaller matrices, not masks). One calibration pass per kind over
`deploy.calib_docs` training documents records each unit's output norms and, through a gate on every unit,
each example's gradient dL_n/dm (qlife.methods.pruning.calibrate). Selectors at equal sparsity
(qlife.methods.selection): magnitude, activation (today's top-k), structured Wanda, random, `diagonal` (the
QUBO's classical twin: each unit's own removal cost) and `qubo`: the removal cost with its cross terms
(`deploy.objective`: reconstruction — the exact relative squared error of each layer's output, z^T Q z with Q
the units' output Gram matrix over the calibration tokens; fisher — a second-order Taylor model of the loss
with the empirical Fisher), solved by `deploy.<kind>.solver`: QAOA on a layer's 12 heads by default (exact,
simulated / path-integral annealing, tabu, D-Wave by name: these see dimod's exactly-k penalty), and on a
layer's 1,536 neurons swap_tabu, a classical tabu search that keeps exactly k (qlife.quantum.swap_tabu).
Every selection's QUBO energy (its removal cost) is reported with its gap to the best known (exact at <= 24
variables), and the QUBO's distinct low-energy samples are scored on validation documents: does a lower energy
mean a better model (Spearman)?
Outputs: `paths.pruned/` (safetensors + tokenizer: `deploy.apply`'s method at its sparsities),
`reports/plots/prune_heads.json`, `prune_ffn.json` (accuracy against sparsity per method: DVC plots). No
registry here: the report's `decision.candidates` and the majority-class baseline are what `qlife.promote`
registers and gates after `dvc repro`.
Params: `deploy:`, `quality:`. Report: per kind, sparsity and method: quality, parameters, bytes, latency,
energy, solver time and quantum resources; the saved model against the teacher.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qlife.classifiers import load_teacher
from qlife.io import atomic_path, read_json, read_jsonl, write_json
from qlife.ledger import measure
from qlife.methods.finetune import TrainConfig, collate, finetune, predict_ids
from qlife.methods.pruning import (
    Calibration,
    calibrate_all,
    count_parameters,
    global_scores,
    kept_per_layer,
    layer_scores,
    linear_targets,
    method_importance,
    prune_units,
    split_global,
    unit_counts,
)
from qlife.methods.selection import (
    DiagonalSelector,
    QuboSelector,
    RandomSelector,
    TopKSelector,
    UnitScores,
)
from qlife.models import architecture, check_memory, finetune_mode, finetune_options, load_tokenizer
from qlife.parallel import pmap
from qlife.params import ExactSampler, Params
from qlife.quality import evaluate as quality_eval
from qlife.quality import majority_baseline
from qlife.stage import Report
from qlife.stage import main as stage_main

KINDS = ("heads", "ffn")
EXACT_MAX = 24  # variables up to which the exact optimum is the reference energy


class Data:
    """Token ids and labels of the splits deploy uses, with the teacher's max_length and pad id."""

    def __init__(self, ds, max_length: int, pad_id: int, labels: list[str]):
        self.ds, self.max_length, self.pad_id, self.labels = ds, max_length, pad_id, labels

    def split(self, name: str, n: int | None = None, seed: int = 0) -> tuple[list[list[int]], np.ndarray]:
        ids, y = self.ds[name]["input_ids"], np.array(self.ds[name]["label"])
        if n is None or n >= len(ids):
            return ids, y
        idx = np.sort(np.random.default_rng(seed).permutation(len(ids))[:n])
        return [ids[i] for i in idx], y[idx]


def evaluate(model, ids: list[list[int]], y: np.ndarray, max_length: int, pad_id: int, labels: list[str],
             params: Params) -> dict:
    t0 = time.perf_counter()
    logits, _ = predict_ids(model, ids, max_length, pad_id)
    ms = (time.perf_counter() - t0) * 1000 / max(1, len(ids))
    return {**quality_eval(y, logits.argmax(1), labels, params.quality), "ms_per_doc": ms,
            "parameters": count_parameters(model)}


def calibration_batches(ids: list[list[int]], y: np.ndarray, n: int, seed: int, max_length: int, pad_id: int):
    import torch

    order = np.random.default_rng(seed).permutation(len(ids))[:n]
    chunks = [order[j:j + 32] for j in range(0, len(order), 32)]
    return ([collate([ids[i] for i in c], max_length, pad_id) for c in chunks],
            [torch.as_tensor(y[c], dtype=torch.long) for c in chunks])


def make_selector(method: str, solver: Any, param: str, params: Params):
    if method == "qubo":
        return QuboSelector(solver, param, params.deploy.penalty_scale)
    if method == "random":
        return RandomSelector(params.deploy.seed)
    if method == "diagonal":
        return DiagonalSelector()
    return TopKSelector()


@dataclass(frozen=True)
class LayerSolve:
    """One layer's keep-k-of-n QUBO, picklable for a worker: (scores, k) -> (keep, the selector's QuboSelection).
    Each solve is seeded by its solver spec alone, so the layers do not depend on the order they run in."""

    selector: QuboSelector

    def __call__(self, problem: tuple[UnitScores, int]) -> tuple[np.ndarray, Any]:
        keep = self.selector.select(*problem)
        return keep, self.selector.last


class KindPlan:
    """Selections of one unit kind on the teacher: per method and sparsity, the per-layer keeps, the energy
    under the loss model of the scope, and the QUBO's solver result."""

    def __init__(self, teacher, kind: str, cal: Calibration, params: Params):
        self.kind, self.cal, self.params = kind, cal, params
        self.units = params.deploy.heads if kind == "heads" else params.deploy.ffn
        self.counts = unit_counts(teacher, kind)
        objective = params.deploy.objective
        self.model_scores = layer_scores(cal, None, objective)  # the removal model per layer (its diagonal: importance)
        own = [s.importance for s in self.model_scores]  # what diagonal, random and qubo rank ties / repairs by
        self.importance = {m: method_importance(teacher, kind, m, cal, objective)
                           if m in ("magnitude", "activation", "wanda") else own for m in params.deploy.methods}
        self.global_model = (global_scores(cal, own, objective)
                             if self.units.scope == "global" else None)

    def k_of(self, sparsity: float) -> list[int] | int:
        if self.units.scope == "global":
            total = sum(self.counts)
            return max(len(self.counts), total - round(sparsity * total))
        return [kept_per_layer(n, sparsity) for n in self.counts]

    def energy(self, keep: list[np.ndarray]) -> float:
        if self.global_model is not None:
            offsets = np.concatenate([[0], np.cumsum(self.counts)])
            return self.global_model.loss_increase(np.concatenate([k + offsets[i] for i, k in enumerate(keep)]))
        return float(sum(s.loss_increase(k) for s, k in zip(self.model_scores, keep)))

    def select(self, method: str, sparsity: float) -> tuple[list[np.ndarray], dict]:
        param = f"deploy.{self.kind}.solver"
        sel = make_selector(method, self.units.solver, param, self.params)
        info: dict = {}
        if self.global_model is not None:
            scores = UnitScores(np.concatenate(self.importance[method]), self.global_model.gradient,
                                self.global_model.curvature)
            keep, swaps = split_global(sel.select(scores, self.k_of(sparsity)), self.counts, scores)
            info["empty_layer_swaps"] = swaps
            results = [sel.last] if method == "qubo" else []
        else:
            problems = [(UnitScores(self.importance[method][i], m.gradient, m.curvature), k)
                        for i, (m, k) in enumerate(zip(self.model_scores, self.k_of(sparsity)))]
            if method == "qubo":  # one independent QUBO per layer: qlife.parallel (serial unless orchestration says)
                picked = pmap(LayerSolve(sel), problems, self.params.orchestration, f"deploy {self.kind} qubo layers")
                keep, results = [k for k, _ in picked], [r for _, r in picked]
            else:
                keep, results = [sel.select(s, k) for s, k in problems], []
        if results:
            info.update(solver=self.units.solver.kind, solver_wall_s=float(sum(r.wall_s for r in results)),
                        raw_feasible=all(r.raw_feasible for r in results),
                        repaired_flips=int(sum(r.repaired_flips for r in results)), problems=len(results),
                        variables=sum(self.counts) if self.global_model is not None else max(self.counts))
            info["resources"] = _sum_resources([r.resources for r in results])
            info["_samples"] = [r.samples for r in results]
        return keep, info

    def best_known(self, sparsity: float, energies: list[float]) -> tuple[float, str]:
        """The lowest energy known at this sparsity: exact per problem at <= EXACT_MAX variables, else the best
        of the evaluated selections."""
        n = sum(self.counts) if self.global_model is not None else max(self.counts)
        if n <= EXACT_MAX:
            exact = QuboSelector(ExactSampler(), f"deploy.{self.kind}.exact", self.params.deploy.penalty_scale)
            if self.global_model is not None:
                k = self.k_of(sparsity)
                exact.select(self.global_model, k)
                return exact.last.energy, "exact"
            total = 0.0
            for s, k in zip(self.model_scores, self.k_of(sparsity)):
                exact.select(s, k)
                total += exact.last.energy
            return min(total, *energies), "exact"
        return min(energies), "best_of_methods"


def _sum_resources(items: list) -> dict:
    items = [r for r in items if r is not None]
    if not items:
        return {}
    total = items[0]
    for r in items[1:]:
        total = total + r
    return total.to_dict() if hasattr(total, "to_dict") else dict(total)


def recover(model, data: Data, params: Params, steps: int | None = None, learning_rate: float | None = None
            ) -> None:
    """The recovery fine-tune: deploy.recovery_steps at deploy.recovery_learning_rate unless given."""
    dp = params.deploy
    steps = dp.recovery_steps if steps is None else steps
    if steps <= 0:
        return
    ids, y = data.split("train")
    cfg = TrainConfig(learning_rate=learning_rate or dp.recovery_learning_rate, epochs=1, max_steps=steps,
                      max_length=data.max_length, seed=dp.seed, class_weight=params.train.class_weight,
                      group_by_length=params.train.group_by_length,
                      **finetune_options(params.paths.teacher, params.train.finetune, params.train.lora.model_dump()))
    finetune(model, ids, y, cfg, data.pad_id, desc="recover")


def spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def energy_vs_accuracy(teacher, plan: KindPlan, samples: list[list], data: Data, params: Params) -> dict:
    """The QUBO's distinct feasible low-energy selections (rank r in every problem), each pruned and scored on
    validation documents: Spearman of energy against quality (negative: lower energy, better model)."""
    dp = params.deploy
    if not samples or dp.energy_samples < 2:
        return {"candidates": 0, "spearman": None}
    val_ids, val_y = data.split("val", dp.energy_val_docs, dp.seed)
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
        model = prune_units(copy.deepcopy(teacher), plan.kind, keep)
        q = evaluate(model, val_ids, val_y, data.max_length, data.pad_id, data.labels, params)
        rows.append({"rank": r, "energy": plan.energy(keep), "quality": q["quality"], "accuracy": q["accuracy"]})
    return {"candidates": len(rows), "val_docs": len(val_ids), "rows": rows,
            "spearman": spearman([r["energy"] for r in rows], [r["quality"] for r in rows])}


def prune_kind(teacher, kind: str, cal: Calibration, data: Data, params: Params, test) -> tuple[dict, dict, Any]:
    """Every method at every sparsity of one kind: report rows, the applied keep, the plot rows."""
    dp = params.deploy
    plan = KindPlan(teacher, kind, cal, params)
    test_ids, test_y = test
    out: dict = {"units_per_layer": plan.counts, "scope": plan.units.scope, "solver": plan.units.solver.kind,
                 "calibration_examples": cal.examples, "sparsity": {}}
    plot, applied_keep, applied_s = [], None, getattr(dp.apply, kind)
    for s in plan.units.sparsity:
        rows: dict = {}
        keeps = {}
        for method in dp.methods:
            t0 = time.perf_counter()
            keep, info = plan.select(method, s)
            select_s = time.perf_counter() - t0
            samples = info.pop("_samples", None)
            model = prune_units(copy.deepcopy(teacher), kind, keep)
            row = {"kept_per_layer": [len(k) for k in keep], "energy": plan.energy(keep), "select_s": select_s,
                   **info, **_quality(evaluate(model, test_ids, test_y, data.max_length, data.pad_id, data.labels,
                                               params)),
                   "weight_bytes": _weight_bytes(model)}
            if dp.recovery_steps > 0:
                recover(model, data, params)
                row["recovered"] = _quality(evaluate(model, test_ids, test_y, data.max_length, data.pad_id,
                                                     data.labels, params))
                row["recovered"]["steps"] = dp.recovery_steps
            if method == "qubo" and abs(s - applied_s) < 1e-9:
                row["energy_vs_accuracy"] = energy_vs_accuracy(teacher, plan, samples or [], data, params)
            rows[method] = row
            keeps[method] = keep
        best, how = plan.best_known(s, [r["energy"] for r in rows.values()])
        for r in rows.values():
            r["energy_gap"] = (r["energy"] - best) / max(abs(best), 1e-30)
        ranked = [m for m in rows if m != "random"]
        out["sparsity"][f"{s:g}"] = {"best_known_energy": best, "best_known": how, "methods": rows,
                                     "energy_vs_test_quality_spearman": spearman(
                                         [rows[m]["energy"] for m in ranked], [rows[m]["quality"] for m in ranked])}
        plot.append({"sparsity": s, **{m: rows[m]["accuracy"] for m in rows}})
        if abs(s - applied_s) < 1e-9:
            applied_keep = keeps[dp.apply.method]
    return out, {"plot": plot}, applied_keep


def ffn_prune_to(teacher, cal: Calibration, params: Params, budget_per_layer: float) -> tuple[Any, dict]:
    """The teacher with FFN neurons removed (deploy.apply.method's selector) until each layer's FFN holds at most
    `budget_per_layer` parameters: k x (a neuron's parameters) + (the down projection's bias) <= budget."""
    from qlife.methods.pruning import ffn_neuron_cost

    per, fixed = ffn_neuron_cost(teacher)
    n = unit_counts(teacher, "ffn")[0]
    k = int(max(1, min(n, (budget_per_layer - fixed) // per)))
    plan = KindPlan(teacher, "ffn", cal, params)
    keep, info = plan.select(params.deploy.apply.method, (n - k) / n)
    info.pop("_samples", None)
    info = {k2: v for k2, v in info.items() if k2 in ("solver", "solver_wall_s", "raw_feasible")}
    return prune_units(copy.deepcopy(teacher), "ffn", keep), {"kept_per_layer": [len(x) for x in keep],
                                                                "selector": params.deploy.apply.method, **info}


def cannot_compress(teacher, targets: list[str]) -> str | None:
    """Why the tensor-network compressor cannot take these layers of the teacher (None: it can)."""
    try:
        linear_targets(teacher, targets)
    except ValueError as err:
        return str(err)
    return None


def compress_teacher(teacher, cal_ffn: Calibration, batches: list, data: Data, params: Params, test,
                     circuits_dir: Path) -> tuple[dict, list[dict], Any]:
    """Every compression method at every ratio on the same layers, the same layer-wise fit and recovery
    fine-tune: report rows, plot rows (accuracy against parameters), the applied model."""
    from qlife.methods import tensornet as tn

    cp = params.deploy.compress
    names = linear_targets(teacher, cp.targets)
    dense = {n: teacher.get_submodule(n) for n in names}
    dense_params = sum(tn.dense_parameters(m.out_features, m.in_features, m.bias is not None)
                       for m in dense.values())
    inputs = tn.capture_inputs(teacher, names, batches, cp.calib_tokens)
    teacher_total = count_parameters(teacher)
    out: dict = {"targets": cp.targets, "layers": len(names), "dense_parameters": dense_params,
                 "calibration_tokens": int(next(iter(inputs.values())).shape[0]), "fit_steps": cp.fit_steps,
                 "recovery_steps": cp.recovery_steps, "ratios": {}}
    plot, applied = [], None
    for ratio in cp.ratios:
        rows: dict = {}
        for method in cp.methods:
            t0 = time.perf_counter()
            row: dict = {}
            if method == "prune":
                if cp.targets != ["ffn"]:
                    rows[method] = {"skipped": "prune matches FFN-only targets (compress.targets: [ffn])"}
                    continue
                model, row["pruning"] = ffn_prune_to(teacher, cal_ffn, params,
                                                     dense_params / len(unit_counts(teacher, "ffn")) / ratio)
            else:
                model = copy.deepcopy(teacher)
                plans = tn.compress_model(model, method, ratio, names, cp.sites, cp.disentangler_layers)
                row["layout"] = _layout_summary(plans)
                row["fit"] = {k: v for k, v in tn.fit_layers(
                    model, dense, inputs, cp.fit_steps, cp.fit_learning_rate, cp.disentangler_learning_rate,
                    params.deploy.seed).items() if k != "layers"}
            row["before_recovery"] = _quality(evaluate(model, *test, data.max_length, data.pad_id, data.labels,
                                                       params))
            recover(model, data, params, cp.recovery_steps, cp.recovery_learning_rate)
            q = evaluate(model, *test, data.max_length, data.pad_id, data.labels, params)
            row.update(_quality(q))
            row.update(compressed_layer_parameters=count_parameters(model) - (teacher_total - dense_params),
                       weight_bytes=_weight_bytes(model), wall_s=time.perf_counter() - t0)
            row["ratio_achieved"] = dense_params / max(1, row["compressed_layer_parameters"])
            if method == "mpo_disentangled":
                row["circuits"] = disentangler_circuits(model, circuits_dir if _is_applied(cp, method, ratio)
                                                        else None)
            rows[method] = row
            print(f"deploy: compress x{ratio:g} {method}: accuracy {row['before_recovery']['accuracy']:.3f} -> "
                  f"{row['accuracy']:.3f} after recovery, {row['compressed_layer_parameters']:,} parameters "
                  f"({row['wall_s']:.0f} s)", flush=True)
            plot.append({"method": method, "ratio": ratio, "parameters": q["parameters"],
                         "accuracy": q["accuracy"], "quality": q["quality"]})
            if _is_applied(cp, method, ratio):
                applied = model
        out["ratios"][f"{ratio:g}"] = {"methods": rows, "verdict": _compress_verdict(rows)}
    return out, plot, applied


def _compress_headline(compression: dict, compressed_q: dict | None, teacher_q: dict) -> dict:
    """Per evaluated ratio and method: test accuracy at equal parameters; the saved model's parameter ratio."""
    out = {f"compress_x{r}_{m}_acc": row["accuracy"] for r, rep in compression.get("ratios", {}).items()
           for m, row in rep["methods"].items() if "accuracy" in row}
    if compressed_q:
        out["compressed_param_ratio"] = compressed_q["parameters"] / teacher_q["parameters"]
    return out


def _is_applied(cp, method: str, ratio: float) -> bool:
    return method == cp.apply.method and abs(ratio - cp.apply.ratio) < 1e-9


def _layout_summary(plans) -> dict:
    p = plans[0]
    return {"method": p.method, "rank": sorted({x.rank for x in plans}), "example": p.to_dict()}


def disentangler_circuits(model, folder: Path | None) -> dict:
    """Each compressed layer's disentangler as OpenQASM 3 (written under `folder` when given), its resources,
    and the largest entry of |U_qasm - U_torch| with the exported text re-imported and simulated by qiskit's
    Statevector."""
    from qlife.methods import tensornet as tn

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


def _compress_verdict(rows: dict) -> str:
    scored = {m: r["accuracy"] for m, r in rows.items() if "accuracy" in r}
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


def save_compressed(model, teacher_dir: Path, target: str | Path, circuits: Path, ids, data: Data) -> dict:
    """Save the compressed model (with its disentangler circuits) and reload it through load_teacher: the
    largest logit difference on test documents must stay under 1e-5."""
    weight_bytes = save_model(model, teacher_dir, target, circuits)
    before, _ = predict_ids(model, ids, data.max_length, data.pad_id)
    after, _ = predict_ids(load_teacher(target), ids, data.max_length, data.pad_id)
    diff = float(np.abs(before - after).max()) if len(ids) else 0.0
    if diff > 1e-5:
        raise RuntimeError(f"{target}: the reloaded compressed model's logits differ by {diff:.2e} (> 1e-5)")
    return {"weight_bytes": weight_bytes, "reload_max_abs_logit_diff": diff, "reload_docs": len(ids),
            "circuit_files": len(list((Path(target) / "circuits").glob("*.qasm")))}


def _quality(q: dict) -> dict:
    return {k: q[k] for k in ("quality", "metric", "accuracy", "macro_f1", "ms_per_doc", "parameters") if k in q}


def _weight_bytes(model) -> int:
    """Bytes of the model's weights (each tensor once: what its safetensors file holds, less the header)."""
    seen, total = set(), 0
    for t in model.state_dict().values():
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def save_model(model, source_dir: Path, target: str | Path, circuits: Path | None = None) -> int:
    """save_pretrained plus the tokenizer and qlife.json copied from the teacher (and a folder of circuits, when
    given, as `circuits/`); returns weight bytes."""
    with atomic_path(target, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        for f in source_dir.iterdir():
            if f.name.startswith(("tokenizer", "vocab", "special_tokens", "qlife")):
                shutil.copy(f, tmp / f.name)
        if circuits is not None and circuits.exists():
            shutil.copytree(circuits, tmp / "circuits")
    return sum(f.stat().st_size for f in Path(target).glob("*.safetensors"))


def distill_methods(params: Params) -> dict:
    path = Path(params.paths.metrics) / "distill.json"
    return read_json(path).get("methods", {}) if path.exists() else {}


def candidates(params: Params, pruned_q: dict, compressed_q: dict | None = None) -> dict[str, dict]:
    """The models this run offers for promotion: artifacts, serving kind, quality on the test split.

    `qlife.promote` (after `dvc repro`, never inside a DVC stage) registers them and applies the gate."""
    paths, students = params.paths, Path(params.paths.student)
    out = {"pruned_teacher": {"kind": "classifier", "artifacts": {"model": paths.pruned}, "backend": "torch-cpu",
                              **_candidate(pruned_q)}}
    if compressed_q is not None:
        out["compressed_teacher"] = {"kind": "classifier", "artifacts": {"model": paths.compressed},
                                     "backend": "torch-cpu", **_candidate(compressed_q)}
    distilled = distill_methods(params)
    if (students / "student.json").exists() and "classical_student" in distilled:
        out["student"] = {"kind": "student", "artifacts": {"model": paths.teacher, "student": paths.student},
                          "backend": "torch-cpu", **_candidate(distilled["classical_student"])}
    if (students / "vqc" / "student.json").exists() and "vqc_student" in distilled:
        out["vqc_student"] = {"kind": "student", "artifacts": {"model": paths.teacher,
                                                               "student": str(students / "vqc")},
                              "backend": "statevector", **_candidate(distilled["vqc_student"])}
    static = students / "static"  # students on the static input: served without the teacher
    for role, folder, method, backend in (("student_static", static, "classical_student_static", "torch-cpu"),
                                          ("vqc_student_static", static / "vqc", "vqc_student_static",
                                           "statevector")):
        if (folder / "student.json").exists() and method in distilled:
            out[role] = {"kind": "static_student", "artifacts": {"static": str(static), "student": str(folder)},
                         "backend": backend, **_candidate(distilled[method])}
    return out


def _candidate(m: dict) -> dict:
    out = {"quality": m["quality"], "metric": m["metric"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
    if "teacher_agreement" in m:
        out["teacher_agreement"] = m["teacher_agreement"]
    return out


def run(params: Params) -> Report:
    import datasets

    dp = params.deploy
    teacher_dir = Path(params.paths.teacher)
    meta = read_json(teacher_dir / "qlife.json")
    labels = meta["labels"]
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    tp = params.train  # the teacher, its candidates (one at a time) and their recovery fine-tune must fit
    memory = check_memory(str(teacher_dir), "deploy", finetune_mode(str(teacher_dir), tp.finetune), 32,
                          meta["max_length"], tp.max_memory_share, copies=2)
    pad_id = load_tokenizer(str(teacher_dir)).pad_token_id or 0
    data = Data(ds, meta["max_length"], pad_id, labels)
    teacher = load_teacher(teacher_dir)
    test = data.split("test")
    train_ids, train_y = data.split("train")
    batches, ys = calibration_batches(train_ids, train_y, dp.calib_docs, dp.seed, data.max_length, pad_id)
    teacher_q = evaluate(teacher, *test, data.max_length, pad_id, labels, params)
    teacher_q["weight_bytes"] = sum(f.stat().st_size for f in teacher_dir.glob("*.safetensors"))
    kinds, plots, applied, costs = {}, {}, {}, {}
    with measure(params.ledger) as cost:
        cals = calibrate_all(teacher, KINDS, batches, ys)
    costs["calibration"] = cost.as_dict()
    for kind in KINDS:
        with measure(params.ledger) as cost:
            kinds[kind], plots[kind], applied[kind] = prune_kind(teacher, kind, cals[kind], data, params, test)
            for row in kinds[kind]["sparsity"].values():
                res = row["methods"].get("qubo", {}).get("resources") or {}
                if res.get("hardware_equivalent") or res.get("executed_on", "cpu") != "cpu":
                    cost.add_quantum(res)  # QAOA circuits (simulated), D-Wave reads; not tabu / annealing on CPU
        costs[f"prune_{kind}"] = cost.as_dict()
        write_json(Path(params.paths.reports) / "plots" / f"prune_{kind}.json", plots[kind]["plot"])
    with measure(params.ledger) as cost:
        pruned = copy.deepcopy(teacher)
        for kind in KINDS:
            if getattr(dp.apply, kind) > 0:
                prune_units(pruned, kind, applied[kind])
        recover(pruned, data, params)
        pruned_q = evaluate(pruned, *test, data.max_length, pad_id, labels, params)
        pruned_q["weight_bytes"] = save_model(pruned, teacher_dir, params.paths.pruned)
    costs["applied"] = cost.as_dict()
    compression, compressed_q = {"skipped": "deploy.compress.enabled is false"}, None
    unsupported = dp.compress.enabled and cannot_compress(teacher, dp.compress.targets)
    if unsupported:  # a layout the compressor cannot replace (GPT-2's Conv1D): said in the report, not fatal
        compression = {"skipped": unsupported}
    elif dp.compress.enabled:
        with measure(params.ledger) as cost, tempfile.TemporaryDirectory() as scratch:
            compression, plot, model = compress_teacher(teacher, cals["ffn"], batches, data, params, test,
                                                        Path(scratch) / "circuits")
            write_json(Path(params.paths.reports) / "plots" / "compress.json", plot)
            applied_row = compression["ratios"][f"{dp.compress.apply.ratio:g}"]["methods"][dp.compress.apply.method]
            compressed_q = _quality(applied_row)  # its test figures after recovery, as compress_teacher scored it
            compressed_q.update(save_compressed(model, teacher_dir, params.paths.compressed,
                                                Path(scratch) / "circuits", test[0][:64], data))
            compressed_q["applied"] = f"{dp.compress.apply.method}_x{dp.compress.apply.ratio:g}"
        costs["compress"] = cost.as_dict()
    majority = majority_baseline(train_y, test[1], labels, params.quality)
    offered = candidates(params, pruned_q, compressed_q)
    metric = params.quality.name
    serving = serving_cost(params, offered, teacher_q, costs)
    name = f"{dp.apply.method}_heads{dp.apply.heads:g}_ffn{dp.apply.ffn:g}"
    return {"summary": {f"teacher_{metric}": teacher_q["quality"], f"pruned_{metric}": pruned_q["quality"],
                        f"majority_{metric}": majority["quality"],
                        "param_ratio": pruned_q["parameters"] / teacher_q["parameters"],
                        "speedup": teacher_q["ms_per_doc"] / max(pruned_q["ms_per_doc"], 1e-9),
                        **_headline(kinds), **_compress_headline(compression, compressed_q, teacher_q),
                        "candidates": len(offered), **_serving_headline(serving)},
            "methods": {"teacher": teacher_q, "pruned": {**pruned_q, "applied": name}, "majority_class": majority,
                        **({"compressed": compressed_q} if compressed_q else {})},
            "teacher": {**architecture(teacher), "memory_estimate": memory},
            "units": kinds,
            "compression": compression,
            "serving": serving,
            "decision": {"applied": name, "method": dp.apply.method, "heads_sparsity": dp.apply.heads,
                         "ffn_sparsity": dp.apply.ffn, "recovery_steps": dp.recovery_steps,
                         "metric": metric, "majority_baseline": majority["quality"], "candidates": offered,
                         "why": "candidates for `qlife.promote`: registered after dvc repro, gated there"},
            "cost": costs}


def serving_cost(params: Params, offered: dict, teacher_q: dict, costs: dict) -> dict:
    """Serving cost of the teacher and every candidate through the served pyfunc (qlife.servecost), and the
    Pareto front of quality against batch-1 milliseconds per request (reports/plots/serving_pareto.json)."""
    from qlife.servecost import measure_all

    sc = params.deploy.serving
    if not sc.enabled:
        return {"skipped": "deploy.serving.enabled is false"}
    test = Path(params.paths.curated) / "test.jsonl"
    texts = [r["text"] for r in read_jsonl(test)][: max(sc.requests, sc.batch)] if test.exists() else []
    if not texts:
        return {"skipped": f"no texts in {test}"}
    models = {"teacher": {"kind": "classifier", "artifacts": {"model": params.paths.teacher}},
              **{role: {"kind": c["kind"], "artifacts": c["artifacts"]} for role, c in offered.items()}}
    with measure(params.ledger) as cost:
        rows = measure_all(models, texts, params.ledger, sc.requests, sc.batch)
    costs["serving_cost"] = cost.as_dict()
    quality = {"teacher": teacher_q["quality"], **{r: c["quality"] for r, c in offered.items()}}
    for name, row in rows.items():
        row["quality"] = quality[name]
        row["accuracy"] = teacher_q["accuracy"] if name == "teacher" else offered[name]["accuracy"]
        if name in offered and "teacher_agreement" in offered[name]:
            row["teacher_agreement"] = offered[name]["teacher_agreement"]
    front = sorted(pareto_front({k: (r["quality"], r["ms_per_request_batch1"]) for k, r in rows.items()}))
    for name, row in rows.items():
        row["pareto"] = name in front
    points = [{"model": k, "ms_per_request": r["ms_per_request_batch1"], "quality": r["quality"],
               "pareto": r["pareto"]} for k, r in rows.items()]
    write_json(Path(params.paths.reports) / "plots" / "serving_pareto.json", points)
    worth = "; ".join(f"{k} ({params.quality.name} {rows[k]['quality']:.3f}, {rows[k]['ms_per_request_batch1']:.2f} ms "
                      f"per request, {rows[k]['speedup_vs_teacher']:.1f}x the teacher's speed)" for k in front)
    return {"models": rows, "metric": params.quality.name, "texts": len(texts), "pareto": front,
            "worth_deploying": f"on the front of quality against batch-1 latency (nothing else is both at least "
                               f"as good and as fast): {worth}"}


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of (quality, cost) points that no other point dominates (at least as good and as cheap, better in
    one of the two)."""
    return {name for name, (q, c) in points.items()
            if not any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for k, (q2, c2) in points.items() if k != name)}


def _serving_headline(serving: dict) -> dict:
    rows = serving.get("models", {})
    return {f"{name}_ms_per_request": r["ms_per_request_batch1"] for name, r in rows.items()} | {
        f"{name}_speedup_vs_teacher": r["speedup_vs_teacher"] for name, r in rows.items() if name != "teacher"}


def _headline(kinds: dict) -> dict:
    """Per kind at its first sparsity: the QUBO's accuracy and the best baseline's (not random)."""
    out = {}
    for kind, rep in kinds.items():
        s, row = next(iter(rep["sparsity"].items()))
        methods = row["methods"]
        if "qubo" in methods:
            out[f"{kind}{s}_qubo_acc"] = methods["qubo"]["accuracy"]
        others = {m: r["accuracy"] for m, r in methods.items() if m not in ("qubo", "random")}
        if others:
            best = max(others, key=others.get)
            out[f"{kind}{s}_best_baseline"] = f"{best} {others[best]:.4f}"
    return out


def main() -> None:
    stage_main("deploy", run)


if __name__ == "__main__":
    main()
