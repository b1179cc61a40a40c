"""Stage 1's deduplication as `curate:` says: exact hash, then each near-duplicate method of `curate.method`
(classical SemDeDup, quantum SemDeDup, or both) on the same embeddings of the remaining texts, each metered.

`deduplicate(texts, params) -> Dedup` is what stages/curate.py runs (and bench/scale.py measures); the algorithms
are qlife.methods' (semdedup, qkmeans, embed). `stage_verdict(d, groups, params)`: the stage's verdict (quantum
SemDeDup against classical SemDeDup and the exact hash, F1 against the planted duplicates; "no ground truth"
without them), and `fidelity_check`: on the pairs either method removed, the encoded states' fidelity against cos².
The embeddings (`curate.embedder`): the teacher's pooled last hidden states (`train.model`, in shards of
`curate.embed_shard` texts through qlife.parallel, run as `inference:` says), TF-IDF+SVD, or a static token table
distilled from the teacher (`curate.static`, cached on disk per teacher and settings).
At scale: TF-IDF+SVD is fitted on the seeded sample of `curate.fit_sample` documents (all of them below) and every
text is embedded in shards of EMBED_ROWS into one preallocated array (static: encoded in shards); the clusters
grow with the corpus (`curate.cluster_docs`) and both SemDeDups fit their centroids on the same sample
(qlife.methods.semdedup.fit_rows), each assigning every document in blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from qlife.arrays import unit_rows
from qlife.ledger import measure
from qlife.methods.dedup_report import agreement, dedup_verdict
from qlife.methods.embed import TfidfSvdEmbedder, embed_shard
from qlife.methods.qencoding import StateEncoder, n_qubits_for
from qlife.methods.qkmeans import qsemdedup, sample_pairs
from qlife.methods.semdedup import cluster_count, exact_duplicate_of, fit_rows, progress, semdedup_classical
from qlife.models import architecture, cached_encoder
from qlife.parallel import pmap
from qlife.params import Params
from qlife.quantum.backends import check_statevector, circuit_backend
from qlife.quantum.fidelity import compare_backends, exact_pairs
from qlife.verdict import no_verdict

MAX_AMPLITUDE_QUBITS = 12  # curate.quantum.qubits' own limit for amplitude encoding (4096 dims)
EMBED_ROWS = 1 << 15  # texts embedded at once by the tfidf and static embedders (rows do not depend on it)


def embedding_qubits(params: Params, dim: int) -> int:
    """Qubits for the actual embedding width `dim` (teacher: its hidden size; tfidf: embed_dim)."""
    q = params.curate.quantum
    if q.qubits is not None:
        return q.qubits
    if q.encoding == "amplitude":  # zero-padded to 2^q; wider than 2^12: SVD-reduced to 4096 (reduce_dim)
        return min(n_qubits_for("amplitude", dim), MAX_AMPLITUDE_QUBITS)
    return min(dim, 16)


def quantum_dedup(X: np.ndarray, k: int, params: Params) -> tuple[np.ndarray, dict]:
    """Quantum SemDeDup on the same embeddings: duplicate_of (local) and the method's own figures."""
    cp, q = params.curate, params.curate.quantum
    n_qubits = embedding_qubits(params, X.shape[1])
    runner = circuit_backend(q.backend, "curate.quantum.backend")
    if not runner.analytic:  # a (2n+1)-qubit swap-test circuit per fidelity
        check_statevector(2 * n_qubits + 1, "curate.quantum.qubits or curate.quantum.backend")
    r = qsemdedup(X, k, cp.eps, q.threshold, cp.keep, cp.seed, n_qubits, q.encoding, runner, q.max_iter, q.tol,
                  q.patience, max_circuits=q.max_circuits, param="curate.quantum.backend", pmap=cluster_map(params),
                  fit_sample=cp.fit_sample)
    res = r.resources
    info = {"backend": runner.name, "encoding": r.encoding, "n_qubits": r.n_qubits, "embedding_dim": int(X.shape[1]),
            "n_clusters": k, "kmeans_fit_docs": r.fit_docs,
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
    return r.result.duplicate_of, {"info": info, "resources": res.to_dict(), "encoder": r.encoder}


def cluster_map(params: Params):
    """SemDeDup's per-cluster map on the placement `orchestration` names (serial by default)."""
    return lambda fn, items, desc: pmap(fn, items, params.orchestration, f"curate {desc}")


def teacher_embed(texts: list[str], params: Params) -> np.ndarray:
    """Unit-norm float64 rows: the teacher's (`train.model`) pooled last hidden state of each text, in shards
    of `curate.embed_shard` texts (the same shards serially or on workers: the rows do not depend on where)."""
    cp, size = params.curate, params.curate.embed_shard
    pooling, inf = params.train.pooling, params.inference
    jobs = [(params.train.model, cp.embed_max_length, texts[i: i + size], pooling, inf.runtime, inf.precision)
            for i in range(0, len(texts), size)]
    parts = pmap(embed_shard, jobs, params.orchestration, "curate embed shards")
    if not parts:
        return np.zeros((0, int(cached_encoder(params.train.model, pooling)[0].config.hidden_size)))
    return np.concatenate(parts)


def static_embed(texts: list[str], params: Params) -> tuple[np.ndarray, dict]:
    """Unit-norm float64 rows: each text's SIF-weighted mean of static token vectors distilled from the teacher
    (`train.model` as it comes) before curation (qlife.methods.static_embed.teacher_table: built once per teacher
    and settings, then loaded from its cache), and what the table is and took."""
    from qlife.methods.static_embed import teacher_table

    cp, st = params.curate, params.curate.static
    table, info = teacher_table(params.train.model, params.train.pooling, texts, st.dims, st.vocabulary, st.sif_a,
                                cp.embed_max_length, st.batch_size)
    X = np.empty((len(texts), table.dims))
    starts = range(0, len(texts), EMBED_ROWS)
    with threadpool_limits(1):
        for s in progress(starts, len(starts), "curate static embed", "shard"):
            X[s: s + EMBED_ROWS] = unit_rows(table.encode_texts(texts[s: s + EMBED_ROWS]).astype(np.float64))
    return X, {**info, "model": params.train.model, "max_length": cp.embed_max_length}


def tfidf_embed(texts: list[str], params: Params) -> tuple[np.ndarray, dict]:
    """Unit-norm float64 rows of TF-IDF+SVD (`curate.embed_dim`), fitted on every text or, past
    `curate.fit_sample`, on a seeded sample of them (`fit_docs` in the info); every text projected in shards."""
    cp = params.curate
    sample = fit_rows(len(texts), cp.fit_sample, cp.seed)
    model = TfidfSvdEmbedder(cp.embed_dim, cp.seed).fit(texts if sample is None else [texts[i] for i in sample])
    X = np.empty((len(texts), cp.embed_dim))
    starts = range(0, len(texts), EMBED_ROWS)
    for s in progress(starts, len(starts), "curate tfidf embed", "shard"):
        X[s: s + EMBED_ROWS] = model.transform(texts[s: s + EMBED_ROWS])
    return X, {"kind": "tfidf", "model": "tfidf+svd", **({} if sample is None else {"fit_docs": len(sample)})}


def embed(texts: list[str], params: Params) -> tuple[np.ndarray, dict]:
    """Embeddings of the near-duplicate candidates by `curate.embedder`, and what was used."""
    cp = params.curate
    if cp.embedder == "teacher":
        X = teacher_embed(texts, params)
        inf = params.inference
        info = {"kind": "teacher", "model": params.train.model,
                **architecture(cached_encoder(params.train.model, params.train.pooling, inf.runtime,
                                              inf.precision)[0]),
                "max_length": cp.embed_max_length}
    elif cp.embedder == "static":
        X, info = static_embed(texts, params)
    else:
        with threadpool_limits(1):
            X, info = tfidf_embed(texts, params)
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
    encoder: Any = None  # the quantum method's rows -> states map (qlife.methods.qencoding.StateEncoder)


def deduplicate(texts: list[str], params: Params) -> Dedup:
    """Exact hash, then each near-duplicate method run on the same embeddings of the remaining texts."""
    cp = params.curate
    with measure(params.ledger) as exact_cost:
        dup = exact_duplicate_of(texts)
    rest = np.flatnonzero(dup < 0)
    k = cluster_count(len(rest), cp.n_clusters, cp.cluster_docs)
    cost, dups, details, encoder = {"exact_hash": exact_cost.as_dict()}, {}, {}, None
    with measure(params.ledger) as embed_cost:  # the teacher uses torch's threads; tfidf limits its own
        X, embedder = embed([texts[i] for i in rest], params)
    X = np.ascontiguousarray(X, dtype=np.float64)
    cost["embed"] = embed_cost.as_dict()
    with threadpool_limits(1):  # small matrices: BLAS threads oversubscribe a shared box (~10x slower)
        if cp.method in ("classical", "both"):
            with measure(params.ledger) as m:
                res = semdedup_classical(X, n_clusters=k, eps=cp.eps, seed=cp.seed, keep=cp.keep,
                                         pmap=cluster_map(params), fit_sample=cp.fit_sample)
            local, details["classical"] = res.duplicate_of, {
                "n_pairs_compared": int(res.n_pairs_compared), "n_clusters": k,
                "kmeans_fit_docs": min(len(rest), cp.fit_sample or len(rest))}
            dups["classical"], cost["classical"] = _merge(dup, rest, local), m.as_dict()
        if cp.method in ("quantum", "both"):
            with measure(params.ledger) as m:
                local, qd = quantum_dedup(X, k, params)
                m.add_quantum(qd["resources"])
            dups["quantum"], cost["quantum"], details["quantum"] = _merge(dup, rest, local), m.as_dict(), qd["info"]
            encoder = qd["encoder"]
    return Dedup(dups, dup >= 0, rest, X, embedder, cost, details, encoder)


def _merge(exact_dup: np.ndarray, rest: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Exact-hash duplicate_of with the near-duplicate decisions (indices into `rest`) folded in."""
    dup = exact_dup.copy()
    near = local >= 0
    dup[rest[near]] = rest[local[near]]
    return dup


def median_cosine(X: np.ndarray, sample: int = 1000, seed: int = 0) -> float | None:
    """Median cosine of distinct pairs of (a seeded sample of) unit rows: near 1, the embedding is anisotropic."""
    if len(X) < 2:
        return None
    idx = np.random.default_rng(seed).choice(len(X), size=min(sample, len(X)), replace=False)
    C = X[idx] @ X[idx].T
    return float(np.median(C[np.triu_indices(len(idx), 1)]))


# ----------------------------------------------------------------------------- verdict

def fidelity_check(d: Dedup, params: Params) -> dict | None:
    """On every pair either SemDeDup removed (removed document, its representative): the exact fidelity of the
    states the quantum method loads against the embeddings' cos², and how many pairs the two rules (fidelity >
    threshold, cosine > 1 - eps) decide differently. None unless both methods ran."""
    if len(d.dups) < 2:
        return None
    info, pos = d.details["quantum"], np.full(len(d.exact), -1)
    pos[d.rest] = np.arange(len(d.rest))
    pairs = {(int(pos[i]), int(pos[x[i]])) for x in d.dups.values() for i in np.flatnonzero((x >= 0) & ~d.exact)}
    if not pairs:
        return {"pairs": 0, "max_abs_fidelity_minus_cos2": None, "decisions_differ": 0}
    a, b = (np.array(c) for c in zip(*sorted(pairs)))
    cos = np.einsum("ij,ij->i", d.X[a], d.X[b])
    encoder = d.encoder or StateEncoder.fit(d.X, info["encoding"], info["n_qubits"])
    fid = exact_pairs(encoder(d.X[a]), encoder(d.X[b]), info["encoding"])
    return {"pairs": len(a), "max_abs_fidelity_minus_cos2": float(np.abs(fid - cos**2).max()),
            "decisions_differ": int(((fid > info["threshold"]) != (cos > 1 - params.curate.eps)).sum())}


def _cost(c: dict) -> dict:
    return {"wall_s": c["wall_s"], "cpu_s": c["cpu_s"], "energy_kwh": c["energy_kwh"],
            "qpu_s_est": c.get("quantum", {}).get("qpu_seconds_est")}


def _same_math(check: dict, info: dict, eps: float) -> str:
    backend = "exact" if info["shots_per_circuit"] is None else f"{info['shots_per_circuit']} shots per swap test"
    if info["encoding"] == "angle":
        return (f"not the same mathematics: angle-encoded fidelity is a product of cos²(Δx/2), not cos² of the "
                f"embeddings (threshold {info['threshold']:.4g} stands for cosine > {1 - eps:g}); "
                f"{check['decisions_differ']} of {check['pairs']} removed pairs decided differently")
    if check["max_abs_fidelity_minus_cos2"] is not None and check["max_abs_fidelity_minus_cos2"] > 1e-9:
        return (f"not quite the same mathematics: the loaded states are reduced from the embeddings (max |F - cos²| "
                f"{check['max_abs_fidelity_minus_cos2']:.2g} on the {check['pairs']} removed pairs)")
    differ = ("the clustering (q-means on 2 - 2√F vs k-means) and the member kept" if info["shots_per_circuit"] is None
              else "shot noise near the threshold, the clustering (q-means vs k-means) and the member kept")
    return (f"the same mathematics: the fidelity of amplitude-encoded unit vectors is cos², so fidelity > "
            f"(1 - eps)² is |cos| > 1 - eps, the classical rule (checked on the {check['pairs']} pairs either "
            f"method removed: {check['decisions_differ']} decided differently); {info['backend']} ({backend}) "
            f"estimates it; the removals differ only by {differ}")


def stage_verdict(d: Dedup, groups: list[list[int]] | None, params: Params, check: dict | None = None) -> dict:
    """Quantum SemDeDup against its twin (classical SemDeDup on the same embeddings) and the best classical
    method run (the twin, the exact hash alone): binary F1 per document against the planted duplicates, paired
    bootstrap over whole planted groups; each method's own step's cost. No ground truth: "no ground truth".
    `check`: `fidelity_check(d, params)` if already computed."""
    cp = params.curate
    quantum = f"quantum SemDeDup ({d.details['quantum']['backend']})" if "quantum" in d.details else "quantum SemDeDup"
    names = {"exact_hash": "exact hash", "classical": "classical SemDeDup", "quantum": quantum}
    cost = {names[m]: _cost(c) for m, c in d.cost.items() if m in names}
    if len(d.dups) < 2:
        return no_verdict(quantum, names["classical"], "not compared", cost, metric="f1",
                          note=f"curate.method={cp.method} runs one method: set both to compare")
    agree = agreement(d.dups["classical"], d.dups["quantum"], d.exact)
    agreed = (f"removals agree: Jaccard {agree['jaccard_removed']:.2f} of near-duplicate removals, "
              f"{agree['jaccard_duplicate_docs']:.2f} of documents put in duplicate groups")
    if groups is None:
        return no_verdict(quantum, names["classical"], "no ground truth", cost, metric="f1", note=agreed)
    removed = {names["exact_hash"]: d.exact, **{names[m]: x >= 0 for m, x in d.dups.items()}}
    same = _same_math(check or fidelity_check(d, params), d.details["quantum"], cp.eps)
    note = (f"F1 per document against the planted duplicates (a group of s expects s - 1 removals, whichever "
            f"members go); {same}; {agreed}. Costs: each method's own step; the embedding both SemDeDups run on "
            f"({d.cost['embed']['wall_s']:.3g} s) and the exact hash before them are not in theirs")
    return dedup_verdict(removed, groups, quantum, names["classical"], cost, note, seed=cp.seed)
