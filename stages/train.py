"""Stage 4 — core training: fine-tune the teacher as a sequence classifier.

Inputs: `paths.encoded/tokenized`, `paths.search/train_config.json` (the hyperparameters, resolved by the
`hyperparameters` step from the search result or params.yaml: see qlife/hyperparameters.py; train does not
read `train.learning_rate` etc. itself), the pretrained teacher `train.model` (HF id or path; the MiniLM
default resolves offline).
Outputs: `paths.teacher/` (safetensors + config + tokenizer), `paths.features/teacher.npz` (the
fine-tuned teacher's mean-pooled hidden states and logits per split: what students distil from),
`reports/plots/train_loss.json`. Params: `train.model`, `train.class_weight`, `train.max_train_docs`,
`train.seed`, `train.quantum_head` / `train.quantum_optimizer` (a quantum head: qlife.methods.qhead, its circuit
trained by AdamW or quantum natural gradient), `train.eval_points`, `train.head_baselines`, `quality`, `ledger`.

Same-run head baselines (`train.head_baselines`): on the fine-tuned encoder's classifier inputs (the features
the trained head sees), head-only training of a linear head, an MLP head with as many parameters as the trained
head, the hybrid quantum head (`train.quantum_head`, its circuit by `train.quantum_optimizer`) and the same head
with its circuit frozen at initialisation (does the circuit learn anything?). Seconds, not a second fine-tune.
Verdict (`quality:` metric, paired bootstrap over the test documents): the quantum head against its frozen-circuit
ablation (the twin) and the best of the linear and matched-MLP heads, all trained head-only on the same features.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from qlife import hyperparameters
from qlife.classifiers import head_module, load_classifier, quantum_head_of
from qlife.io import atomic_path, read_json, save_npz, write_json
from qlife.ledger import measure
from qlife.methods.finetune import (
    HeadFit,
    TrainConfig,
    finetune,
    fit_head,
    head_logits,
    predict_with_head_inputs,
    torch_threads,
)
from qlife.methods.qhead import (
    QuantumHead,
    QuantumHeadConfig,
    mlp_head,
    mlp_hidden_matching,
    parameter_split,
)
from qlife.models import architecture, check_memory, finetune_options, load_tokenizer
from qlife.params import Params
from qlife.quality import corpus_subsample, document_verdict, stratified_subset
from qlife.quality import evaluate as quality_eval
from qlife.quantum.resources import energy_kwh, gate_qpu_seconds
from qlife.stage import Report
from qlife.stage import main as stage_main


def run(params: Params) -> Report:
    import datasets

    tp = params.train
    resolved = hyperparameters.read(params)
    hp_source = resolved["source"]
    cfg = TrainConfig(seed=tp.seed, class_weight=tp.class_weight, group_by_length=tp.group_by_length,
                      eval_points=tp.eval_points, head_learning_rate=tp.head_learning_rate,
                      **tp.quantum_head.training(tp.quantum_optimizer),
                      **finetune_options(tp.model, tp.finetune, tp.lora.model_dump()),
                      **resolved["config"])
    memory = check_memory(tp.model, "train", cfg.finetune, cfg.batch_size, cfg.max_length, tp.max_memory_share)
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    tokenizer = load_tokenizer(tp.model)
    pad_id = tokenizer.pad_token_id or 0
    train, cut = train_subsample(ds["train"], tp.max_train_docs, tp.seed)
    with measure(params.ledger) as cost:
        model = load_classifier(tp.model, num_labels=len(labels), label_names=labels, head=cfg.head,
                                quantum=tp.quantum_head.head_config(), seed=tp.seed, pooling=tp.pooling)
        history = finetune(model, train["input_ids"], np.array(train["label"]), cfg, pad_id,
                           val=(ds["val"]["input_ids"], np.array(ds["val"]["label"])))
    with measure(params.ledger) as eval_cost:
        quality, arrays, head_inputs = evaluate_splits(model, ds, cfg.max_length, pad_id, labels, params)
    save_teacher(model, tokenizer, cfg.max_length, labels, arrays, params)
    baselines, report_cost, verdict = {}, {"finetune": cost.as_dict(), "evaluate": eval_cost.as_dict()}, None
    if tp.head_baselines:
        y = {s: np.array(ds[s]["label"]) for s in head_inputs}
        with measure(params.ledger) as base_cost:
            baselines, preds, head_cost = head_baselines(model, head_inputs, y, cfg, labels, params)
        report_cost["head_baselines"] = base_cost.as_dict()
        with measure(params.ledger) as v_cost:
            verdict = heads_verdict(y["test"], preds, head_cost, labels, cfg, params, quality["test_quality"])
        report_cost["verdict_bootstrap"] = v_cost.as_dict()
    write_json(Path(params.paths.reports) / "plots" / "train_loss.json",
               [{"step": i, "loss": v} for i, v in enumerate(history["loss"])])
    finetune_row = {**quality, **training_figures(model, history, cfg), "train_docs": len(train),
                    "memory_estimate": memory}
    metric = params.quality.name
    return {"summary": {f"test_{metric}": quality["test_quality"], "test_accuracy": quality["test_accuracy"],
                        "test_macro_f1": quality["test_macro_f1"], "parameters": finetune_row["parameters"],
                        "steps": len(history["loss"]), "head": cfg.head, "finetune": cfg.finetune},
            "teacher": {"model": tp.model, **architecture(model)},
            "methods": {"finetune": finetune_row, **({"head_baselines": baselines} if baselines else {})},
            "verdict": verdict,
            "hyperparameters": {**cfg.__dict__, "source": hp_source},
            # encode.max_docs's cut of the corpus, then train.max_train_docs's of its train split
            "subsample": {"corpus": corpus_subsample(Path(params.paths.encoded) / "tokenized"), "finetune": cut},
            # which params.yaml values the search overrode: reports/hyperparameters.json (not a train input)
            "decision": {"hyperparameters_from": hp_source, "metric": metric},
            "cost": report_cost}


def train_subsample(train, max_docs: int | None, seed: int) -> tuple:
    """The fine-tuning rows: at most `train.max_train_docs` of encode's train split, stratified by label (seeded
    by `train.seed`), in their order; and what was kept of what."""
    if max_docs is None or len(train) <= max_docs:
        return train, {"kept": len(train), "of": len(train)}
    keep = np.sort(stratified_subset(np.array(train["label"]), max_docs, seed))
    return train.select(keep), {"kept": len(keep), "of": len(train), "stratified_by": "label", "seed": seed}


def evaluate_splits(model, ds, max_length: int, pad_id: int, labels: list[str], params: Params
                    ) -> tuple[dict, dict, dict]:
    """Quality on val and test; every split's logits, pooled hidden states and head inputs (the features)."""
    quality, arrays, head_inputs = {}, {}, {}
    for split in ("train", "val", "test"):
        logits, hidden, head_inputs[split] = predict_with_head_inputs(model, ds[split]["input_ids"], max_length,
                                                                      pad_id, output_hidden=True)
        y = np.array(ds[split]["label"])
        arrays.update({f"{split}_hidden": hidden, f"{split}_logits": logits, f"{split}_label": y})
        if split != "train":
            q = quality_eval(y, logits.argmax(1), labels, params.quality)
            quality.update({f"{split}_{k}": v for k, v in q.items() if k != "metric"})
    return quality, arrays, head_inputs


