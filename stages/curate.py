"""Stage 1 — collection & curation.

Inputs: the source in `curate.source` (built-in generator, local files, or a HF dataset) plus any
labelled feedback in `paths.incoming/*.jsonl`. Method: exact dedup on a normalised-text hash, then
near-duplicate removal on TF-IDF+SVD embeddings by `curate.method`: classical SemDeDup (k-means, within-
cluster cosine > 1 - eps), quantum SemDeDup (q-means on amplitude/angle-encoded states, within-cluster swap-test
fidelity > (1 - eps)², `curate.quantum`), or both side by side on the same embeddings. `curate.apply` picks
whose removals are written (default: the method run; with both, quantum — it meets the classical F1 on the
default corpus, see README). The report compares them: removals, precision/recall/F1, agreement, time, and the
circuits/shots/qubits the quantum method implies.
Outputs: `paths.curated/{train,val,test}.jsonl`, `removed.jsonl`, `rejects.jsonl`, `labels.json`;
`paths.live/*.jsonl` (one file per live window) and `paths.live/windows.json`.
Params: `curate:`. Report: documents in/out, removals, precision/recall vs planted duplicates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from qlife.data.sources import Corpus, load_corpus
from qlife.io import read_records_jsonl, write_json, write_jsonl
from qlife.ledger import measure
from qlife.methods.embed import tfidf_svd_embed
from qlife.methods.qencoding import n_qubits_for
from qlife.methods.qkmeans import qsemdedup
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


def _n_qubits(params: Params) -> int:
    cp, q = params.curate, params.curate.quantum
    if q.n_qubits is not None:
        return q.n_qubits
    return n_qubits_for("amplitude", cp.embed_dim) if q.encoding == "amplitude" else min(cp.embed_dim, 16)


def _quantum(X: np.ndarray, k: int, params: Params) -> tuple[np.ndarray, dict]:
    """Quantum SemDeDup on the same embeddings: duplicate_of (local) and the method's own figures."""
    cp, q = params.curate, params.curate.quantum
    r = qsemdedup(X, k, cp.eps, q.threshold, cp.keep, cp.seed, _n_qubits(params), q.encoding, q.backend,
                  q.shots, q.max_iter, q.tol, q.patience, max_circuits=q.max_circuits)
    res = r.resources
    info = {"backend": q.backend, "encoding": r.encoding, "n_qubits": r.n_qubits, "threshold": r.threshold,
            "kmeans_iterations": r.kmeans.n_iter, "kmeans_converged": r.kmeans.converged,
            "n_pairs_compared": int(r.result.n_pairs_compared), "circuits": res.circuits, "shots": res.shots,
            "shots_per_circuit": q.shots, "swap_test_qubits": res.qubits, "swap_test_depth": res.depth,
            "swap_test_two_qubit_gates": res.two_qubit_gates, "qpu_seconds_est": res.qpu_seconds_est}
    return r.result.duplicate_of, {"info": info, "resources": res.to_dict()}


def deduplicate(texts: list[str], params: Params) -> tuple[dict[str, np.ndarray], np.ndarray, dict, dict]:
    """Per method run: duplicate_of over all texts (index of the kept representative, -1 if kept); the
    exact-hash mask; costs; per-method details. Both methods see the same exact-dedup and embeddings."""
    cp = params.curate
    with measure(params.ledger) as exact_cost:
        dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    k = min(cp.n_clusters, len(rest))
    cost, dups, details = {"exact_hash": exact_cost.as_dict()}, {}, {}
    with threadpool_limits(1):  # small matrices: BLAS threads oversubscribe a shared box (~10x slower)
        with measure(params.ledger) as embed_cost:
            X = tfidf_svd_embed([texts[i] for i in rest], dim=cp.embed_dim, seed=cp.seed)
        cost["embed"] = embed_cost.as_dict()
        if cp.method in ("classical", "both"):
            with measure(params.ledger) as m:
                res = semdedup_classical(X, n_clusters=k, eps=cp.eps, seed=cp.seed, keep=cp.keep)
            local, details["classical"] = res.duplicate_of, {"n_pairs_compared": int(res.n_pairs_compared)}
            dups["classical"], cost["classical"] = _merge(dup, rest, local), m.as_dict()
        if cp.method in ("quantum", "both"):
            with measure(params.ledger) as m:
                local, qd = _quantum(X, k, params)
                m.add_quantum(qd["resources"])
            dups["quantum"], cost["quantum"], details["quantum"] = _merge(dup, rest, local), m.as_dict(), qd["info"]
    return dups, dup >= 0, cost, details


