"""Stage 5 on SST-2: VQC student vs a classical student with the same parameter budget vs the teacher.

Data: `../shared/datasets/sst2` (override with --data): a seeded train subset (default 8,000 sentences, 10%
of it held out for early stopping) and the GLUE validation split (872) as test. Teacher: MiniLM-L6
(sentence-transformers/all-MiniLM-L6-v2) FROZEN, mean-pooled features + a trained linear head (logistic
regression); its logits are the soft labels. Features are cached in bench/.cache. Sweep: n_qubits x layers
(default {4, 8, 11} x {1, 2, 4}), each with `--seeds` seeds; per config: the VQC student (params.yaml's
distill defaults otherwise) and an MLP student with at most its total parameters, both distilled with the
same loss. The best config (mean VQC accuracy) is also evaluated with 1024 shots and on every backend of
`distill.backends` (noisy aer, a device model), all on the same `--aer-samples` test inputs. Writes
bench/results/distill.json and bench/results/distill_plot.{json,png} (accuracy vs parameter count).
Run: python -m bench.distill [--quick]

`--students` runs the students study instead (issue: students cheaper to serve than the teacher): the same
teacher soft labels; two student inputs, the frozen teacher's pooled features ("teacher": serving runs the
encoder) and static token embeddings distilled from the same encoder (qlife.methods.static_embed: no encoder at
serving time); per input and seed: the MLP student and VQC variants at `--vqc-qubits` qubits, the trained
circuit beside its frozen-circuit and classical-twin ablations, and the attempts to make the circuit matter
(re-uploading, a larger initialisation, a 10x circuit learning rate, bitstring-probability readout, a fixed PCA
projection, the latter with its own frozen and twin ablations); the serving cost per request of each input
(teacher encoder + student vs table + student), measured through the served pyfunc (qlife.servecost). Writes
bench/results/distill_students.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import RESULTS, table, write
from qlife.methods.distill import MLPStudent, count_trainable, mlp_hidden_for_budget, predict, train_student
from qlife.methods.vqc import (
    VQCConfig,
    VQCStudent,
    head_logits,
    parameter_split,
    predict_backend,
    readout_backend,
)
from qlife.params import Distill
from qlife.quality import scores

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sst2"
CACHE = Path(__file__).parent / ".cache"
TEACHER = "sentence-transformers/all-MiniLM-L6-v2"


def read_jsonl(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.open()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows])


def features(data: Path, n_train: int, seed: int) -> dict[str, np.ndarray]:
    """Frozen MiniLM mean-pooled features of the train subset and the validation split (cached)."""
    path = CACHE / f"sst2_minilm_{n_train}_{seed}.npz"
    if path.exists():
        return dict(np.load(path))
    from transformers import AutoModel

    from qlife.models import encode_texts, load_tokenizer, resolve_model

    texts, y = read_jsonl(data / "train.jsonl")
    idx = np.random.default_rng(seed).permutation(len(texts))[:n_train]
    test_texts, test_y = read_jsonl(data / "validation.jsonl")
    tok, model = load_tokenizer(TEACHER), AutoModel.from_pretrained(resolve_model(TEACHER))
    out = {"train_x": encode_texts(model, tok, [texts[i] for i in idx], 64, 64)[0], "train_y": y[idx],
           "test_x": encode_texts(model, tok, test_texts, 64, 64)[0], "test_y": test_y,
           "encoder_parameters": np.array(sum(p.numel() for p in model.parameters()))}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def teacher(f: dict[str, np.ndarray], seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Linear head on the frozen features; returns the distillation data dict and the teacher's quality."""
    from sklearn.linear_model import LogisticRegression

    n_val = len(f["train_y"]) // 10
    d = {"train_x": f["train_x"][n_val:], "train_y": f["train_y"][n_val:], "val_x": f["train_x"][:n_val],
         "val_y": f["train_y"][:n_val], "test_x": f["test_x"], "test_y": f["test_y"]}
    clf = LogisticRegression(max_iter=3000, C=1.0, random_state=seed).fit(d["train_x"], d["train_y"])
    for s in ("train", "val", "test"):
        z = clf.decision_function(d[f"{s}_x"])
        d[f"{s}_logits"] = np.stack([-z / 2, z / 2], 1).astype(np.float32)
    q = scores(d["test_y"], d["test_logits"].argmax(1))
    q["parameters"] = int(f["encoder_parameters"]) + int(clf.coef_.size + clf.intercept_.size)
    return d, q


