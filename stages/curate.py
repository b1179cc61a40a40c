"""Stage 1 — collection & curation.

Inputs: the source in `curate.source` (built-in generator, local files, or a HF dataset) plus any
labelled feedback in `paths.incoming/*.jsonl`. Method: exact dedup on a normalised-text hash, then
near-duplicate removal on embeddings of the remaining texts by `curate.method`: classical SemDeDup (k-means,
within-cluster cosine > 1 - eps), quantum SemDeDup (q-means on amplitude/angle-encoded states, within-cluster
swap-test fidelity > (1 - eps)², `curate.quantum`), or both side by side on the same embeddings. The embeddings
(`curate.embedder`) come from the teacher's encoder (`train.model`, mean-pooled last hidden state, unit rows, as
SemDeDup uses a pretrained model) or from TF-IDF+SVD (`embed_dim` components; fast, lexical). The quantum path
loads the actual embedding width (amplitude: ceil(log2 dim) qubits, zero-padded). `curate.apply` picks whose
removals are written (default: the method run; with both, quantum).
The report compares them: removals (overall and per label, with a warning when a class loses more than
`label_loss_warn_ratio` x the overall near-duplicate rate), precision/recall/F1 against planted duplicates
(null without ground truth), the similarity and lexical overlap of the removed pairs (what can be known without
ground truth), agreement, time, and the circuits/shots/qubits the quantum method implies; its `verdict`
(qlife.verdict): quantum SemDeDup against classical SemDeDup and the exact hash in F1 against the planted
duplicates, a paired bootstrap over whole planted groups ("no ground truth" for a user's corpus).
Before dedup, `curate.splits.reference` of the documents (stratified) is held out as the monitor's reference: not
deduplicated, not trained on, not in the encoder's projection fit (stage 7 tests live windows against it).
Outputs: `paths.curated/{train,val,test,reference}.jsonl`, `removed.jsonl`, `rejects.jsonl`, `labels.json`;
`paths.live/*.jsonl` (one file per live window) and `paths.live/windows.json`; `paths.reports/dedup_pairs.md`
(a seeded sample of removed pairs per method, and the per-label table).
Params: `curate:`, and `train.model` with the teacher embedder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from qlife import parallel
from qlife.data.sources import Corpus, load_corpus
from qlife.dedup import Dedup, deduplicate, fidelity_check, stage_verdict
from qlife.io import DataError, discard, read_records_jsonl, write_json, write_jsonl, write_text
from qlife.ledger import measure
from qlife.methods.dedup_report import (
    agreement,
    label_removals,
    label_warnings,
    pair_stats,
    pairs_markdown,
    removed_pairs,
)
from qlife.methods.semdedup import dedup_scores, planted_groups
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


def hold_out_reference(docs: list[dict], params: Params) -> tuple[list[dict], list[dict]]:
    """(reference, rest): `curate.splits.reference` of the documents, stratified by label where every class has
    3+ documents, drawn before dedup (live windows are not deduplicated, so neither is the monitor's reference)."""
    share, seed = params.curate.splits.reference, params.curate.seed
    n_ref = int(round(share * len(docs)))
    if n_ref < 2 or len(docs) - n_ref < 3:
        raise DataError(f"curate.splits.reference {share:g} of {len(docs)} documents leaves {n_ref} for the "
                        f"monitor's reference and {len(docs) - n_ref} to train on: the corpus is too small")
    labels = [d["label"] for d in docs]
    strat = labels if min(np.bincount(labels)) >= 3 else None
    rest, reference = train_test_split(docs, test_size=n_ref, random_state=seed, stratify=strat)
    return reference, rest


def split(docs: list[dict], params: Params) -> dict[str, list[dict]]:
    s, seed = params.curate.splits, params.curate.seed
    labels = [d["label"] for d in docs]
    strat = labels if min(np.bincount(labels)) >= 3 else None
    train, rest = train_test_split(docs, test_size=s.val + s.test, random_state=seed, stratify=strat)
    rest_labels = [d["label"] for d in rest] if strat else None
    val, test = train_test_split(rest, test_size=s.test / (s.val + s.test), random_state=seed,
                                 stratify=rest_labels)
    return {"train": train, "val": val, "test": test}


def check_removal(dup: np.ndarray, d: Dedup, cp) -> None:
    """Refuse a near-duplicate removal that takes most of the corpus: its embeddings cannot tell texts apart."""
    near = int(((dup >= 0) & ~d.exact).sum())
    frac = near / max(len(d.rest), 1)
    if cp.max_near_dup_frac is not None and frac > cp.max_near_dup_frac:
        cos = d.embedder.get("median_cosine")
        raise DataError(
            f"near-duplicate removal would take {near} of {len(d.rest)} texts ({frac:.0%} > curate.max_near_dup_frac "
            f"{cp.max_near_dup_frac:g}): the {d.embedder.get('kind')} embeddings cannot tell the texts apart"
            + (f" (median pairwise cosine {cos:.3f}" + ("; a raw language model's hidden states point one way)"
                                                        if cos > 0.5 else ")") if cos is not None else "")
            + ": use curate.embedder: tfidf, a smaller curate.eps, or another train.model / train.pooling")


def write_live(corpus: Corpus, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.jsonl"):
        if stale.stem not in corpus.live:
            discard(stale)
    windows = {}
    for name, recs in corpus.live.items():
        write_jsonl(folder / f"{name}.jsonl", recs)
        planted = corpus.live_drift.get(name) if corpus.live_drift else None
        windows[name] = {"n": len(recs), "drift_planted": planted}
    write_json(folder / "windows.json", windows)
    return windows


# ----------------------------------------------------------------------------- stage

def run(params: Params) -> Report:
    cp, paths = params.curate, params.paths
    parallel.timings("curate", reset=True)
    corpus = load_corpus(cp.source, cp.generator)
    n_incoming = add_incoming(corpus, Path(paths.incoming))
    reference, corpus.docs = hold_out_reference(corpus.docs, params)
    texts = [d["text"] for d in corpus.docs]
    d = deduplicate(texts, params)
    dup = d.dups[cp.applied]
    check_removal(dup, d, cp)
    kept = [doc for doc, j in zip(corpus.docs, dup) if j < 0]
    splits = split(kept, params)
    windows = write_outputs(corpus, {**splits, "reference": reference}, dup, texts, params)
    groups = planted_groups([doc["id"] for doc in corpus.docs], corpus.duplicate_of) if corpus.duplicate_of else None
    methods, by_method = assess(d, corpus, texts, groups, params)
    summary = {"docs_in": len(texts), "docs_out": len(kept), "reference": len(reference),
               "rejects": len(corpus.rejects),
               "removed": int((dup >= 0).sum()), "applied": cp.applied, "embedder": d.embedder["kind"]}
    if groups is not None:
        summary.update(precision=methods[cp.applied]["precision"], recall=methods[cp.applied]["recall"])
        summary.update({f"f1_{m}": q["f1"] for m, q in methods.items()})
    report = {"summary": summary, "methods": methods, "cost": d.cost, "embedder": d.embedder,
              "splits": {k: len(v) for k, v in {**splits, "reference": reference}.items()},
              "labels": corpus.label_names,
              "incoming_docs": n_incoming, "live_windows": windows,
              "warnings": [w for ws in by_method.values() for w in ws],
              "parallel": {"placement": parallel.placement(params.orchestration).label,
                           "maps": parallel.timings("curate", reset=True)}}
    if corpus.labels_learned:  # labels learned from the data: which ones were rejected as rare (typos?)
        report["label_rejects"] = {"min_label_docs": cp.source.min_label_docs, "rare": corpus.rare_labels,
                                   "records": sum(corpus.rare_labels.values())}
    if len(d.dups) == 2:
        f1 = {m: methods[m].get("f1") for m in ("quantum", "classical")}
        report["comparison"] = {**agreement(d.dups["classical"], d.dups["quantum"], d.exact),
                                "f1_quantum_minus_classical": None if groups is None
                                else f1["quantum"] - f1["classical"],
                                "wall_s_quantum_over_classical": d.cost["quantum"]["wall_s"]
                                / max(d.cost["classical"]["wall_s"], 1e-9),
                                "fidelity_vs_cos2": fidelity_check(d, params)}
    report["decision"] = decision(params, methods, by_method[cp.applied], groups is not None, len(d.dups) == 2)
    with measure(params.ledger) as verdict_cost:
        report["verdict"] = stage_verdict(d, groups, params, report.get("comparison", {}).get("fidelity_vs_cos2"))
    report["cost"]["verdict"] = verdict_cost.as_dict()
    return report


def write_outputs(corpus, splits: dict, dup: np.ndarray, texts: list[str], params: Params) -> dict:
    """The curated splits, what was removed (and of what it is a duplicate), the rejects, the labels, the live
    windows; returns the windows written."""
    out = Path(params.paths.curated)
    for name, docs in splits.items():
        write_jsonl(out / f"{name}.jsonl", docs)
    write_jsonl(out / "removed.jsonl", ({"id": corpus.docs[i]["id"], "duplicate_of": corpus.docs[j]["id"],
                                          "text": texts[i]} for i, j in enumerate(dup) if j >= 0))
    write_jsonl(out / "rejects.jsonl", corpus.rejects)
    write_json(out / "labels.json", corpus.label_names)
    return write_live(corpus, Path(params.paths.live))


def assess(d, corpus, texts: list[str], groups, params: Params) -> tuple[dict, dict]:
    """Per method: quality against the planted ground truth, removals per label, removed pairs; the per-label
    warnings (printed), and reports/dedup_pairs.md. Returns (methods, warnings by method)."""
    cp = params.curate
    labels = np.array([doc["label"] for doc in corpus.docs])
    tables = {m: label_removals(x, d.exact, labels, corpus.label_names) for m, x in d.dups.items()}
    pairs = {m: removed_pairs(x, d.exact, d.rest, d.X, texts) for m, x in d.dups.items()}
    methods = {m: {**quality(x, d.exact, groups, corpus), **d.details[m], "per_label": tables[m],
                   "pairs": pair_stats(pairs[m], labels)} for m, x in d.dups.items()}
    by_method = {m: label_warnings(m, tables[m], cp.label_loss_warn_ratio) for m in d.dups}
    warnings = [w for ws in by_method.values() for w in ws]
    for w in warnings:
        print(f"curate: warning: {w}", file=sys.stderr)
    write_text(Path(params.paths.reports) / "dedup_pairs.md",
               pairs_markdown(corpus.docs, corpus.label_names, d.embedder, methods, tables, pairs, warnings,
                              cp.eps, cp.applied, cp.report_pairs, cp.seed))
    return methods, by_method


def decision(params: Params, methods: dict, warnings: list[str], truth: bool, both: bool) -> dict:
    """What was applied and why, for consumers that read `decision` only."""
    cp = params.curate
    m = methods[cp.applied]
    why = (f"curate.apply={cp.apply}" if cp.apply else
           "curate.apply unset: with method both the quantum removals are written" if both else
           f"curate.method={cp.method} is the one run")
    why += f"; {m['exact_removed']} exact-hash and {m['near_removed']} near-duplicate removals (eps {cp.eps:g})"
    if truth:
        why += f"; F1 vs planted duplicates {m['f1']:.3f}"
        if both:
            why += f" (classical {methods['classical']['f1']:.3f}, quantum {methods['quantum']['f1']:.3f})"
    else:
        why += "; no ground truth: precision/recall unknown, removed pairs sampled in dedup_pairs.md"
    if warnings:
        why += f"; {len(warnings)} class(es) lose disproportionately (see warnings)"
    return {"applied": cp.applied, "removed": m["removed"], "warnings": list(warnings), "why": why}


def quality(dup: np.ndarray, exact: np.ndarray, groups: list | None, corpus: Corpus) -> dict:
    """Removal counts, and precision/recall/F1 against the planted duplicates (None without ground truth)."""
    removed = dup >= 0
    q = {"removed": int(removed.sum()), "exact_removed": int(exact.sum()),
         "near_removed": int(removed.sum() - exact.sum())}
    if groups is None:
        q.update(precision=None, recall=None, f1=None)
    else:
        q.update(dedup_scores(removed, groups))
        copies = np.array([d["id"] in corpus.exact_copies for d in corpus.docs])
        q["planted_exact"] = int(copies.sum())
        q["planted_near"] = len(corpus.duplicate_of) - int(copies.sum())
    return q


def main() -> None:
    stage_main("curate", run)


if __name__ == "__main__":
    main()
