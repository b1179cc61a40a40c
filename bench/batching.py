"""Length-grouped batches: fine-tuning steps and inference on the default corpus, grouped vs plain order.

    python -m bench.batching [--steps 20] [--docs 640]   (after `make run`: reads data/encoded/tokenized)

Same model (train.model), same documents, same batch size, one process, alternating order; prints seconds per
step / per document and the ratio. Writes bench/results/batching.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    import datasets

    from qlife.classifiers import load_classifier
    from qlife.methods.finetune import TrainConfig, collate, finetune, predict_ids
    from qlife.models import load_tokenizer
    from qlife.params import load_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--docs", type=int, default=640)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()
    params = load_params()
    ds = datasets.load_from_disk(str(Path(params.paths.encoded) / "tokenized"))
    ids, y = ds["train"]["input_ids"][: args.docs], np.array(ds["train"]["label"][: args.docs])
    pad = load_tokenizer(params.train.model).pad_token_id or 0
    n_labels = int(y.max()) + 1
    out: dict = {"docs": len(ids), "steps": args.steps, "max_length": args.max_length,
                 "threads": torch.get_num_threads()}
    for grouped in (False, True, False, True):
        model = load_classifier(params.train.model, num_labels=n_labels)
        cfg = TrainConfig(epochs=1, max_steps=args.steps, max_length=args.max_length, group_by_length=grouped)
        t0 = time.perf_counter()
        finetune(model, ids, y, cfg, pad)
        out.setdefault(f"train_s_per_step_{'grouped' if grouped else 'random'}", []).append(
            (time.perf_counter() - t0) / args.steps)
    model.eval()
    for order in ("plain", "sorted", "plain", "sorted"):
        t0 = time.perf_counter()
        if order == "sorted":
            predict_ids(model, ids, args.max_length, pad)
        else:  # the previous implementation: batches in input order
            with torch.no_grad():
                for i in range(0, len(ids), 64):
                    model(**collate(ids[i:i + 64], args.max_length, pad))
        out.setdefault(f"infer_ms_per_doc_{order}", []).append((time.perf_counter() - t0) * 1000 / len(ids))
    summary = {k: float(np.median(v)) for k, v in out.items() if isinstance(v, list)}
    summary["train_speedup"] = summary["train_s_per_step_random"] / summary["train_s_per_step_grouped"]
    summary["infer_speedup"] = summary["infer_ms_per_doc_plain"] / summary["infer_ms_per_doc_sorted"]
    out["median"] = summary
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/batching.json").write_text(json.dumps(out, indent=2))
    for k, v in summary.items():
        print(f"{k}: {v:.4g}")


if __name__ == "__main__":
    main()