def save_teacher(model, tokenizer, max_length: int, labels: list[str], arrays: dict, params: Params) -> None:
    """The teacher folder (weights, tokenizer, qlife.json) swapped in whole, then the features distill reads."""
    with atomic_path(params.paths.teacher, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / "qlife.json", {"max_length": max_length, "labels": labels,
                                        "base_model": params.train.model})
    save_npz(Path(params.paths.features) / "teacher.npz", **arrays)


def training_figures(model, history: dict, cfg: TrainConfig) -> dict:
    """Loss, parameters, the best validation loss and when, the fine-tuning mode, the quantum head's cost."""
    loss, val = history["loss"], history["val_loss"]
    best = min(val, key=lambda sv: sv[1]) if val else None
    row = {"final_loss": float(np.mean(loss[-10:])), "parameters": sum(p.numel() for p in model.parameters()),
           "trainable": trainable_split(model, history.get("lora")), "head": cfg.head, "val_loss": val,
           "steps_to_best_val_loss": best[0] if best else None, "best_val_loss": best[1] if best else None,
           "finetune": cfg.finetune, "lora": history.get("lora")}
    qh = quantum_head_of(model)
    if qh is not None:
        row["quantum_head"] = {**qh.cfg.to_dict(), "optimizer": cfg.quantum_optimizer,
                               "freeze_circuit": cfg.freeze_circuit, "circuit_weights": qh.vc.num_weights,
                               "metric_cost": history["metric"] or None,
                               **quantum_training_cost(qh, len(loss), cfg)}
    return row


