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
ground truth), agreement, time, and the circuits/shots/qubits the quantum method implies.
Outputs: `paths.curated/{train,val,test}.jsonl`, `removed.jsonl`, `rejects.jsonl`, `labels.json`;
`paths.live/*.jsonl` (one file per live window) and `paths.live/windows.json`; `paths.reports/dedup_pairs.md`
(a seeded sample of removed pairs per method, and the per-label table).
Params: `curate:`, and `train.model` with the teacher embedder.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from qlife import parallel
from qlife.data.sources import Corpus, load_corpus
from qlife.io import DataError, read_records_jsonl, write_json, write_jsonl, write_text
from qlife.ledger import measure
from qlife.methods.dedup_report import (
    agreement,
    label_removals,
    label_warnings,
    pair_stats,
    pairs_markdown,
    removed_pairs,
)
from qlife.methods.embed import embed_shard, tfidf_svd_embed
from qlife.methods.qencoding import n_qubits_for
from qlife.methods.qkmeans import qsemdedup, sample_pairs
from qlife.methods.semdedup import dedup_scores, exact_duplicate_of, planted_groups, semdedup_classical
from qlife.models import architecture, cached_encoder
from qlife.parallel import pmap
from qlife.params import Params
from qlife.quantum.backends import check_statevector, circuit_backend
from qlife.quantum.fidelity import compare_backends
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


MAX_AMPLITUDE_QUBITS = 12  # curate.quantum.n_qubits' own limit for amplitude encoding (4096 dims)


def _n_qubits(params: Params, dim: int) -> int:
    """Qubits for the actual embedding width `dim` (teacher: its hidden size; tfidf: embed_dim)."""
    q = params.curate.quantum
    if q.n_qubits is not None:
        return q.n_qubits
    if q.encoding == "amplitude":  # zero-padded to 2^q; wider than 2^12: SVD-reduced to 4096 (reduce_dim)
        return min(n_qubits_for("amplitude", dim), MAX_AMPLITUDE_QUBITS)
    return min(dim, 16)


def _quantum(X: np.ndarray, k: int, params: Params) -> tuple[np.ndarray, dict]:
    """Quantum SemDeDup on the same embeddings: duplicate_of (local) and the method's own figures."""
    cp, q = params.curate, params.curate.quantum
    n_qubits = _n_qubits(params, X.shape[1])
    runner = circuit_backend(q.backend, "curate.quantum.backend")
    if not runner.analytic:  # a (2n+1)-qubit swap-test circuit per fidelity
        check_statevector(2 * n_qubits + 1, "curate.quantum.n_qubits or curate.quantum.backend")
    r = qsemdedup(X, k, cp.eps, q.threshold, cp.keep, cp.seed, n_qubits, q.encoding, runner, q.max_iter, q.tol,
                  q.patience, max_circuits=q.max_circuits, param="curate.quantum.backend", pmap=cluster_map(params))
    res = r.resources
    info = {"backend": runner.name, "encoding": r.encoding, "n_qubits": r.n_qubits, "embedding_dim": int(X.shape[1]),
            "loaded_dim": 2**r.n_qubits if r.encoding == "amplitude" else r.n_qubits, "threshold": r.threshold,
            "kmeans_iterations": r.kmeans.n_iter, "kmeans_converged": r.kmeans.converged,
            "n_pairs_compared": int(r.result.n_pairs_compared), "circuits": res.circuits, "shots": res.shots,
            "shots_per_circuit": runner.shots, "swap_test_qubits": res.qubits, "swap_test_depth": res.depth,
            "swap_test_two_qubit_gates": res.two_qubit_gates, "qpu_seconds_est": res.qpu_seconds_est}
    cmp = q.compare
    if cmp.pairs and cmp.backends:  # exact beside each backend on the same pairs
        A, B = sample_pairs(r, X, cmp.pairs, cp.seed)
        info["same_pairs"] = compare_backends(A, B, r.encoding, r.n_qubits, list(cmp.backends),
                                              "curate.quantum.compare.backends", r.threshold)
    return r.result.duplicate_of, {"info": info, "resources": res.to_dict()}


