"""Stage 1 — collection & curation.

Inputs: the source in `curate.source` (built-in generator, local files, or a HF dataset) plus any
labelled feedback in `paths.incoming/*.jsonl`. Method: exact dedup on a normalised-text hash, then
SemDeDup near-duplicate removal (TF-IDF+SVD embedding, k-means, within-cluster cosine > 1 - eps).
Outputs: `paths.curated/{train,val,test}.jsonl`, `removed.jsonl`, `rejects.jsonl`, `labels.json`;
`paths.live/*.jsonl` (one file per live window) and `paths.live/windows.json`.
Params: `curate:`. Report: documents in/out, removals, precision/recall vs planted duplicates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from qlife.data.sources import Corpus, load_corpus
from qlife.io import read_records_jsonl, write_json, write_jsonl
from qlife.ledger import measure
from qlife.methods.embed import tfidf_svd_embed
from qlife.methods.semdedup import dedup_scores, exact_duplicate_of, planted_groups, semdedup_classical
from qlife.params import Params
from qlife.stage import Report
from qlife.stage import main as stage_main


def add_incoming(corpus: Corpus, folder: Path) -> int:
    """Labelled feedback (e.g. a drifted live window promoted by the monitoring flow) joins the corpus."""
    added = 0
    for f in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        recs, rejects = read_records_jsonl(f)
        for i, r in enumerate(recs):
            r["id"] = f"in-{f.stem}-{i:06d}"
        corpus.docs += recs
        corpus.rejects += rejects
        added += len(recs)
    return added


def deduplicate(texts: list[str], params: Params) -> tuple[np.ndarray, np.ndarray, dict]:
    """duplicate_of (index of the kept representative, -1 if kept), the exact-hash mask, costs."""
    cp = params.curate
    with measure(params.ledger) as exact_cost:
        dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    with measure(params.ledger) as near_cost:
        X = tfidf_svd_embed([texts[i] for i in rest], dim=cp.embed_dim, seed=cp.seed)
        res = semdedup_classical(X, n_clusters=min(cp.n_clusters, len(rest)), eps=cp.eps,
                                 seed=cp.seed, keep=cp.keep)
    exact = dup >= 0
    near = res.duplicate_of >= 0
    dup[rest[near]] = rest[res.duplicate_of[near]]
    return dup, exact, {"exact_hash": exact_cost.as_dict(), "classical": near_cost.as_dict(),
                 "n_pairs_compared": int(res.n_pairs_compared)}


def split(docs: list[dict], params: Params) -> dict[str, list[dict]]:
    s, seed = params.curate.splits, params.curate.seed
    labels = [d["label"] for d in docs]
    strat = labels if min(np.bincount(labels)) >= 3 else None
    train, rest = train_test_split(docs, test_size=s.val + s.test, random_state=seed, stratify=strat)
    rest_labels = [d["label"] for d in rest] if strat else None
    val, test = train_test_split(rest, test_size=s.test / (s.val + s.test), random_state=seed,
                                 stratify=rest_labels)
    return {"train": train, "val": val, "test": test}


def write_live(corpus: Corpus, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jsonl"):
        if stale.stem not in corpus.live:
            stale.unlink()
    windows = {}
    for name, recs in corpus.live.items():
        write_jsonl(folder / f"{name}.jsonl", recs)
        planted = corpus.live_drift.get(name) if corpus.live_drift else None
        windows[name] = {"n": len(recs), "drift_planted": planted}
    write_json(folder / "windows.json", windows)
    return windows


def run(params: Params) -> Report:
    cp, paths = params.curate, params.paths
    corpus = load_corpus(cp.source, cp.generator)
    n_incoming = add_incoming(corpus, Path(paths.incoming))
    texts = [d["text"] for d in corpus.docs]
    dup, exact, cost = deduplicate(texts, params)
    removed = dup >= 0
    kept = [d for d, r in zip(corpus.docs, removed) if not r]
    splits = split(kept, params)
    out = Path(paths.curated)
    for name, docs in splits.items():
        write_jsonl(out / f"{name}.jsonl", docs)
    write_jsonl(out / "removed.jsonl", ({"id": corpus.docs[i]["id"], "duplicate_of": corpus.docs[j]["id"],
                                          "text": texts[i]} for i, j in enumerate(dup) if j >= 0))
    write_jsonl(out / "rejects.jsonl", corpus.rejects)
    write_json(out / "labels.json", corpus.label_names)
    windows = write_live(corpus, Path(paths.live))
    quality = {"removed": int(removed.sum()), "exact_removed": int(exact.sum()),
               "near_removed": int(removed.sum() - exact.sum())}
    groups = planted_groups([d["id"] for d in corpus.docs], corpus.duplicate_of) if corpus.duplicate_of else None
    if groups is not None:
        quality.update(dedup_scores(removed, groups))
        copies = np.array([d["id"] in corpus.exact_copies for d in corpus.docs])
        quality["planted_exact"] = int(copies.sum())
        quality["planted_near"] = len(corpus.duplicate_of) - int(copies.sum())
    summary = {"docs_in": len(texts), "docs_out": len(kept), "rejects": len(corpus.rejects),
               "removed": quality["removed"]}
    if groups is not None:
        summary.update(precision=quality["precision"], recall=quality["recall"])
    return {"summary": summary, "methods": {"classical": quality},
            "n_pairs_compared": cost.pop("n_pairs_compared"), "cost": cost,
            "splits": {k: len(v) for k, v in splits.items()}, "labels": corpus.label_names,
            "incoming_docs": n_incoming, "live_windows": windows}


def main() -> None:
    stage_main("curate", run)


if __name__ == "__main__":
    main()