def trainable_split(model, lora: dict | None) -> dict:
    """Trained parameters by part; under LoRA the encoder's are the adapters' (merged into the weights now)."""
    split = parameter_split(model)
    if lora:
        split["encoder"] = lora["adapter_parameters"]
        split["total"] = split["head"] + split["encoder"]
    return split


def quantum_training_cost(qh: QuantumHead, steps: int, cfg: TrainConfig) -> dict:
    """Circuits hardware would run for the same training: per example and step one forward circuit plus two
    parameter-shift circuits per circuit weight and per input angle (the projection's gradient; the angles are
    re-uploaded in every layer), and under QNG one circuit per metric block and metric row."""
    angles = qh.cfg.qubits * qh.cfg.layers
    trained = 0 if cfg.freeze_circuit else qh.vc.num_weights
    per_example = 1 + 2 * (trained + angles)
    rows = steps * cfg.batch_size
    from qlife.quantum.qng import circuit_blocks

    metric = (steps * len(circuit_blocks(qh.vc)) * min(cfg.qng_metric_rows, cfg.batch_size)
              if cfg.quantum_optimizer == "qng" and trained else 0)
    return {"hardware_circuits_gradient": rows * per_example, "hardware_circuits_metric": metric,
            "metric_vs_gradient_circuits": metric / max(rows * per_example, 1)}


SHOTS_EST = 1024  # shots per circuit in the quantum heads' hardware-equivalent QPU estimate (an assumption)