def distil(student, d: dict, dp: Distill, lr: float, batch: int, epochs: int, seed: int) -> dict:
    student.set_scaler(d["train_x"])
    t0 = time.perf_counter()
    r = train_student(student, d, dp.alpha, dp.temperature, epochs, lr, batch, dp.patience, seed)
    logits = predict(student, d["test_x"])
    return {**scores(d["test_y"], logits.argmax(1)), "train_s": time.perf_counter() - t0,
            "epochs_run": len(r.history), "teacher_agreement": float(
                (logits.argmax(1) == d["test_logits"].argmax(1)).mean())}


def one_config(d: dict, n: int, layers: int, seed: int, dp: Distill, epochs: int) -> tuple[dict, VQCStudent]:
    in_dim = d["train_x"].shape[1]
    vqc = VQCStudent(VQCConfig(in_dim, 2, n, layers, tuple(dp.rotations), dp.entanglement, dp.reupload,
                               dp.readout, dp.init_scale, seed))
    q_vqc = distil(vqc, d, dp, dp.vqc_learning_rate, dp.vqc_batch_size, epochs, seed)
    split = parameter_split(vqc)
    mlp = MLPStudent(in_dim, mlp_hidden_for_budget(in_dim, 2, split["total"]), 2)
    q_mlp = distil(mlp, d, dp, dp.learning_rate, dp.batch_size, epochs, seed)
    row = {"n_qubits": n, "layers": layers, "seed": seed, "vqc_accuracy": q_vqc["accuracy"],
           "vqc_macro_f1": q_vqc["macro_f1"], "vqc_teacher_agreement": q_vqc["teacher_agreement"],
           "vqc_parameters": split["total"], "vqc_parameters_quantum": split["quantum"],
           "vqc_train_s": q_vqc["train_s"], "vqc_epochs": q_vqc["epochs_run"],
           "mlp_accuracy": q_mlp["accuracy"], "mlp_teacher_agreement": q_mlp["teacher_agreement"],
           "mlp_hidden": mlp.hidden, "mlp_parameters": count_trainable(mlp), "mlp_train_s": q_mlp["train_s"]}
    return row, vqc


def aggregate(rows: list[dict]) -> list[dict]:
    out = []
    for key in sorted({(r["n_qubits"], r["layers"]) for r in rows}):
        group = [r for r in rows if (r["n_qubits"], r["layers"]) == key]
        v, m = np.array([r["vqc_accuracy"] for r in group]), np.array([r["mlp_accuracy"] for r in group])
        out.append({"n_qubits": key[0], "layers": key[1], "seeds": len(group),
                    "vqc_parameters": group[0]["vqc_parameters"], "vqc_mean": v.mean(), "vqc_std": v.std(ddof=0),
                    "vqc_min": v.min(), "vqc_max": v.max(), "mlp_parameters": group[0]["mlp_parameters"],
                    "mlp_mean": m.mean(), "mlp_std": m.std(ddof=0),
                    "vqc_train_s": float(np.mean([r["vqc_train_s"] for r in group]))})
    return out


