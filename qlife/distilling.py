"""Stage 5's distillation workflow (`stages/distill.py` runs it): fit a student against the teacher's soft labels
and score it; the VQC student with its finite-shot and hardware-model evaluation (through qlife.quantum.backends),
the exported circuit's round trip, its same-budget classical baselines and its ablations (circuit frozen, classical
twin), all on the same data and seed. A VQC the simulator cannot hold is refused before any training.
"""

from __future__ import annotations

import numpy as np

from qlife.ledger import measure, verdict_cost
from qlife.methods.distill import MLPStudent, count_trainable, mlp_hidden_for_budget, predict, train_student
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
from qlife.quality import document_verdict, scores
from qlife.quality import value as quality_value
from qlife.quantum.backends import EQUIVALENT_SHOTS
from qlife.quantum.memory import require_memory, statevector_bytes
from qlife.quantum.resources import ResourceCount, circuit_resources


def evaluate(logits: np.ndarray, data: dict[str, np.ndarray], idx: np.ndarray | None = None) -> dict[str, float]:
    y, teacher = data["test_y"], data["test_logits"].argmax(1)
    if idx is not None:
        y, teacher = y[idx], teacher[idx]
    pred = logits.argmax(1)
    return {**scores(y, pred, list(data["label_names"])), "teacher_agreement": float((pred == teacher).mean())}