def _merge(exact_dup: np.ndarray, rest: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Exact-hash duplicate_of with the near-duplicate decisions (indices into `rest`) folded in."""
    dup = exact_dup.copy()
    near = local >= 0
    dup[rest[near]] = rest[local[near]]
    return dup


def agreement(a: np.ndarray, b: np.ndarray, exact: np.ndarray) -> dict:
    """How far two near-dedup decisions agree: Jaccard of the removed sets, and of the documents put in
    any duplicate group (removed + their representatives: independent of which member the keep rule kept)."""
    def jac(x: set, y: set) -> float:
        return len(x & y) / len(x | y) if x | y else 1.0

    ra, rb = (set(np.flatnonzero((d >= 0) & ~exact).tolist()) for d in (a, b))
    ga, gb = ({*r, *(int(d[i]) for i in r)} for r, d in ((ra, a), (rb, b)))
    return {"jaccard_removed": jac(ra, rb), "jaccard_duplicate_docs": jac(ga, gb), "both_removed": len(ra & rb),
            "only_classical": len(ra - rb), "only_quantum": len(rb - ra)}


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
    dups, exact, cost, details = deduplicate(texts, params)
    dup = dups[cp.applied]
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
    groups = planted_groups([d["id"] for d in corpus.docs], corpus.duplicate_of) if corpus.duplicate_of else None
    methods = {m: {**quality(d, exact, groups, corpus), **details[m]} for m, d in dups.items()}
    summary = {"docs_in": len(texts), "docs_out": len(kept), "rejects": len(corpus.rejects),
               "removed": int(removed.sum()), "applied": cp.applied}
    if groups is not None:
        summary.update(precision=methods[cp.applied]["precision"], recall=methods[cp.applied]["recall"])
        summary.update({f"f1_{m}": q["f1"] for m, q in methods.items()})
    report = {"summary": summary, "methods": methods, "cost": cost,
              "splits": {k: len(v) for k, v in splits.items()}, "labels": corpus.label_names,
              "incoming_docs": n_incoming, "live_windows": windows}
    if len(dups) == 2:
        report["comparison"] = {**agreement(dups["classical"], dups["quantum"], exact),
                                "f1_quantum_minus_classical": methods["quantum"].get("f1", 0.0)
                                - methods["classical"].get("f1", 0.0),
                                "wall_s_quantum_over_classical": cost["quantum"]["wall_s"]
                                / max(cost["classical"]["wall_s"], 1e-9)}
    return report


def quality(dup: np.ndarray, exact: np.ndarray, groups: list | None, corpus: Corpus) -> dict:
    """Removal counts, and precision/recall/F1 against the planted duplicates when there are any."""
    removed = dup >= 0
    q = {"removed": int(removed.sum()), "exact_removed": int(exact.sum()),
         "near_removed": int(removed.sum() - exact.sum())}
    if groups is not None:
        q.update(dedup_scores(removed, groups))
        copies = np.array([d["id"] in corpus.exact_copies for d in corpus.docs])
        q["planted_exact"] = int(copies.sum())
        q["planted_near"] = len(corpus.duplicate_of) - int(copies.sum())
    return q


def main() -> None:
    stage_main("curate", run)


if __name__ == "__main__":
    main()