def hardware(vqc: VQCStudent, d: dict, dp: Distill, n_aer: int, seed: int) -> dict:
    exact = predict(vqc, d["test_x"]).argmax(1)
    shots = predict_backend(vqc, d["test_x"], {"kind": "shots", "shots": 1024, "seed": seed})[0].argmax(1)
    idx = np.random.default_rng(seed).permutation(len(d["test_y"]))[:n_aer]
    y = d["test_y"][idx]
    out = {"exact_accuracy": float((exact == d["test_y"]).mean()),
           "shots1024_accuracy": float((shots == d["test_y"]).mean()), "shots1024_inputs": len(shots),
           "same_inputs": len(idx), "exact_accuracy_same_inputs": float((exact[idx] == y).mean()),
           "shots1024_accuracy_same_inputs": float((shots[idx] == y).mean())}
    for i, spec in enumerate(dp.backends):
        t0 = time.perf_counter()
        readout, res = readout_backend(vqc, d["test_x"][idx], spec, f"distill.backends[{i}]")
        pred = head_logits(vqc, readout).argmax(1)
        out[res.backend] = {"accuracy_same_inputs": float((pred == y).mean()), "spec": spec.model_dump(),
                            "depth": res.depth, "two_qubit_gates": res.two_qubit_gates, "swaps": res.swaps,
                            "seconds": time.perf_counter() - t0}
    return out


