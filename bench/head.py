"""Stage 4 on SST-2: the hybrid quantum classification head against classical heads, Adam against QNG.

    python -m bench.head [--seeds 5] [--n-train 8000] [--ft-train 1600] [--ft-epochs 2] [--ft-seeds 3] [--quick]
                          [--skip-frozen] [--skip-finetune]

Data: `../shared/datasets/sst2`: a seeded train subset (10% of it held out: validation loss, early stopping)
and the GLUE validation split (872) as test, embedded once by the frozen MiniLM-L6 teacher (mean-pooled, the
cache of bench.distill).

1. Frozen embeddings, head-only training (qlife.methods.finetune.fit_head, AdamW 3e-3, up to 20 epochs, stopped
   after 5 without a better validation loss, the weights of the best kept), `--seeds` seeds: linear; MLP
   with as many parameters as the 4-qubit quantum head;
   SVM (scikit-learn SVC, RBF, C=1); the quantum head (train.quantum_head defaults: 4 qubits, 2 layers) with
   its circuit trained by Adam, by QNG, and frozen at initialisation (the ablation); a 1-qubit, 3-layer
   re-uploading head with fewer parameters than the linear head.
2. A short full fine-tune of MiniLM (qlife.methods.finetune, `--ft-train` sentences, `--ft-epochs`, AdamW 5e-5 for
   the encoder, the encoder trained too), `--ft-seeds` seeds: linear (the head at the encoder's rate, as train
   does by default), linear and matched MLP with the head at 3e-3, quantum (Adam), quantum (QNG), quantum frozen
   circuit (the quantum head's projection and readout at quantum_head.head_learning_rate, 3e-3).

Per head: test accuracy and macro-F1 (mean, standard deviation over seeds), trainable parameters by part,
steps to the best validation loss, seconds; QNG vs Adam: validation loss against steps and against wall seconds,
and the steps each needs to reach Adam's best validation loss. Writes bench/results/head.json and head.png.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.common import RESULTS, environment, table
from bench.distill import DATA, TEACHER, features, read_jsonl

OUT = RESULTS / "head.json"


def _summary(rows: list[dict]) -> dict:
    acc = [r["test_accuracy"] for r in rows]
    f1 = [r["test_macro_f1"] for r in rows]

    def sd(v: list[float]) -> float:
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    return {"accuracy_mean": float(np.mean(acc)), "accuracy_sd": sd(acc), "macro_f1_mean": float(np.mean(f1)),
            "macro_f1_sd": sd(f1), "seeds": len(rows), **{k: rows[0][k] for k in ("parameters",) if k in rows[0]},
            "best_step_mean": float(np.mean([r["best_step"] for r in rows])) if "best_step" in rows[0] else None,
            "wall_s_mean": float(np.mean([r["wall_s"] for r in rows]))}


def steps_to_reach(val_loss: list[float], steps: list[int], target: float) -> int | None:
    """The first step at which a validation-loss curve is at or below `target`; None if it never is."""
    for s, v in zip(steps, val_loss):
        if v <= target + 1e-9:
            return s
    return None


def frozen_study(args: argparse.Namespace) -> dict:
    import torch
    from sklearn.svm import SVC

    from qlife.methods.finetune import HeadFit, fit_head, head_logits
    from qlife.methods.qhead import QuantumHead, QuantumHeadConfig, mlp_head, mlp_hidden_matching, parameter_split
    from qlife.params import QuantumHead as QHParams
    from qlife.quality import scores

    f = features(DATA, args.n_train, 0)
    n_val = len(f["train_y"]) // 10
    X, y = f["train_x"][n_val:], f["train_y"][n_val:]
    Xv, yv, Xt, yt = f["train_x"][:n_val], f["train_y"][:n_val], f["test_x"], f["test_y"]
    d, c = X.shape[1], 2
    qp = QHParams()
    q4 = QuantumHeadConfig.from_dict(qp.head_config())
    q1 = QuantumHeadConfig(qubits=1, layers=3, rotations=("ry", "rz"))
    matched = mlp_hidden_matching(parameter_split(QuantumHead(d, c, q4))["head"], d, c)
    base = HeadFit(epochs=args.epochs, patience=args.patience, batch_size=64, learning_rate=3e-3,
                   circuit_learning_rate=qp.learning_rate,
                   qng_learning_rate=qp.qng_learning_rate, qng_regularization=qp.qng_regularization,
                   qng_metric_rows=qp.qng_metric_rows)
    heads = {
        "linear": lambda s: (torch.nn.Linear(d, c), {}),
        f"mlp_matched (h={matched})": lambda s: (mlp_head(d, matched, c, seed=s), {}),
        "quantum 4q adam": lambda s: (QuantumHead(d, c, QuantumHeadConfig(**{**q4.__dict__, "seed": s})), {}),
        "quantum 4q qng": lambda s: (QuantumHead(d, c, QuantumHeadConfig(**{**q4.__dict__, "seed": s})),
                                     {"quantum_optimizer": "qng"}),
        "quantum 4q frozen circuit": lambda s: (QuantumHead(d, c, QuantumHeadConfig(**{**q4.__dict__, "seed": s})),
                                                {"freeze_circuit": True}),
        "quantum 1q x3 adam": lambda s: (QuantumHead(d, c, QuantumHeadConfig(**{**q1.__dict__, "seed": s})), {}),
    }
    runs: dict[str, list[dict]] = {}
    for name, make in heads.items():
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            head, over = make(seed)
            r = fit_head(head, X, y, Xv, yv, c, HeadFit(**{**base.__dict__, **over, "seed": seed}))
            q = scores(yt, head_logits(head, Xt, r["scaler"]).argmax(1))
            h = r["history"]
            per_epoch = len(h["loss"]) // max(len(h["val_loss"]), 1)
            runs.setdefault(name, []).append({
                "seed": seed, "test_accuracy": q["accuracy"], "test_macro_f1": q["macro_f1"],
                "parameters": parameter_split(head)["head"], "best_step": r["best_step"],
                "best_val_loss": r["best_val_loss"], "wall_s": r["wall_s"], "val_loss": h["val_loss"],
                "val_steps": [per_epoch * (i + 1) for i in range(len(h["val_loss"]))],
                "val_wall_s": [h["wall_s"][per_epoch * (i + 1) - 1] for i in range(len(h["val_loss"]))],
                "metric": r["metric"]})
            print(f"frozen {name:28s} seed {seed}: acc {q['accuracy']:.4f} f1 {q['macro_f1']:.4f} "
                  f"best val {r['best_val_loss']:.4f} @ {r['best_step']} ({r['wall_s']:.1f} s)", flush=True)
    t0 = time.perf_counter()
    svm = [scores(yt, SVC(C=1.0, kernel="rbf").fit((X - X.mean(0)) / (X.std(0) + 1e-6), y).predict(
        (Xt - X.mean(0)) / (X.std(0) + 1e-6)))]
    svm_row = {"seed": 0, "test_accuracy": svm[0]["accuracy"], "test_macro_f1": svm[0]["macro_f1"],
               "parameters": None, "wall_s": time.perf_counter() - t0}
    runs["svm (rbf, C=1)"] = [svm_row]  # deterministic: one fit
    return {"runs": runs, "summary": {k: _summary(v) for k, v in runs.items()},
            "qng_vs_adam": qng_vs_adam(runs["quantum 4q adam"], runs["quantum 4q qng"]),
            "data": {"train": len(y), "val": len(yv), "test": len(yt), "dim": d, "encoder": TEACHER}}


def qng_vs_adam(adam: list[dict], qng: list[dict]) -> dict:
    """Per seed: Adam's best validation loss, and the steps (and seconds) Adam and QNG take to reach it."""
    rows = []
    for a, q in zip(adam, qng):
        target = min(a["val_loss"])
        sa, sq = steps_to_reach(a["val_loss"], a["val_steps"], target), steps_to_reach(q["val_loss"], q["val_steps"],
                                                                                   target)
        wq = None if sq is None else q["val_wall_s"][q["val_steps"].index(sq)]
        rows.append({"seed": a["seed"], "adam_best_val_loss": target, "qng_best_val_loss": min(q["val_loss"]),
                     "adam_steps": sa, "qng_steps": sq, "adam_wall_s": a["val_wall_s"][a["val_steps"].index(sa)],
                     "qng_wall_s": wq})
    reached = [r for r in rows if r["qng_steps"] is not None]
    return {"rows": rows, "qng_reached": len(reached), "seeds": len(rows),
            "qng_fewer_steps": sum(r["qng_steps"] < r["adam_steps"] for r in reached)}


