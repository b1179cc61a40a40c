"""Stage 4 — core training: fine-tune the teacher as a sequence classifier.

Inputs: `paths.encoded/tokenized`, `paths.search/best.json` (used when `train.use_search`), the
pretrained teacher `train.model` (HF id or path; the MiniLM default resolves offline).
Outputs: `paths.teacher/` (safetensors + config + tokenizer), `paths.features/teacher.npz` (the
fine-tuned teacher's mean-pooled hidden states and logits per split: what students distil from),
`reports/plots/train_loss.json`. Params: `train:`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from qlife.io import atomic_path, read_json, save_npz, write_json
from qlife.ledger import measure
from qlife.methods.finetune import TrainConfig, finetune, predict_ids
from qlife.models import load_classifier, load_tokenizer
from qlife.params import Params
from qlife.quality import evaluate as quality_eval
from qlife.stage import Report
from qlife.stage import main as stage_main

HP_KEYS = ("learning_rate", "epochs", "batch_size", "max_length", "frozen_layers")


def hyperparameters(params: Params) -> tuple[TrainConfig, str]:
    tp = params.train
    hp = {k: getattr(tp, k) for k in HP_KEYS}
    source = "params"
    best = Path(params.paths.search) / "best.json"
    if tp.use_search and best.exists():
        hp.update({k: v for k, v in read_json(best)["config"].items() if k in HP_KEYS})
        source = "search"
    return TrainConfig(seed=tp.seed, class_weight=tp.class_weight, **hp), source


def run(params: Params) -> Report:
    import datasets

    tp = params.train
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    tokenizer = load_tokenizer(tp.model)
    pad_id = tokenizer.pad_token_id or 0
    cfg, hp_source = hyperparameters(params)
    overridden = {k: (getattr(tp, k), getattr(cfg, k)) for k in HP_KEYS
                  if hp_source == "search" and getattr(cfg, k) != getattr(tp, k)}
    for k, (mine, theirs) in overridden.items():  # say it: the search result wins over params.yaml here
        print(f"train: train.{k} = {mine} in params.yaml is overridden by {params.paths.search}/best.json: "
              f"{theirs} (train.use_search: true)", file=sys.stderr)
    train = ds["train"] if tp.max_train_docs is None else ds["train"].select(
        range(min(tp.max_train_docs, len(ds["train"]))))
    with measure(params.ledger) as cost:
        model = load_classifier(tp.model, num_labels=len(labels), label_names=labels)
        history = finetune(model, train["input_ids"], np.array(train["label"]), cfg, pad_id)
    quality, arrays = {}, {}
    with measure(params.ledger) as eval_cost:
        for split in ("train", "val", "test"):
            logits, hidden = predict_ids(model, ds[split]["input_ids"], cfg.max_length, pad_id,
                                         output_hidden=True)
            y = np.array(ds[split]["label"])
            arrays.update({f"{split}_hidden": hidden, f"{split}_logits": logits, f"{split}_label": y})
            if split != "train":
                q = quality_eval(y, logits.argmax(1), labels, params.quality)
                quality.update({f"{split}_{k}": v for k, v in q.items() if k != "metric"})
    with atomic_path(params.paths.teacher, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        write_json(tmp / "qlife.json", {"max_length": cfg.max_length, "labels": labels,
                                        "base_model": tp.model})
    save_npz(Path(params.paths.features) / "teacher.npz", **arrays)
    loss = history["loss"]
    write_json(Path(params.paths.reports) / "plots" / "train_loss.json",
               [{"step": i, "loss": v} for i, v in enumerate(loss)])
    n_params = sum(p.numel() for p in model.parameters())
    metric = params.quality.name
    return {"summary": {f"test_{metric}": quality["test_quality"], "test_accuracy": quality["test_accuracy"],
                        "test_macro_f1": quality["test_macro_f1"], "parameters": n_params, "steps": len(loss)},
            "methods": {"finetune": {**quality, "final_loss": float(np.mean(loss[-10:])),
                                     "parameters": n_params, "train_docs": len(train)}},
            "hyperparameters": {**cfg.__dict__, "source": hp_source},
            "decision": {"hyperparameters_from": hp_source, "metric": metric,
                         "overridden_by_search": sorted(overridden)},
            "cost": {"finetune": cost.as_dict(), "evaluate": eval_cost.as_dict()}}


def main() -> None:
    stage_main("train", run)


if __name__ == "__main__":
    main()