def cluster_map(params: Params):
    """SemDeDup's per-cluster map on the placement `orchestration` names (serial by default)."""
    return lambda fn, items, desc: pmap(fn, items, params.orchestration, f"curate {desc}")


def teacher_embed(texts: list[str], params: Params) -> np.ndarray:
    """Unit-norm float64 rows: the teacher's (`train.model`) pooled last hidden state of each text, in shards
    of `curate.embed_shard` texts (the same shards serially or on workers: the rows do not depend on where)."""
    cp, size = params.curate, params.curate.embed_shard
    pooling = params.train.pooling
    jobs = [(params.train.model, cp.embed_max_length, texts[i: i + size], pooling)
            for i in range(0, len(texts), size)]
    parts = pmap(embed_shard, jobs, params.orchestration, "curate embed shards")
    if not parts:
        return np.zeros((0, int(cached_encoder(params.train.model, pooling)[0].config.hidden_size)))
    return np.concatenate(parts)


def embed(texts: list[str], params: Params) -> tuple[np.ndarray, dict]:
    """Embeddings of the near-duplicate candidates by `curate.embedder`, and what was used."""
    cp = params.curate
    if cp.embedder == "teacher":
        X = teacher_embed(texts, params)
        info = {"kind": "teacher", "model": params.train.model,
                **architecture(cached_encoder(params.train.model, params.train.pooling)[0]),
                "max_length": cp.embed_max_length}
    else:
        with threadpool_limits(1):
            X = tfidf_svd_embed(texts, dim=cp.embed_dim, seed=cp.seed)
        info = {"kind": "tfidf", "model": "tfidf+svd"}
    return X, {**info, "dim": int(X.shape[1]), "median_cosine": median_cosine(X, seed=cp.seed)}


@dataclass
class Dedup:
    """Both methods' decisions over all texts, and what they were made on."""

    dups: dict[str, np.ndarray]  # method -> duplicate_of over all texts (kept representative, -1 if kept)
    exact: np.ndarray  # bool (n,): removed by the exact hash
    rest: np.ndarray  # indices of the texts that went on to near-duplicate removal
    X: np.ndarray  # their embeddings (rows of `rest`), unit rows, float64
    embedder: dict
    cost: dict
    details: dict


def deduplicate(texts: list[str], params: Params) -> Dedup:
    """Exact hash, then each near-duplicate method run on the same embeddings of the remaining texts."""
    cp = params.curate
    with measure(params.ledger) as exact_cost:
        dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    k = min(cp.n_clusters, len(rest))
    cost, dups, details = {"exact_hash": exact_cost.as_dict()}, {}, {}
    with measure(params.ledger) as embed_cost:  # the teacher uses torch's threads; tfidf limits its own
        X, embedder = embed([texts[i] for i in rest], params)
    X = np.ascontiguousarray(X, dtype=np.float64)
    cost["embed"] = embed_cost.as_dict()
    with threadpool_limits(1):  # small matrices: BLAS threads oversubscribe a shared box (~10x slower)
        if cp.method in ("classical", "both"):
            with measure(params.ledger) as m:
                res = semdedup_classical(X, n_clusters=k, eps=cp.eps, seed=cp.seed, keep=cp.keep,
                                         pmap=cluster_map(params))
            local, details["classical"] = res.duplicate_of, {"n_pairs_compared": int(res.n_pairs_compared)}
            dups["classical"], cost["classical"] = _merge(dup, rest, local), m.as_dict()
        if cp.method in ("quantum", "both"):
            with measure(params.ledger) as m:
                local, qd = _quantum(X, k, params)
                m.add_quantum(qd["resources"])
            dups["quantum"], cost["quantum"], details["quantum"] = _merge(dup, rest, local), m.as_dict(), qd["info"]
    return Dedup(dups, dup >= 0, rest, X, embedder, cost, details)


