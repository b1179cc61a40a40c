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
Report: the quality metric (`quality:`), accuracy, macro-F1 and teacher agreement per method, parameter counts
(classical vs quantum), circuit resources, shots and noisy-aer figures, the QASM round-trip check, cost with QPU
estimates; headlines (`summary`) in the quality metric only; `verdict` (qlife.verdict): the VQC student against
its classical twin and the best MLP / logistic student, paired over the same test documents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from qlife.distilling import check_vqc_memory, distill_verdict, fit, quantum, vqc_config
from qlife.io import atomic_path, read_json, write_json
from qlife.ledger import measure
from qlife.methods.distill import MLPStudent
from qlife.methods.static_embed import distill_static
from qlife.methods.vqc import VQCStudent, export_qasm, parameter_split
from qlife.params import Params
from qlife.quality import corpus_subsample, scores
from qlife.quality import value as quality_value
from qlife.stage import Report
from qlife.stage import main as stage_main


def load_features(params: Params) -> dict[str, np.ndarray]:
    f = np.load(Path(params.paths.features) / "teacher.npz")
    return {f"{s}_{k}": f[f"{s}_{src}"] for s in ("train", "val", "test")
            for k, src in (("x", "hidden"), ("logits", "logits"), ("y", "label"))}


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
                 "metric": m["metric"], "test_quality": m["quality"], "test_accuracy": m["accuracy"]}
                for name, m in methods.items() if m.get("parameters")])


HEADLINE_NAMES = {"classical_student": "student", "vqc_student": "vqc"}  # the rest by their method name


def summary(methods: dict, params: Params) -> dict:
    """Headline figures, each in the quality metric (accuracy stays in `methods`, named `accuracy`)."""
    metric = params.quality.name
    teacher = methods["teacher"]["quality"]
    out = {f"{HEADLINE_NAMES.get(name, name)}_{metric}": m["quality"] for name, m in methods.items()}
    if "classical_student" in methods:
        c = methods["classical_student"]
        out.update({"student_parameters": c["parameters"],
                    f"student_{metric}_ratio": c["quality"] / max(teacher, 1e-9)})
    if "vqc_student" in methods:
        v = methods["vqc_student"]
        out.update({f"vqc_{metric}_ratio": v["quality"] / max(teacher, 1e-9), "vqc_parameters": v["parameters"],
                    "vqc_train_s": v["train_s"]})
        if "1024" in v["shots"]:
            out[f"vqc_shots1024_{metric}"] = quality_value(v["shots"]["1024"], params.quality)
        for name, row in v.get("same_inputs", {}).items():  # exact and each backend on the same inputs
            if isinstance(row, dict) and (name == "exact" or "agreement_with_exact" in row):
                out[f"vqc_{name.replace(':', '_')}_{metric}_same_inputs"] = quality_value(row, params.quality)
    return out


def static_students(data: dict[str, np.ndarray], params: Params, n_classes: int) -> tuple[dict, dict, dict]:
    """The classical and the VQC student on the static input (no teacher at serving time)."""
    dp = params.distill
    sdata, built = static_features(params, data)
    methods, costs, curves, models = {}, {"static_embedding": built["cost"].as_dict()}, {}, {"static": built}
    preds = {}
    in_dim = sdata["train_x"].shape[1]
    if dp.method in ("classical", "both"):
        mlp = MLPStudent(in_dim, dp.hidden, n_classes, dp.seed)
        methods["classical_student_static"], extra = fit(mlp, sdata, params)
        costs["classical_student_static"], curves["classical_student_static"] = extra["cost"].as_dict(), \
            extra["history"]
        models["mlp"], preds["classical_student_static"] = mlp, extra["pred"]
    if dp.method in ("quantum", "both"):
        check_vqc_memory(params)
        vqc = VQCStudent(vqc_config(params, in_dim, n_classes))
        methods["vqc_student_static"], extra = fit(vqc, sdata, params, quantum=True)
        split = parameter_split(vqc)
        methods["vqc_student_static"].update(parameters_classical=split["classical"],
                                             parameters_quantum=split["quantum"])
        costs["vqc_student_static"], curves["vqc_student_static"] = extra["cost"].as_dict(), extra["history"]
        models["vqc"], preds["vqc_student_static"] = {"student": vqc, "qasm": export_qasm(vqc)}, extra["pred"]
    for m in methods.values():
        m.update(input="static", input_info=built["info"])
    return methods, costs, {"curves": curves, "models": models, "preds": preds}


def run(params: Params) -> Report:
    dp = params.distill
    if dp.method in ("quantum", "both"):
        check_vqc_memory(params)  # before any training: a VQC the simulator cannot hold is refused first
    data = load_features(params)
    labels = read_json(Path(params.paths.curated) / "labels.json")
    n_classes = len(labels)
    data["label_names"] = np.array(labels)
    methods = {"teacher": {**scores(data["test_y"], data["test_logits"].argmax(1), labels),
                           "parameters": teacher_parameters(params)}}
    costs, curves, preds, mlp, vqc, static = {}, {}, {}, None, None, None
    if "teacher" in dp.inputs and dp.method in ("classical", "both"):
        mlp = MLPStudent(data["train_x"].shape[1], dp.hidden, n_classes, dp.seed)
        methods["classical_student"], extra = fit(mlp, data, params)
        costs["classical_student"], curves["classical_student"] = extra["cost"].as_dict(), extra["history"]
        preds["classical_student"] = extra["pred"]
    if "teacher" in dp.inputs and dp.method in ("quantum", "both"):
        q_methods, q_costs, vqc = quantum(data, params, n_classes)
        methods.update(q_methods)
        costs.update(q_costs)
        curves["vqc_student"] = vqc["history"]
        preds.update(vqc["preds"])
    if "static" in dp.inputs:
        s_methods, s_costs, static = static_students(data, params, n_classes)
        methods.update(s_methods)
        costs.update(s_costs)
        curves.update(static["curves"])
        preds.update(static["preds"])
    for name, m in methods.items():  # the one quality metric (quality:) beside accuracy and macro-F1
        m.setdefault("input", "teacher" if name != "teacher" else "text")
        m.update(quality=quality_value(m, params.quality), metric=params.quality.name)
    save_students(params.paths.student, labels, params, mlp, vqc, static["models"] if static else None)
    write_plots(params, methods, curves)
    return {"summary": summary(methods, params), "methods": methods,
            "verdict": distill_verdict(data["test_y"], preds, costs, labels, params), "cost": costs,
            # the students learn from the teacher's features of encode's splits: encode.max_docs's cut
            "subsample": {"corpus": corpus_subsample(Path(params.paths.encoded) / "tokenized")}}


def main() -> None:
    stage_main("distill", run)


if __name__ == "__main__":
    main()