def head_baselines(model, feats: dict[str, np.ndarray], ys: dict[str, np.ndarray], cfg: TrainConfig,
                   labels: list[str], params: Params) -> tuple[dict, dict[str, np.ndarray], dict[str, dict]]:
    """Head-only baselines on the fine-tuned model's classifier inputs `feats` (train / val / test; see the
    module docstring): per head its test quality, trainable head parameters, steps to the best validation loss,
    seconds; its test predictions; its cost (wall, CPU, kWh, and for a quantum head the circuits hardware would
    run for the same training and predictions, QPU seconds estimated at SHOTS_EST shots each). The quantum heads
    are the teacher's own circuit when it has one, else `train.quantum_head`'s."""
    d, c = feats["train"].shape[1], len(labels)
    trained = parameter_split(head_module(model))["head"]
    fit = HeadFit(epochs=20, batch_size=128, patience=5, class_weight=cfg.class_weight, seed=cfg.seed,
                  circuit_learning_rate=cfg.circuit_learning_rate, quantum_optimizer=cfg.quantum_optimizer,
                  qng_learning_rate=cfg.qng_learning_rate, qng_regularization=cfg.qng_regularization,
                  qng_metric_rows=cfg.qng_metric_rows)
    heads: dict = {"linear": (torch_linear(d, c, cfg.seed), fit),
                   "mlp_matched": (mlp_head(d, mlp_hidden_matching(trained, d, c), c, seed=cfg.seed), fit)}
    qh = quantum_head_of(model)
    qcfg = QuantumHeadConfig.from_dict(qh.cfg.to_dict() if qh is not None else params.train.quantum_head.head_config())
    heads["quantum"] = (QuantumHead(d, c, qcfg), fit)
    heads["quantum_frozen_circuit"] = (QuantumHead(d, c, qcfg), replace(fit, freeze_circuit=True))
    out, preds, cost = {}, {}, {}
    for name, (head, hf) in heads.items():
        with measure(params.ledger) as meter, torch_threads(1):  # tiny ops: one thread is fastest (finetune.py)
            r = fit_head(head, feats["train"], ys["train"], feats["val"], ys["val"], c, hf)
            preds[name] = head_logits(head, feats["test"], r["scaler"]).argmax(1)
        q = quality_eval(ys["test"], preds[name], labels, params.quality)
        out[name] = {"test_quality": q["quality"], "test_accuracy": q["accuracy"], "test_macro_f1": q["macro_f1"],
                     "trainable": parameter_split(head), "best_step": r["best_step"], "steps": r["steps"],
                     "best_val_loss": r["best_val_loss"], "wall_s": round(r["wall_s"], 2)}
        cost[name] = {k: meter.as_dict()[k] for k in ("wall_s", "cpu_s", "energy_kwh")} | {"qpu_s_est": 0.0}
        if isinstance(head, QuantumHead):
            circuits = head_fit_circuits(head, r, hf, len(ys["train"]), len(ys["val"]), len(ys["test"]))
            qpu = gate_qpu_seconds(circuits, SHOTS_EST)
            out[name]["hardware_circuits"] = circuits
            cost[name] |= {"qpu_s_est": qpu, "qpu_energy_kwh_est": energy_kwh(qpu)}
    out["features"] = {"dim": d, "train": len(ys["train"]), "what": "the fine-tuned model's classifier inputs"}
    return out, preds, cost


def head_fit_circuits(qh: QuantumHead, fit: dict, hf: HeadFit, n_train: int, n_val: int, n_test: int) -> int:
    """Circuits hardware would run for `fit_head`'s training of `qh` and its test predictions: per training example
    and epoch one forward and the parameter-shift pairs (circuit weights unless frozen, and every re-uploaded input
    angle), under QNG one per metric block and row each step, one per validation document each epoch and one per
    test document."""
    epochs = len(fit["history"]["val_loss"])
    trained = 0 if hf.freeze_circuit else qh.vc.num_weights
    gradient = epochs * n_train * (1 + 2 * (trained + qh.cfg.qubits * qh.cfg.layers))
    from qlife.quantum.qng import circuit_blocks

    metric = (fit["steps"] * len(circuit_blocks(qh.vc)) * min(hf.qng_metric_rows, hf.batch_size)
              if hf.quantum_optimizer == "qng" and trained else 0)
    return gradient + metric + epochs * n_val + n_test


def heads_verdict(y_test: np.ndarray, preds: dict[str, np.ndarray], cost: dict[str, dict], labels: list[str],
                  cfg: TrainConfig, params: Params, teacher_quality: float) -> dict:
    """The quantum head against its frozen-circuit ablation and the best of the linear and matched-MLP heads."""
    tp = params.train
    note = (f"Heads trained alone ({'QNG' if cfg.quantum_optimizer == 'qng' else 'AdamW'} for the circuit) on the "
            "fine-tuned teacher's classifier inputs; the twin is the same hybrid head with its circuit frozen at "
            "initialisation (its projection and readout trained): what the trained circuit adds. mlp_matched has "
            f"as many parameters as the teacher's {cfg.head} head. The teacher itself (fine-tuned end to end, "
            f"{cfg.head} head): test {params.quality.name} {teacher_quality:.3f}. QPU seconds: the circuits of the "
            f"same training on hardware at {SHOTS_EST} shots each (an estimate; simulated here).")
    return document_verdict(y_test, preds, labels, params.quality, "quantum", "quantum_frozen_circuit",
                            classical=["linear", "mlp_matched"], cost=cost, seed=tp.seed, note=note)


def torch_linear(d: int, c: int, seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Linear(d, c)


def main() -> None:
    stage_main("train", run)


if __name__ == "__main__":
    main()
