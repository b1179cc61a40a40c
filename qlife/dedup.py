"""Stage 1's deduplication as `curate:` says: exact hash, then each near-duplicate method of `curate.method`
(classical SemDeDup, quantum SemDeDup, or both) on the same embeddings of the remaining texts, each metered.

`deduplicate(texts, params) -> Dedup` is what stages/curate.py runs (and bench/scale.py measures); the algorithms
are qlife.methods' (semdedup, qkmeans, embed). The embeddings (`curate.embedder`): the teacher's pooled last hidden
states (`train.model`, in shards of `curate.embed_shard` texts through qlife.parallel) or TF-IDF+SVD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from qlife.ledger import measure
from qlife.methods.embed import embed_shard, tfidf_svd_embed
from qlife.methods.qencoding import n_qubits_for
from qlife.methods.qkmeans import qsemdedup, sample_pairs
from qlife.methods.semdedup import exact_duplicate_of, semdedup_classical
from qlife.models import architecture, cached_encoder
from qlife.parallel import pmap
from qlife.params import Params
from qlife.quantum.backends import check_statevector, circuit_backend
from qlife.quantum.fidelity import compare_backends

MAX_AMPLITUDE_QUBITS = 12  # curate.quantum.qubits' own limit for amplitude encoding (4096 dims)


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
                local, qd = quantum_dedup(X, k, params)
                m.add_quantum(qd["resources"])
            dups["quantum"], cost["quantum"], details["quantum"] = _merge(dup, rest, local), m.as_dict(), qd["info"]
    return Dedup(dups, dup >= 0, rest, X, embedder, cost, details)


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
