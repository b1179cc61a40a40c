"""Stage 2 — preprocessing & encoding.

Inputs: `paths.curated/{train,val,test}.jsonl`; the teacher's tokenizer and encoder (`train.model`).
Outputs in `paths.encoded/`: `tokenized/` (HF `datasets` DatasetDict on disk: input_ids, label, id),
`projection.npz` (PCA of the encoder's mean-pooled embeddings, fitted on train) and
`features.npz` (projected features per split, the reference for monitoring and the quantum encoders).
Params: `encode:`. Report: token statistics, truncation, bytes, explained variance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qlife.io import atomic_path, read_jsonl, save_npz
from qlife.ledger import measure
from qlife.methods.projection import fit_pca
from qlife.models import encode_texts, load_tokenizer, resolve_model
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main

SPLITS = ("train", "val", "test")


def load_splits(params: Params) -> dict[str, list[dict]]:
    return {s: read_jsonl(Path(params.paths.curated) / f"{s}.jsonl") for s in SPLITS}


def tokenize(tokenizer, splits: dict[str, list[dict]], max_length: int):
    import datasets

    parts = {}
    for name, docs in splits.items():
        enc = tokenizer([d["text"] for d in docs], truncation=True, max_length=max_length)
        parts[name] = datasets.Dataset.from_dict({"id": [d["id"] for d in docs],
                                                  "input_ids": enc["input_ids"],
                                                  "label": [d["label"] for d in docs]})
    return datasets.DatasetDict(parts)


def token_stats(tokenizer, ds, splits: dict[str, list[dict]], max_length: int) -> dict:
    lengths = np.array([len(x) for x in ds["train"]["input_ids"]])
    full = tokenizer([d["text"] for d in splits["train"]], truncation=False)["input_ids"]
    unk = tokenizer.unk_token_id
    n_tok = sum(len(x) for x in full)
    return {"mean_tokens": float(lengths.mean()), "max_tokens": int(lengths.max()),
            "truncated_frac": float(np.mean([len(x) > max_length for x in full])),
            "unk_rate": float(sum(t == unk for x in full for t in x) / max(1, n_tok)),
            "vocab_size": int(tokenizer.vocab_size),
            "token_bytes_per_doc": float(lengths.mean() * 4)}  # int32 ids


def run(params: Params) -> Report:
    from transformers import AutoModel

    enc, out = params.encode, Path(params.paths.encoded)
    splits = load_splits(params)
    with measure(params.ledger) as tok_cost:
        tokenizer = load_tokenizer(params.train.model)
        ds = tokenize(tokenizer, splits, enc.max_length)
        with atomic_path(out / "tokenized", is_dir=True) as tmp:
            ds.save_to_disk(str(tmp))
    with measure(params.ledger) as feat_cost:
        model = AutoModel.from_pretrained(resolve_model(params.train.model))
        pooled = {s: encode_texts(model, tokenizer, [d["text"] for d in docs], enc.max_length,
                                  enc.batch_size, desc=f"embed {s}")[0] for s, docs in splits.items()}
        proj = fit_pca(pooled["train"], enc.n_features)
        save_npz(out / "projection.npz", **proj.to_arrays())
        save_npz(out / "features.npz", **{s: proj.transform(x).astype(np.float32) for s, x in pooled.items()},
                 **{f"{s}_label": np.array([d["label"] for d in docs]) for s, docs in splits.items()})
    stats = token_stats(tokenizer, ds, splits, enc.max_length)
    evr = float(proj.explained_variance_ratio.sum())
    return {"summary": {"docs": sum(len(v) for v in splits.values()), "mean_tokens": stats["mean_tokens"],
                        "truncated_frac": stats["truncated_frac"], "pca_explained": evr},
            "methods": {"tokenizer": stats,
                        "projection": {"n_features": int(proj.components.shape[0]),
                                       "input_dim": int(proj.components.shape[1]),
                                       "explained_variance": evr,
                                       "float32_bytes_per_doc": int(proj.components.shape[0] * 4)}},
            "cost": {"tokenizer": tok_cost.as_dict(), "projection": feat_cost.as_dict()},
            "splits": {k: len(v) for k, v in splits.items()}}


def main() -> None:
    stage_main("encode", run)


if __name__ == "__main__":
    main()