def finetune_study(args: argparse.Namespace) -> dict:
    from qlife.classifiers import load_classifier, quantum_head_of
    from qlife.methods.finetune import TrainConfig, finetune, predict_ids
    from qlife.methods.qhead import QuantumHead, QuantumHeadConfig, mlp_hidden_matching, parameter_split
    from qlife.models import load_tokenizer
    from qlife.params import QuantumHead as QHParams
    from qlife.quality import scores

    texts, y = read_jsonl(DATA / "train.jsonl")
    idx = np.random.default_rng(1).permutation(len(texts))[: args.ft_train + args.ft_val]
    tr, va = idx[: args.ft_train], idx[args.ft_train:]
    test_texts, yt = read_jsonl(DATA / "validation.jsonl")
    tok = load_tokenizer(TEACHER)

    def ids(ts):
        return [tok(t, truncation=True, max_length=64)["input_ids"] for t in ts]

    tr_ids, va_ids, te_ids = ids([texts[i] for i in tr]), ids([texts[i] for i in va]), ids(test_texts)
    qp = QHParams()
    matched = mlp_hidden_matching(parameter_split(QuantumHead(384, 2, QuantumHeadConfig.from_dict(qp.head_config())))
                                  ["head"], 384, 2)
    variants = {"linear": ("linear", {}), "linear, head lr 3e-3": ("linear", {"head_learning_rate": 3e-3}),
                f"mlp_matched (h={matched}), head lr 3e-3": ("mlp", {"head_learning_rate": 3e-3}),
                "quantum adam": ("quantum", {}), "quantum qng": ("quantum", {"quantum_optimizer": "qng"}),
                "quantum frozen circuit": ("quantum", {"freeze_circuit": True})}
    runs: dict[str, list[dict]] = {}
    for name, (head, over) in variants.items():
        for seed in range(args.ft_seeds):
            model = load_classifier(TEACHER, num_labels=2, head=head, hidden=matched,
                                    quantum={**qp.head_config(), "seed": seed})
            cfg = TrainConfig(**{**qp.training("adam"), **over}, learning_rate=5e-5, epochs=args.ft_epochs,
                              batch_size=32, max_length=64, seed=seed, head=head, eval_points=args.ft_eval_points)
            t0 = time.perf_counter()
            hist = finetune(model, tr_ids, y[tr], cfg, tok.pad_token_id or 0, val=(va_ids, y[va]))
            wall = time.perf_counter() - t0
            logits, _ = predict_ids(model, te_ids, 64, tok.pad_token_id or 0)
            q = scores(yt, logits.argmax(1))
            best = min(hist["val_loss"], key=lambda sv: sv[1])
            qh = quantum_head_of(model)
            runs.setdefault(name, []).append({
                "seed": seed, "test_accuracy": q["accuracy"], "test_macro_f1": q["macro_f1"],
                "parameters": parameter_split(model.classifier)["head"], "trainable": parameter_split(model),
                "best_step": best[0], "best_val_loss": best[1], "val_loss": hist["val_loss"], "wall_s": wall,
                "metric": hist["metric"], "circuit_weights_norm": float(qh.circuit.weights.norm()) if qh else None})
            print(f"finetune {name:24s} seed {seed}: acc {q['accuracy']:.4f} f1 {q['macro_f1']:.4f} best val "
                  f"{best[1]:.4f} @ {best[0]} ({wall:.0f} s)", flush=True)
    return {"runs": runs, "summary": {k: _summary(v) for k, v in runs.items()},
            "data": {"train": len(tr), "val": len(va), "test": len(yt), "epochs": args.ft_epochs,
                     "encoder": TEACHER}}