def fit(student, data: dict[str, np.ndarray], params: Params, quantum: bool = False) -> tuple[dict, dict]:
    """Distil into `student` (the VQC's own lr / batch / epochs when `quantum`); test quality and cost."""
    dp = params.distill
    lr, batch, epochs = ((dp.vqc_learning_rate, dp.vqc_batch_size, dp.vqc_epochs) if quantum else
                         (dp.learning_rate, dp.batch_size, dp.epochs))
    student.set_scaler(data["train_x"])
    with measure(params.ledger) as cost:
        result = train_student(student, data, dp.alpha, dp.temperature, epochs, lr, batch, dp.patience, dp.seed,
                               circuit_lr=dp.circuit_learning_rate if quantum else None)
    logits = predict(student, data["test_x"])
    figures = evaluate(logits, data)
    quality = {**figures, "quality": quality_value(figures, params.quality), "metric": params.quality.name,
               "parameters": count_trainable(student),
               "best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "val_accuracy": result.best_val_accuracy, "train_s": round(cost.wall_s, 3)}
    if isinstance(student, VQCStudent):
        quality.update(ablation=student.cfg.ablation, projection=student.cfg.projection,
                       circuit_weight_movement=student.weight_movement())
    return quality, {"cost": cost, "history": result.history, "pred": logits.argmax(1)}


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


def logistic(train: np.ndarray, test: np.ndarray, data: dict[str, np.ndarray], seed: int
             ) -> tuple[dict, np.ndarray]:
    """Logistic regression's test figures and test predictions."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(train, data["train_y"])
    n_classes = len(clf.classes_)
    logits = (clf.decision_function(test).reshape(len(test), -1) if n_classes > 2 else
              np.stack([-clf.decision_function(test), clf.decision_function(test)], 1))
    return {**evaluate(logits, data), "parameters": int(clf.coef_.size + clf.intercept_.size)}, logits.argmax(1)


def baselines(student: VQCStudent, data: dict[str, np.ndarray], params: Params, budget: int,
              n_classes: int) -> tuple[dict, dict, dict]:
    """The VQC's same-run classical baselines: figures, costs and test predictions per method."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    dp, in_dim = params.distill, data["train_x"].shape[1]
    mlp = MLPStudent(in_dim, mlp_hidden_for_budget(in_dim, n_classes, budget), n_classes, dp.seed)
    q_mlp, extra = fit(mlp, data, params)
    q_mlp.update(hidden=mlp.hidden, budget=budget)
    methods, costs = {"mlp_same_budget": q_mlp}, {"mlp_same_budget": extra["cost"].as_dict()}
    preds = {"mlp_same_budget": extra["pred"]}
    with measure(params.ledger) as cost:
        q, preds["logistic_projected"] = logistic(input_angles(student, data["train_x"]),
                                                  input_angles(student, data["test_x"]), data, dp.seed)
    methods["logistic_projected"] = {**q, "features": "vqc_projection", "n_features": dp.qubits}
    costs["logistic_projected"] = cost.as_dict()
    with measure(params.ledger) as cost:
        scaler = StandardScaler().fit(data["train_x"])
        pca = PCA(dp.qubits, random_state=dp.seed).fit(scaler.transform(data["train_x"]))
        q, preds["logistic_pca"] = logistic(pca.transform(scaler.transform(data["train_x"])),
                                            pca.transform(scaler.transform(data["test_x"])), data, dp.seed)
    methods["logistic_pca"] = {**q, "features": "pca", "n_features": dp.qubits}
    costs["logistic_pca"] = cost.as_dict()
    for name in ("logistic_projected", "logistic_pca"):
        methods[name].update(quality=quality_value(methods[name], params.quality), metric=params.quality.name)
    return methods, costs, preds


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


def ablations(data: dict[str, np.ndarray], params: Params, n_classes: int, trained: dict
              ) -> tuple[dict, dict, dict]:
    """The VQC with its circuit frozen at initialisation and its classical twin: same data, seed, initialisation
    and optimiser as the trained VQC; `circuit_matters` compares them on the test split in the quality metric
    (the stage's `verdict` has the paired interval against the twin)."""
    methods, costs, preds = {}, {}, {}
    for name, ablation in (("vqc_frozen_circuit", "frozen"), ("vqc_classical_twin", "twin")):
        student = VQCStudent(vqc_config(params, data["train_x"].shape[1], n_classes, ablation))
        methods[name], extra = fit(student, data, params, quantum=True)
        methods[name]["parameters_quantum"] = 0
        costs[name], preds[name] = extra["cost"].as_dict(), extra["pred"]
    metric = params.quality.name
    best = max(methods[m]["quality"] for m in methods)
    for name in methods:
        methods[name]["vs_trained"] = methods[name]["quality"] - trained["quality"]
    trained["circuit_matters"] = {
        f"trained_minus_best_ablation_{metric}": trained["quality"] - best,
        "verdict": (f"the trained circuit beats both ablations in {metric} on this split (the stage's verdict has "
                    f"the interval)" if trained["quality"] > best else
                    f"the trained circuit does not beat its frozen and classical-twin ablations in {metric} on "
                    f"this split")}
    return methods, costs, preds


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
    methods, costs, preds = baselines(student, data, params, split["total"], n_classes)
    if dp.ablations:
        abl_methods, abl_costs, abl_preds = ablations(data, params, n_classes, quality)
        methods.update(abl_methods)
        costs.update(abl_costs)
        preds.update(abl_preds)
    methods = {"vqc_student": quality, **methods}
    costs = {"vqc_student": extra["cost"].as_dict(), "vqc_evaluation": eval_cost.as_dict(), **costs}
    return methods, costs, {"student": student, "qasm": qasm, "history": extra["history"],
                            "preds": {"vqc_student": extra["pred"], **preds}}


QUANTUM = ("vqc_student", "vqc_student_static")
CLASSICAL = ("classical_student", "mlp_same_budget", "logistic_projected", "logistic_pca", "vqc_classical_twin",
             "classical_student_static")  # vqc_frozen_circuit still runs a circuit: not a classical candidate


def distill_verdict(y: np.ndarray, preds: dict[str, np.ndarray], costs: dict, labels: list[str],
                    params: Params) -> dict | None:
    """The stage's verdict: the VQC student against its classical twin (vqc_classical_twin: the same projection,
    pi*tanh and head, the circuit replaced by cos of the same angles; mlp_same_budget when `distill.ablations` is
    off) and the best of the MLP / logistic students (static-input ones included), paired over the same test
    documents in the quality metric; cost: each student's training (the VQC's with its hardware-equivalent QPU
    estimate). On the static input alone: its VQC against its MLP. None when no VQC ran."""
    if "vqc_student" in preds:
        quantum = "vqc_student"
        twin = "vqc_classical_twin" if "vqc_classical_twin" in preds else "mlp_same_budget"
    elif "vqc_student_static" in preds and "classical_student_static" in preds:
        quantum, twin = "vqc_student_static", "classical_student_static"
    else:
        return None
    classical = [m for m in CLASSICAL if m in preds]
    why = {"vqc_classical_twin": "the circuit replaced by cos of the same angles, same projection and head",
           "mlp_same_budget": "an MLP with at most the VQC's parameters (distill.ablations is off: no circuit-free "
                              "twin of the VQC itself)",
           "classical_student_static": "the static input's MLP student (no same-budget twin runs on that input)"}
    note = f"twin {twin}: {why[twin]}; cost: training of each student"
    return document_verdict(y, {m: preds[m] for m in (quantum, *classical)}, labels, params.quality, quantum, twin,
                            classical=classical, seed=params.distill.seed, note=note,
                            cost={m: verdict_cost(costs.get(m), m in QUANTUM) for m in (quantum, *classical)})
