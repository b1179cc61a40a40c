"""Stage 5 — fine-tuning & distillation: a VQC student and classical students from one teacher.

Inputs: `paths.features/teacher.npz` (the fine-tuned teacher's pooled hidden states and logits per split);
with `distill.inputs` holding "static", `paths.teacher/` and `paths.encoded/tokenized` too.
Student inputs (`distill.inputs`): "teacher", the teacher's pooled hidden state (serving runs the whole teacher
encoder, then the student), and "static", static token embeddings distilled from the teacher
(qlife.methods.static_embed: serving is a table lookup and a mean, no encoder). Every student trains on each
input with the same loss against the same teacher logits; methods on the static input end in `_static`.
Methods (`distill.method`: classical | quantum | both), all trained with (1 - alpha) * CE + alpha * T^2 * KL
against the teacher's soft labels, Adam on mini-batches, early stopping on validation accuracy:
- classical_student: the MLP of width `distill.hidden`;
- vqc_student (QD-LLM): projection -> pi*tanh -> angle encoding -> ansatz -> <Z> -> head, on the torch
  statevector simulator; evaluated exactly, with finite shots, and on qiskit-aer with a noise model;
- its baselines in the same run: mlp_same_budget (an MLP with at most the VQC's total trainable
  parameters), logistic_projected (logistic regression on the VQC's learned, squashed projection: the
  circuit's input angles) and logistic_pca (logistic regression on a PCA to n_qubits);
- its ablations in the same run (`distill.ablations`), same data, seed and initialisation: vqc_frozen_circuit
  (the circuit kept at initialisation) and vqc_classical_twin (no circuit: cos of the same angles, the same
  head); every VQC reports its circuit weights' movement from initialisation.
Outputs: `paths.student/` (`student.safetensors` + `student.json` for the classical student; `vqc/` with
`student.safetensors`, `student.json`, `circuit.qasm` (OpenQASM 3, weights bound, inputs `input float`);
`static/`: the static embedding (`static.safetensors`, `static.json`, `tokenizer.json`) with its classical
student beside it and its VQC student in `static/vqc/`),
`reports/plots/distill_curve.json`, `distill_vqc_curve.json`, `distill_students.json`. Params: `distill:`.
Report: accuracy / macro-F1 / teacher agreement per method, parameter counts (classical vs quantum),
circuit resources, shots and noisy-aer accuracy, the QASM round-trip check, cost with QPU estimates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from qlife.io import atomic_path, read_json, write_json
from qlife.ledger import measure
from qlife.methods.distill import MLPStudent, count_trainable, mlp_hidden_for_budget, predict, train_student
from qlife.methods.static_embed import distill_static
from qlife.methods.vqc import (
    VQCConfig,
    VQCStudent,
    export_qasm,
    head_logits,
    input_angles,
    parameter_split,
    predict_backend,
    qasm_readout,
    readout_backend,
    training_resources,
)
from qlife.params import Params
from qlife.quality import scores
from qlife.quality import value as quality_value
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.quantum.memory import require_memory, statevector_bytes
from qlife.quantum.resources import ResourceCount, circuit_resources
from qlife.stage import Report
from qlife.stage import main as stage_main


def load_features(params: Params) -> dict[str, np.ndarray]:
    f = np.load(Path(params.paths.features) / "teacher.npz")
    return {f"{s}_{k}": f[f"{s}_{src}"] for s in ("train", "val", "test")
            for k, src in (("x", "hidden"), ("logits", "logits"), ("y", "label"))}


def evaluate(logits: np.ndarray, data: dict[str, np.ndarray], idx: np.ndarray | None = None) -> dict[str, float]:
    y, teacher = data["test_y"], data["test_logits"].argmax(1)
    if idx is not None:
        y, teacher = y[idx], teacher[idx]
    pred = logits.argmax(1)
    return {**scores(y, pred, list(data["label_names"])), "teacher_agreement": float((pred == teacher).mean())}


def static_features(params: Params, data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """The "static" input: token vectors distilled from the fine-tuned teacher (paths.teacher), SIF weights from
    the training split's token ids (paths.encoded/tokenized, the rows of teacher.npz in the same order); each
    split's documents as SIF-weighted means. Same labels and teacher logits as the "teacher" input. Returns the
    data dict and {"embedding", "tokenizer", "info", "cost"}."""
    import datasets

    from qlife.loading import load_saved
    from qlife.models import load_tokenizer

    sp = params.distill.static
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    meta = read_json(Path(params.paths.teacher) / "qlife.json")
    tok = load_tokenizer(params.paths.teacher)
    ids = {split: ds[split]["input_ids"] for split in ("train", "val", "test")}
    for split in ids:
        if len(ids[split]) != len(data[f"{split}_y"]):
            raise ValueError(f"{params.paths.encoded}/tokenized[{split}] has {len(ids[split])} rows, teacher.npz "
                             f"{len(data[f'{split}_y'])}: rerun `dvc repro train`")
    with measure(params.ledger) as cost:
        emb = distill_static(load_saved(params.paths.teacher).model, tok, ids["train"], sp.dims, sp.vocabulary,
                             sp.sif_a, int(meta["max_length"]), sp.batch_size)
        out = {k: v for k, v in data.items() if not k.endswith("_x")}
        out.update({f"{split}_x": emb.encode_ids(ids[split]) for split in ids})
    info = {"dims": emb.dims, "vocabulary": sp.vocabulary, "tokens_with_vector": int((emb.weights > 0).sum()),
            "empty_test_documents": int((~out["test_x"].any(1)).sum()), "build_s": round(cost.wall_s, 3)}
    return out, {"embedding": emb, "tokenizer": tok, "info": info, "cost": cost}


def fit(student, data: dict[str, np.ndarray], params: Params, quantum: bool = False) -> tuple[dict, dict]:
    """Distil into `student` (the VQC's own lr / batch / epochs when `quantum`); test quality and cost."""
    dp = params.distill
    lr, batch, epochs = ((dp.vqc_learning_rate, dp.vqc_batch_size, dp.vqc_epochs) if quantum else
                         (dp.learning_rate, dp.batch_size, dp.epochs))
    student.set_scaler(data["train_x"])
    with measure(params.ledger) as cost:
        result = train_student(student, data, dp.alpha, dp.temperature, epochs, lr, batch, dp.patience, dp.seed,
                               circuit_lr=dp.circuit_learning_rate if quantum else None)
    quality = {**evaluate(predict(student, data["test_x"]), data), "parameters": count_trainable(student),
               "best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "val_accuracy": result.best_val_accuracy, "train_s": round(cost.wall_s, 3)}
    if isinstance(student, VQCStudent):
        quality.update(ablation=student.cfg.ablation, projection=student.cfg.projection,
                       circuit_weight_movement=student.weight_movement())
    return quality, {"cost": cost, "history": result.history}


def hardware_evaluation(student: VQCStudent, data: dict[str, np.ndarray], params: Params,
                        structure: dict) -> tuple[dict, ResourceCount]:
    """Each finite-shot backend of `distill.shots` on the whole test split; then, on the same `hardware_samples`
    test inputs, exact, every shot count and every backend of `distill.backends` (aer with noise, a device
    model...) side by side. Every readout is measured through qlife.quantum.backends, which counts the resources."""
    dp, n_test = params.distill, len(data["test_y"])
    out: dict = {"shots": {}}
    res = None
    for i, spec in enumerate(dp.shots):
        logits, used = predict_backend(student, data["test_x"], spec, f"distill.shots[{i}]", structure)
        out["shots"][str(spec.shots)] = {**evaluate(logits, data), "inputs": n_test}
        res = used if res is None else res + used
    if dp.hardware_samples and dp.backends:
        idx = np.random.default_rng(dp.seed).permutation(n_test)[:dp.hardware_samples]
        x = data["test_x"][idx]
        exact = predict(student, x)
        same: dict = {"inputs": len(idx), "exact": evaluate(exact, data, idx)}
        for i, spec in enumerate(dp.shots):  # a subset of the test split's runs above: not counted twice
            logits, _ = predict_backend(student, x, spec, f"distill.shots[{i}]", structure)
            same[f"shots_{spec.shots}"] = evaluate(logits, data, idx)
        for i, spec in enumerate(dp.backends):
            readout, used = readout_backend(student, x, spec, f"distill.backends[{i}]")
            logits = head_logits(student, readout)
            same[used.backend] = {**evaluate(logits, data, idx), "shots": spec.shots,
                                  "agreement_with_exact": float((logits.argmax(1) == exact.argmax(1)).mean()),
                                  "device": used.device, "depth": used.depth, "two_qubit_gates": used.two_qubit_gates,
                                  "swaps": used.swaps}
            res = res + used
        out["same_inputs"] = same
    return out, res


def qasm_check(student: VQCStudent, qasm: str, data: dict[str, np.ndarray], n: int) -> dict:
    """The exported QASM re-imported and simulated with qiskit's Statevector vs the trained model."""
    x = data["test_x"][:n]
    readout = qasm_readout(qasm, input_angles(student, x), student.cfg.readout)
    same = head_logits(student, readout).argmax(1) == predict(student, x).argmax(1)
    return {"inputs": len(x), "prediction_agreement": float(same.mean())}


def logistic(train: np.ndarray, test: np.ndarray, data: dict[str, np.ndarray], seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(train, data["train_y"])
    n_classes = len(clf.classes_)
    return {**evaluate(clf.decision_function(test).reshape(len(test), -1) if n_classes > 2 else
                       np.stack([-clf.decision_function(test), clf.decision_function(test)], 1), data),
            "parameters": int(clf.coef_.size + clf.intercept_.size)}


def baselines(student: VQCStudent, data: dict[str, np.ndarray], params: Params, budget: int,
              n_classes: int) -> tuple[dict, dict]:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    dp, in_dim = params.distill, data["train_x"].shape[1]
    mlp = MLPStudent(in_dim, mlp_hidden_for_budget(in_dim, n_classes, budget), n_classes)
    q_mlp, extra = fit(mlp, data, params)
    q_mlp.update(hidden=mlp.hidden, budget=budget)
    methods, costs = {"mlp_same_budget": q_mlp}, {"mlp_same_budget": extra["cost"].as_dict()}
    with measure(params.ledger) as cost:
        q = logistic(input_angles(student, data["train_x"]), input_angles(student, data["test_x"]), data, dp.seed)
    methods["logistic_projected"] = {**q, "features": "vqc_projection", "n_features": dp.qubits}
    costs["logistic_projected"] = cost.as_dict()
    with measure(params.ledger) as cost:
        scaler = StandardScaler().fit(data["train_x"])
        pca = PCA(dp.qubits, random_state=dp.seed).fit(scaler.transform(data["train_x"]))
        q = logistic(pca.transform(scaler.transform(data["train_x"])),
                     pca.transform(scaler.transform(data["test_x"])), data, dp.seed)
    methods["logistic_pca"] = {**q, "features": "pca", "n_features": dp.qubits}
    costs["logistic_pca"] = cost.as_dict()
    return methods, costs


def check_vqc_memory(params: Params) -> None:
    """Refuse a VQC that the batched simulator cannot hold (one (batch, 2^n) state per gate for autograd)."""
    dp = params.distill
    entanglers = {"linear": dp.qubits - 1, "ring": dp.qubits, "full": dp.qubits * (dp.qubits - 1) // 2}
    gates = dp.qubits * (1 + (dp.layers if dp.reupload else 0)) + dp.layers * (
        dp.qubits * len(dp.rotations) + entanglers[dp.entanglement])
    need = statevector_bytes(dp.qubits, dp.vqc_batch_size, states=gates + 4)
    require_memory(need, f"the VQC student ({dp.qubits} qubits, {gates} gates, batch {dp.vqc_batch_size})",
                   "lower distill.qubits (each qubit doubles it) or distill.vqc_batch_size")


def vqc_config(params: Params, in_dim: int, n_classes: int, ablation: str = "trained") -> VQCConfig:
    dp = params.distill
    return VQCConfig(in_dim, n_classes, dp.qubits, dp.layers, tuple(dp.rotations), dp.entanglement, dp.reupload,
                     dp.readout, dp.init_scale, dp.seed, ablation, dp.projection)


def ablations(data: dict[str, np.ndarray], params: Params, n_classes: int, trained: dict) -> tuple[dict, dict]:
    """The VQC with its circuit frozen at initialisation and its classical twin: same data, seed, initialisation
    and optimiser as the trained VQC; `circuit_matters` compares them on the test split."""
    methods, costs = {}, {}
    for name, ablation in (("vqc_frozen_circuit", "frozen"), ("vqc_classical_twin", "twin")):
        student = VQCStudent(vqc_config(params, data["train_x"].shape[1], n_classes, ablation))
        methods[name], extra = fit(student, data, params, quantum=True)
        methods[name]["parameters_quantum"] = 0
        costs[name] = extra["cost"].as_dict()
    metric = "accuracy"
    best = max(methods[m][metric] for m in methods)
    methods["vqc_frozen_circuit"]["vs_trained"] = methods["vqc_frozen_circuit"][metric] - trained[metric]
    methods["vqc_classical_twin"]["vs_trained"] = methods["vqc_classical_twin"][metric] - trained[metric]
    trained["circuit_matters"] = {
        "trained_minus_best_ablation_accuracy": trained[metric] - best,
        "verdict": ("the trained circuit beats both ablations on this split (one seed: see bench.distill for the "
                    "spread)" if trained[metric] > best else
                    "the trained circuit does not beat its frozen and classical-twin ablations on this split")}
    return methods, costs


def quantum(data: dict[str, np.ndarray], params: Params, n_classes: int) -> tuple[dict, dict, dict]:
    """VQC student + its hardware-like evaluation + the same-run baselines and ablations."""
    dp = params.distill
    check_vqc_memory(params)
    student = VQCStudent(vqc_config(params, data["train_x"].shape[1], n_classes))
    quality, extra = fit(student, data, params, quantum=True)
    split = parameter_split(student)
    structure = circuit_resources(student.vc.circuit)
    extra["cost"].add_quantum(training_resources(student, structure, quality["epochs_run"], len(data["train_y"]),
                                                 len(data["val_y"]), EQUIVALENT_SHOTS).to_dict())
    qasm = export_qasm(student)
    with measure(params.ledger) as eval_cost:
        hardware, res = hardware_evaluation(student, data, params, structure)
        check = qasm_check(student, qasm, data, dp.qasm_check_samples) if dp.qasm_check_samples else {}
    eval_cost.add_quantum(res.to_dict())  # shots: hardware-equivalent; aer: executed on the simulator
    quality.update(parameters_classical=split["classical"], parameters_quantum=split["quantum"],
                   resources={k: structure[k] for k in ("qubits", "depth", "two_qubit_gates", "ops")},
                   **hardware, qasm_roundtrip=check)
    methods, costs = baselines(student, data, params, split["total"], n_classes)
    if dp.ablations:
        abl_methods, abl_costs = ablations(data, params, n_classes, quality)
        methods.update(abl_methods)
        costs.update(abl_costs)
    methods = {"vqc_student": quality, **methods}
    costs = {"vqc_student": extra["cost"].as_dict(), "vqc_evaluation": eval_cost.as_dict(), **costs}
    return methods, costs, {"student": student, "qasm": qasm, "history": extra["history"]}


def _save_mlp(folder: Path, mlp: MLPStudent, meta: dict) -> None:
    save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(folder / "student.safetensors"))
    write_json(folder / "student.json", {"kind": "mlp", **mlp.config(), **meta})


def _save_vqc(folder: Path, vqc: dict, meta: dict) -> None:
    student = vqc["student"]
    folder.mkdir()
    save_file({k: v.detach().contiguous() for k, v in student.state_dict().items()},
              str(folder / "student.safetensors"))
    write_json(folder / "student.json", {"kind": "vqc", **student.config(), **meta, "circuit": "circuit.qasm"})
    (folder / "circuit.qasm").write_text(vqc["qasm"])


def save_students(folder: str | Path, labels: list[str], params: Params, mlp: MLPStudent | None,
                  vqc: dict | None, static: dict | None = None) -> None:
    """One atomic write of the student folder: the classical student at the top, the VQC under vqc/; the
    static input's embedding table with its classical student under static/ and its VQC under static/vqc/."""
    meta = {"labels": labels, "alpha": params.distill.alpha, "temperature": params.distill.temperature}
    with atomic_path(folder, is_dir=True) as tmp:
        if mlp is not None:
            _save_mlp(tmp, mlp, {**meta, "input": "teacher"})
        if vqc is not None:
            _save_vqc(tmp / "vqc", vqc, {**meta, "input": "teacher"})
        if static is not None:
            sub = tmp / "static"
            static["static"]["embedding"].save(sub, static["static"]["tokenizer"])
            if "mlp" in static:
                _save_mlp(sub, static["mlp"], {**meta, "input": "static"})
            if "vqc" in static:
                _save_vqc(sub / "vqc", static["vqc"], {**meta, "input": "static"})


def teacher_parameters(params: Params) -> int | None:
    from safetensors import safe_open

    files = list(Path(params.paths.teacher).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), "pt") as st:
            total += sum(int(np.prod(st.get_slice(k).get_shape())) for k in st.keys())
    return total


def write_plots(params: Params, methods: dict, curves: dict[str, list]) -> None:
    plots = Path(params.paths.reports) / "plots"
    write_json(plots / "distill_curve.json", curves.get("classical_student") or curves.get("vqc_student", []))
    write_json(plots / "distill_vqc_curve.json", curves.get("vqc_student", []))
    write_json(plots / "distill_students.json",
               [{"student": name, "input": m.get("input"), "parameters": m["parameters"],
                 "test_accuracy": m["accuracy"]}
                for name, m in methods.items() if m.get("parameters")])


def summary(methods: dict) -> dict:
    teacher = methods["teacher"]["accuracy"]
    metric = methods["teacher"]["metric"]
    out = {"teacher_accuracy": teacher, f"teacher_{metric}": methods["teacher"]["quality"]}
    for name, key in (("classical_student", "student"), ("vqc_student", "vqc")):
        if name in methods:
            out[f"{key}_{metric}"] = methods[name]["quality"]
    if "classical_student" in methods:
        c = methods["classical_student"]
        out.update(student_accuracy=c["accuracy"], student_parameters=c["parameters"],
                   accuracy_ratio=c["accuracy"] / max(teacher, 1e-9))
    if "vqc_student" in methods:
        v = methods["vqc_student"]
        out.update(vqc_accuracy=v["accuracy"], vqc_accuracy_ratio=v["accuracy"] / max(teacher, 1e-9),
                   vqc_parameters=v["parameters"], vqc_train_s=v["train_s"],
                   mlp_same_budget_accuracy=methods["mlp_same_budget"]["accuracy"],
                   logistic_projected_accuracy=methods["logistic_projected"]["accuracy"])
        if "1024" in v["shots"]:
            out["vqc_shots1024_accuracy"] = v["shots"]["1024"]["accuracy"]
        for name in ("vqc_frozen_circuit", "vqc_classical_twin"):
            if name in methods:
                out[f"{name}_accuracy"] = methods[name]["accuracy"]
        same = v.get("same_inputs", {})
        for name, row in same.items():  # exact and each backend on the same hardware_samples inputs
            if isinstance(row, dict) and (name == "exact" or "agreement_with_exact" in row):
                out[f"vqc_{name.replace(':', '_')}_accuracy_same_inputs"] = row["accuracy"]
    for name in ("classical_student_static", "vqc_student_static"):
        if name in methods:
            out[f"{name}_accuracy"] = methods[name]["accuracy"]
            out[f"{name}_{metric}"] = methods[name]["quality"]
    return out


def static_students(data: dict[str, np.ndarray], params: Params, n_classes: int) -> tuple[dict, dict, dict]:
    """The classical and the VQC student on the static input (no teacher at serving time)."""
    dp = params.distill
    sdata, built = static_features(params, data)
    methods, costs, curves, models = {}, {"static_embedding": built["cost"].as_dict()}, {}, {"static": built}
    in_dim = sdata["train_x"].shape[1]
    if dp.method in ("classical", "both"):
        mlp = MLPStudent(in_dim, dp.hidden, n_classes)
        methods["classical_student_static"], extra = fit(mlp, sdata, params)
        costs["classical_student_static"], curves["classical_student_static"] = extra["cost"].as_dict(), \
            extra["history"]
        models["mlp"] = mlp
    if dp.method in ("quantum", "both"):
        check_vqc_memory(params)
        vqc = VQCStudent(vqc_config(params, in_dim, n_classes))
        methods["vqc_student_static"], extra = fit(vqc, sdata, params, quantum=True)
        split = parameter_split(vqc)
        methods["vqc_student_static"].update(parameters_classical=split["classical"],
                                             parameters_quantum=split["quantum"])
        costs["vqc_student_static"], curves["vqc_student_static"] = extra["cost"].as_dict(), extra["history"]
        models["vqc"] = {"student": vqc, "qasm": export_qasm(vqc)}
    for m in methods.values():
        m.update(input="static", input_info=built["info"])
    return methods, costs, {"curves": curves, "models": models}


def run(params: Params) -> Report:
    dp = params.distill
    data = load_features(params)
    labels = read_json(Path(params.paths.curated) / "labels.json")
    n_classes = len(labels)
    data["label_names"] = np.array(labels)
    methods = {"teacher": {**scores(data["test_y"], data["test_logits"].argmax(1), labels),
                           "parameters": teacher_parameters(params)}}
    costs, curves, mlp, vqc, static = {}, {}, None, None, None
    if "teacher" in dp.inputs and dp.method in ("classical", "both"):
        mlp = MLPStudent(data["train_x"].shape[1], dp.hidden, n_classes)
        methods["classical_student"], extra = fit(mlp, data, params)
        costs["classical_student"], curves["classical_student"] = extra["cost"].as_dict(), extra["history"]
    if "teacher" in dp.inputs and dp.method in ("quantum", "both"):
        q_methods, q_costs, vqc = quantum(data, params, n_classes)
        methods.update(q_methods)
        costs.update(q_costs)
        curves["vqc_student"] = vqc["history"]
    if "static" in dp.inputs:
        s_methods, s_costs, static = static_students(data, params, n_classes)
        methods.update(s_methods)
        costs.update(s_costs)
        curves.update(static["curves"])
    for name, m in methods.items():  # the one quality metric (quality:) beside accuracy and macro-F1
        m.setdefault("input", "teacher" if name != "teacher" else "text")
        m.update(quality=quality_value(m, params.quality), metric=params.quality.name)
    save_students(params.paths.student, labels, params, mlp, vqc, static["models"] if static else None)
    write_plots(params, methods, curves)
    return {"summary": summary(methods), "methods": methods, "cost": costs}


def main() -> None:
    stage_main("distill", run)


if __name__ == "__main__":
    main()