def plot(summary: list[dict], teacher_q: dict) -> list[dict]:
    points = [{"model": "teacher (MiniLM frozen + linear head)", "parameters": teacher_q["parameters"],
               "accuracy": teacher_q["accuracy"]}]
    for s in summary:
        cfg = f"n{s['n_qubits']}-L{s['layers']}"
        points += [{"model": f"vqc {cfg}", "parameters": s["vqc_parameters"], "accuracy": s["vqc_mean"]},
                   {"model": f"mlp (budget of {cfg})", "parameters": s["mlp_parameters"], "accuracy": s["mlp_mean"]}]
    (RESULTS / "distill_plot.json").write_text(json.dumps(points, indent=2, default=float))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return points
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker in (("vqc", "o"), ("mlp", "s"), ("teacher", "*")):
        pts = [p for p in points if p["model"].startswith(kind)]
        ax.scatter([p["parameters"] for p in pts], [p["accuracy"] for p in pts], marker=marker, label=kind)
    ax.set(xscale="log", xlabel="trainable parameters (teacher: all)", ylabel="SST-2 validation accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "distill_plot.png", dpi=120)
    return points


VARIANTS = {  # name: VQCConfig overrides, circuit learning-rate factor
    "trained": ({}, 1.0), "frozen": ({"ablation": "frozen"}, 1.0), "twin": ({"ablation": "twin"}, 1.0),
    "reupload": ({"reupload": True}, 1.0), "init_scale_1": ({"init_scale": 1.0}, 1.0),
    "circuit_lr_x10": ({}, 10.0), "probs_readout": ({"readout": "probs"}, 1.0),
    "pca": ({"projection": "pca"}, 1.0), "pca_frozen": ({"projection": "pca", "ablation": "frozen"}, 1.0),
    "pca_twin": ({"projection": "pca", "ablation": "twin"}, 1.0),
    "probs_readout_frozen": ({"readout": "probs", "ablation": "frozen"}, 1.0),
    "probs_readout_twin": ({"readout": "probs", "ablation": "twin"}, 1.0),
}


def static_inputs(data: Path, n_train: int, seed: int, dims: int, d: dict) -> dict[str, np.ndarray]:
    """The static input for the same rows as `teacher(features(...))`: token vectors of the frozen MiniLM
    (full vocabulary), PCA to `dims`, SIF weights from the train subset (cached)."""
    from transformers import AutoModel

    from qlife.loading import load_saved
    from qlife.methods.static_embed import distill_static
    from qlife.models import load_tokenizer, resolve_model

    texts, _ = read_jsonl(data / "train.jsonl")
    idx = np.random.default_rng(seed).permutation(len(texts))[:n_train]
    test_texts, _ = read_jsonl(data / "validation.jsonl")
    tok = load_tokenizer(TEACHER)
    ids = [tok(texts[i], truncation=True, max_length=64)["input_ids"] for i in idx]
    folder = CACHE / f"static_minilm_{n_train}_{seed}_{dims}"
    if (folder / "static.json").exists():
        emb = load_saved(folder).static
    else:
        emb = distill_static(AutoModel.from_pretrained(resolve_model(TEACHER)), tok, ids, dims, "full")
        emb.save(folder, tok)
    n_val = len(d["val_y"])
    x = emb.encode_ids(ids)
    test_x = emb.encode_ids([tok(t, truncation=True, max_length=64)["input_ids"] for t in test_texts])
    return {**d, "train_x": x[n_val:], "val_x": x[:n_val], "test_x": test_x, "folder": str(folder)}


def serving_costs(d_static: dict, requests: int, qubits: int) -> dict:
    """Per request through the served pyfunc, each model in its own process: MiniLM + MLP or VQC student (the
    teacher-features input) vs static table + MLP or VQC student; the encoder's classifier head and the
    students are untrained (their cost does not depend on the weights)."""
    import tempfile

    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification

    from qlife.models import load_tokenizer, resolve_model
    from qlife.servecost import measure_all

    texts, _ = read_jsonl(DATA / "validation.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "teacher"
        AutoModelForSequenceClassification.from_pretrained(resolve_model(TEACHER), num_labels=2).save_pretrained(
            model)
        load_tokenizer(TEACHER).save_pretrained(model)
        (model / "qlife.json").write_text(json.dumps({"max_length": 64, "labels": ["negative", "positive"]}))
        students = {}
        for name, dim in (("teacher_features", 384), ("static", d_static["train_x"].shape[1])):
            folder = tmp / name
            if name == "static":
                import shutil

                shutil.copytree(d_static["folder"], folder)
            folder.mkdir(exist_ok=True)
            mlp = MLPStudent(dim, 32, 2)
            save_file({k: v.contiguous() for k, v in mlp.state_dict().items()}, str(folder / "student.safetensors"))
            (folder / "student.json").write_text(json.dumps({"kind": "mlp", **mlp.config(),
                                                             "labels": ["negative", "positive"]}))
            students[name] = folder
            vqc = VQCStudent(VQCConfig(dim, 2, qubits, Distill().layers))  # cost only: untrained weights
            vfolder = folder / "vqc"
            vfolder.mkdir()
            save_file({k: v.detach().contiguous() for k, v in vqc.state_dict().items()},
                      str(vfolder / "student.safetensors"))
            (vfolder / "student.json").write_text(json.dumps({"kind": "vqc", **vqc.config(),
                                                              "labels": ["negative", "positive"]}))
        models = {"teacher": {"kind": "classifier", "artifacts": {"model": str(model)}},
                  "student_on_teacher_features": {"kind": "student", "artifacts": {
                      "model": str(model), "student": str(students["teacher_features"])}},
                  "student_on_static": {"kind": "static_student", "artifacts": {
                      "static": str(students["static"]), "student": str(students["static"])}},
                  "vqc_student_on_teacher_features": {"kind": "student", "artifacts": {
                      "model": str(model), "student": str(students["teacher_features"] / "vqc")}},
                  "vqc_student_on_static": {"kind": "static_student", "artifacts": {
                      "static": str(students["static"]), "student": str(students["static"] / "vqc")}}}
        return measure_all(models, texts[:max(requests, 32)], requests=requests, batch=32)


def students_study(a: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    d, teacher_q = teacher(features(a.data, a.train, 0), 0)
    inputs = {"teacher": d, "static": static_inputs(a.data, a.train, 0, a.static_dims, d)}
    dp = Distill()
    rows = []
    for seed in range(a.seeds):
        for inp, data in inputs.items():
            q = distil(MLPStudent(data["train_x"].shape[1], dp.hidden, 2), data, dp, dp.learning_rate,
                       dp.batch_size, a.epochs, seed)
            rows.append({"input": inp, "student": "mlp", "seed": seed, **q})
            print(f"{inp:8s} mlp        seed {seed}: {q['accuracy']:.4f}", flush=True)
            for name in a.variants:
                over, lr_factor = VARIANTS[name]
                cfg = VQCConfig(data["train_x"].shape[1], 2, a.vqc_qubits, dp.layers, tuple(dp.rotations),
                                dp.entanglement, **{"reupload": dp.reupload, "readout": dp.readout,
                                                    "init_scale": dp.init_scale, **over}, seed=seed)
                vqc = VQCStudent(cfg)
                vqc.set_scaler(data["train_x"])
                t1 = time.perf_counter()
                r = train_student(vqc, data, dp.alpha, dp.temperature, a.epochs, dp.vqc_learning_rate,
                                  dp.vqc_batch_size, dp.patience, seed, circuit_lr=dp.vqc_learning_rate * lr_factor)
                logits = predict(vqc, data["test_x"])
                sc = scores(data["test_y"], logits.argmax(1))
                rows.append({"input": inp, "student": f"vqc_{name}", "seed": seed, **sc, "train_s":
                             time.perf_counter() - t1, "epochs_run": len(r.history), "teacher_agreement": float(
                                 (logits.argmax(1) == data["test_logits"].argmax(1)).mean()),
                             "parameters": parameter_split(vqc), "weight_movement": vqc.weight_movement()})
                print(f"{inp:8s} vqc {name:14s} seed {seed}: {sc['accuracy']:.4f} (moved "
                      f"{vqc.weight_movement()['relative']:.2f} of |w0|)", flush=True)
    summary = []
    for key in dict.fromkeys((r["input"], r["student"]) for r in rows):
        acc = np.array([r["accuracy"] for r in rows if (r["input"], r["student"]) == key])
        summary.append({"input": key[0], "student": key[1], "accuracy_mean": acc.mean(),
                        "accuracy_sd": acc.std(ddof=1) if len(acc) > 1 else 0.0, "seeds": len(acc)})
    by = {(s["input"], s["student"]): s for s in summary}
    verdicts = {}
    for inp in inputs:  # does a trained circuit beat its own frozen and twin ablations beyond the seed spread?
        for trained, ablated in (("vqc_trained", ("vqc_frozen", "vqc_twin")),
                                 ("vqc_pca", ("vqc_pca_frozen", "vqc_pca_twin")),
                                 ("vqc_probs_readout", ("vqc_probs_readout_frozen", "vqc_probs_readout_twin"))):
            if (inp, trained) not in by or not all((inp, x) in by for x in ablated):
                continue
            t = by[(inp, trained)]
            margin = min(t["accuracy_mean"] - t["accuracy_sd"] - (by[(inp, x)]["accuracy_mean"] +
                                                                 by[(inp, x)]["accuracy_sd"]) for x in ablated)
            verdicts[f"{inp}/{trained}"] = {"margin_beyond_spread": margin, "beats_ablations": margin > 0}
    cost = serving_costs(inputs["static"], a.requests, a.vqc_qubits)
    meta = {"teacher": teacher_q, "settings": {"epochs": a.epochs, "seeds": a.seeds, "vqc_qubits": a.vqc_qubits,
                                               "variants": a.variants, "static_dims": a.static_dims},
            "summary": summary, "circuit_matters": verdicts, "serving": cost, "wall_s": time.perf_counter() - t0}
    path = write("distill_students", rows, meta)
    print(table(summary, ["input", "student", "accuracy_mean", "accuracy_sd", "seeds"]))
    print(json.dumps(verdicts, default=float))
    print(table([{"model": k, **v} for k, v in cost.items()], ["model", "ms_per_request_batch1", "ms_per_text_batch32",
                                                              "speedup_vs_teacher", "model_bytes", "peak_rss_mb",
                                                              "energy_kwh_per_1000_requests"]))
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 11])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--aer-samples", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="{4, 8} x {1, 2}, 2 seeds, 6 epochs, 50 aer inputs")
    ap.add_argument("--students", action="store_true", help="the students study (see the module doc) instead")
    ap.add_argument("--vqc-qubits", type=int, default=8)
    ap.add_argument("--static-dims", type=int, default=64)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--serving-only", action="store_true",
                    help="with --students: remeasure only the serving cost, keep the last run's accuracies")
    a = ap.parse_args()
    if a.students and a.serving_only:
        last = json.loads((RESULTS / "distill_students.json").read_text())
        d, _ = teacher(features(a.data, a.train, 0), 0)
        last["serving"] = serving_costs(static_inputs(a.data, a.train, 0, a.static_dims, d), a.requests,
                                                a.vqc_qubits)
        (RESULTS / "distill_students.json").write_text(json.dumps(last, indent=1, default=float))
        print(table([{"model": k, **v} for k, v in last["serving"].items()],
                    ["model", "ms_per_request_batch1", "ms_per_text_batch32", "speedup_vs_teacher", "model_bytes",
                     "peak_rss_mb", "peak_rss_growth_mb", "energy_kwh_per_1000_requests"]))
        return None
    if a.students:
        torch.set_num_threads(2)
        if a.quick:
            a.train, a.seeds, a.epochs, a.variants, a.requests = 1000, 2, 3, ["trained", "frozen", "twin"], 16
        a.seeds = max(a.seeds, 2)
        return students_study(a)
    if a.quick:
        a.qubits, a.layers, a.epochs, a.aer_samples = [4, 8], [1, 2], 6, 50
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    d, teacher_q = teacher(features(a.data, a.train, 0), 0)
    dp = Distill()
    rows, best = [], {}
    for n in a.qubits:
        for layers in a.layers:
            for seed in range(a.seeds):
                row, vqc = one_config(d, n, layers, seed, dp, a.epochs)
                rows.append(row)
                print(f"n={n} L={layers} seed={seed}: vqc {row['vqc_accuracy']:.3f} ({row['vqc_train_s']:.0f} s) "
                      f"mlp {row['mlp_accuracy']:.3f}", flush=True)
                if row["vqc_accuracy"] > best.get("acc", -1):
                    best = {"acc": row["vqc_accuracy"], "vqc": vqc, "row": row}
    summary = aggregate(rows)
    top = max(summary, key=lambda s: s["vqc_mean"])
    hw_row = max((r for r in rows if (r["n_qubits"], r["layers"]) == (top["n_qubits"], top["layers"])),
                 key=lambda r: r["vqc_accuracy"])
    vqc = best["vqc"] if best["row"] is hw_row else one_config(d, hw_row["n_qubits"], hw_row["layers"],
                                                                  hw_row["seed"], dp, a.epochs)[1]
    hw = {"n_qubits": hw_row["n_qubits"], "layers": hw_row["layers"], "seed": hw_row["seed"],
          **hardware(vqc, d, dp, a.aer_samples, 0)}
    points = plot(summary, teacher_q)
    meta = {"data": {"train": len(d["train_y"]), "val": len(d["val_y"]), "test": len(d["test_y"]),
                     "test_split": "sst2 validation (GLUE dev)", "source": str(a.data)},
            "teacher": {"kind": "MiniLM-L6 frozen mean-pooled features + logistic-regression head", **teacher_q},
            "settings": {"epochs": a.epochs, "seeds": a.seeds, "quick": a.quick, "distill": dp.model_dump()},
            "summary": summary, "best_hardware": hw, "plot": points, "wall_s": time.perf_counter() - t0}
    path = write("distill", rows, meta)
    print(f"teacher {teacher_q['accuracy']:.3f}")
    print(table(summary, ["n_qubits", "layers", "seeds", "vqc_parameters", "vqc_mean", "vqc_std", "mlp_parameters",
                          "mlp_mean", "mlp_std", "vqc_train_s"]))
    print(json.dumps(hw, default=float))
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