def plot(res: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = res["frozen"]["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, color in (("quantum 4q adam", "C0"), ("quantum 4q qng", "C3"), ("quantum 4q frozen circuit", "C7")):
        for i, r in enumerate(runs[name]):
            kw = {"color": color, "lw": 1, "alpha": 0.8, "label": name if i == 0 else None}
            axes[0].plot(r["val_steps"], r["val_loss"], **kw)
            axes[1].plot(r["val_wall_s"], r["val_loss"], **kw)
    axes[0].set_xlabel("steps")
    axes[1].set_xlabel("wall seconds")
    for ax in axes:
        ax.set_ylabel("validation loss")
        ax.set_title("SST-2, frozen MiniLM, head only")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5, help="epochs without a better validation loss before stopping")
    ap.add_argument("--ft-train", type=int, default=1600)
    ap.add_argument("--ft-epochs", type=int, default=2, help="600 sentences x 1 epoch (19 steps) left every head at "
                    "the majority class")
    ap.add_argument("--ft-val", type=int, default=200)
    ap.add_argument("--ft-seeds", type=int, default=3)
    ap.add_argument("--ft-eval-points", type=int, default=4)
    ap.add_argument("--skip-finetune", action="store_true", help="keep the fine-tune part of the last head.json")
    ap.add_argument("--skip-frozen", action="store_true", help="keep the frozen-embedding part of the last head.json")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 5 epochs, a 200-sentence fine-tune")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.ft_train, args.ft_val, args.ft_seeds = 2, 5, 200, 100, 2
    last = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.skip_frozen and not last.get("frozen"):
        raise SystemExit(f"--skip-frozen: {OUT} has no frozen part to keep")
    res = {"config": vars(args), "environment": environment(),
           "frozen": last["frozen"] if args.skip_frozen else frozen_study(args)}
    if args.skip_finetune and OUT.exists():
        res["finetune"] = last.get("finetune")
    elif not args.skip_finetune:
        res["finetune"] = finetune_study(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1, default=float))
    plot(res, OUT.with_suffix(".png"))
    for part in ("frozen", "finetune"):
        if res.get(part):
            rows = [{"head": k, **v} for k, v in res[part]["summary"].items()]
            print(f"\n{part}:\n" + table(rows, ["head", "accuracy_mean", "accuracy_sd", "macro_f1_mean", "macro_f1_sd",
                                                 "parameters", "best_step_mean", "wall_s_mean", "seeds"]))
    qa = res["frozen"]["qng_vs_adam"]
    print(f"\nQNG reached Adam's best validation loss on {qa['qng_reached']}/{qa['seeds']} seeds, in fewer steps on "
          f"{qa['qng_fewer_steps']}")
    print(f"wrote {OUT} and {OUT.with_suffix('.png')}")


if __name__ == "__main__":
    main()
