"""Stage 4 — core training: fine-tune the teacher as a sequence classifier.

Inputs: `paths.encoded/tokenized`, `paths.search/train_config.json` (the hyperparameters, resolved by the
`hyperparameters` step from the search result or params.yaml: see qlife/hyperparameters.py; train does not
read `train.learning_rate` etc. itself), the pretrained teacher `train.model` (HF id or path; the MiniLM
default resolves offline).
Outputs: `paths.teacher/` (safetensors + config + tokenizer), `paths.features/teacher.npz` (the
fine-tuned teacher's mean-pooled hidden states and logits per split: what students distil from),
`reports/plots/train_loss.json`. Params: `train.model`, `train.class_weight`, `train.max_train_docs`,
`train.seed`, `quality`, `ledger`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qlife import hyperparameters
from qlife.io import atomic_path, read_json, save_npz, write_json
from qlife.ledger import measure
from qlife.methods.finetune import TrainConfig, finetune, predict_ids
from qlife.models import load_classifier, load_tokenizer
from qlife.params import Params
from qlife.quality import evaluate as quality_eval
from qlife.stage import Report
from qlife.stage import main as stage_main


def run(params: Params) -> Report:
    import datasets

    tp = params.train
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    labels = read_json(Path(params.paths.curated) / "labels.json")
    tokenizer = load_tokenizer(tp.model)
    pad_id = tokenizer.pad_token_id or 0
    resolved = hyperparameters.read(params)
    hp_source = resolved["source"]
    cfg = TrainConfig(seed=tp.seed, class_weight=tp.class_weight, group_by_length=tp.group_by_length,
                      **resolved["config"])
    train = ds["train"] if tp.max_train_docs is None else ds["train"].select(
        range(min(tp.max_train_docs, len(ds["train"]))))
    with measure(params.ledger) as cost:
        model = load_classifier(tp.model, num_labels=len(labels), label_names=labels, head=cfg.head)
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
            # which params.yaml values the search overrode: metrics/hyperparameters.json (not a train input)
            "decision": {"hyperparameters_from": hp_source, "metric": metric},
            "cost": {"finetune": cost.as_dict(), "evaluate": eval_cost.as_dict()}}


def main() -> None:
    stage_main("train", run)


if __name__ == "__main__":
    main()