def _merge(exact_dup: np.ndarray, rest: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Exact-hash duplicate_of with the near-duplicate decisions (indices into `rest`) folded in."""
    dup = exact_dup.copy()
    near = local >= 0
    dup[rest[near]] = rest[local[near]]
    return dup


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


def median_cosine(X: np.ndarray, sample: int = 1000, seed: int = 0) -> float | None:
    """Median cosine of distinct pairs of (a seeded sample of) unit rows: near 1, the embedding is anisotropic."""
    if len(X) < 2:
        return None
    idx = np.random.default_rng(seed).choice(len(X), size=min(sample, len(X)), replace=False)
    C = X[idx] @ X[idx].T
    return float(np.median(C[np.triu_indices(len(idx), 1)]))


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


# ----------------------------------------------------------------------------- stage

def run(params: Params) -> Report:
    cp, paths = params.curate, params.paths
    parallel.timings("curate", reset=True)
    corpus = load_corpus(cp.source, cp.generator)
    n_incoming = add_incoming(corpus, Path(paths.incoming))
    texts = [d["text"] for d in corpus.docs]
    d = deduplicate(texts, params)
    dup = d.dups[cp.applied]
    check_removal(dup, d, cp)
    removed = dup >= 0
    kept = [doc for doc, r in zip(corpus.docs, removed) if not r]
    splits = split(kept, params)
    out = Path(paths.curated)
    for name, docs in splits.items():
        write_jsonl(out / f"{name}.jsonl", docs)
    write_jsonl(out / "removed.jsonl", ({"id": corpus.docs[i]["id"], "duplicate_of": corpus.docs[j]["id"],
                                          "text": texts[i]} for i, j in enumerate(dup) if j >= 0))
    write_jsonl(out / "rejects.jsonl", corpus.rejects)
    write_json(out / "labels.json", corpus.label_names)
    windows = write_live(corpus, Path(paths.live))

    labels = np.array([doc["label"] for doc in corpus.docs])
    groups = planted_groups([doc["id"] for doc in corpus.docs], corpus.duplicate_of) if corpus.duplicate_of else None
    tables = {m: label_removals(x, d.exact, labels, corpus.label_names) for m, x in d.dups.items()}
    pairs = {m: removed_pairs(x, d.exact, d.rest, d.X, texts) for m, x in d.dups.items()}
    methods = {m: {**quality(x, d.exact, groups, corpus), **d.details[m], "per_label": tables[m],
                   "pairs": pair_stats(pairs[m], labels)} for m, x in d.dups.items()}
    by_method = {m: label_warnings(m, tables[m], cp.label_loss_warn_ratio) for m in d.dups}
    warnings = [w for ws in by_method.values() for w in ws]
    for w in warnings:
        print(f"curate: warning: {w}", file=sys.stderr)
    write_text(Path(paths.reports) / "dedup_pairs.md",
               pairs_markdown(corpus.docs, corpus.label_names, d.embedder, methods, tables, pairs, warnings,
                              cp.eps, cp.applied, cp.report_pairs, cp.seed))

    summary = {"docs_in": len(texts), "docs_out": len(kept), "rejects": len(corpus.rejects),
               "removed": int(removed.sum()), "applied": cp.applied, "embedder": d.embedder["kind"]}
    if groups is not None:
        summary.update(precision=methods[cp.applied]["precision"], recall=methods[cp.applied]["recall"])
        summary.update({f"f1_{m}": q["f1"] for m, q in methods.items()})
    report = {"summary": summary, "methods": methods, "cost": d.cost, "embedder": d.embedder,
              "splits": {k: len(v) for k, v in splits.items()}, "labels": corpus.label_names,
              "incoming_docs": n_incoming, "live_windows": windows, "warnings": warnings,
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
                                / max(d.cost["classical"]["wall_s"], 1e-9)}
    report["decision"] = decision(params, methods, by_method[cp.applied], groups is not None, len(d.dups) == 2)
    return report


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
