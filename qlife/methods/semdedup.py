"""Classical curation core of stage 1: exact-hash dedup, k-means, SemDeDup, MinHash-LSH, scoring.

- `exact_duplicate_of(texts)`: first index with the same dedup key (`qlife.data.text.dedup_key`: sha1 of the
  normalised text), else -1.
- `kmeans(X, k, seed)`: scikit-learn's KMeans (k-means++ init, one run): the classical baseline as it is
  usually run. `kmeans_pp_init` (greedy k-means++ with an injectable distance) seeds quantum k-means, which
  has its own swap-test loop (`qlife.methods.qkmeans`).
- `semdedup(X, labels, similarity, threshold, keep)`: within each cluster, pairs with similarity above
  `threshold` are joined into groups (connected components) and one member per group is kept (SemDeDup's
  rule: "hard" = least similar to the cluster centroid, "easy" = most similar, "random"). The similarity
  is injected: cosine here, a fidelity Gram matrix in the quantum variant. `semdedup_classical` wires
  kmeans + cosine with threshold 1 - eps.
- `minhash_lsh_duplicates`: the MinHash-LSH peer (datasketch) on character shingles.
- `dedup_scores(removed, groups)`, `planted_groups(ids, copy_of)`: precision/recall against planted copies.
Arrays in, arrays/results out; no I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from qlife.arrays import unit_rows
from qlife.data.text import dedup_key, normalize_text

Similarity = Callable[[np.ndarray], np.ndarray]  # (m, d) -> (m, m)
CentroidSimilarity = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (m, d), (d,) -> (m,)
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (n, d), (k, d) -> (n, k)
KEEP_RULES = ("hard", "easy", "random")


# ----------------------------------------------------------------------------- exact dedup

def exact_duplicate_of(texts: Sequence[str]) -> np.ndarray:
    """For each text, the index of the first text with the same dedup key, or -1 if it is first."""
    first: dict[str, int] = {}
    out = np.full(len(texts), -1, dtype=np.int64)
    for i, t in enumerate(texts):
        j = first.setdefault(dedup_key(t), i)
        if j != i:
            out[i] = j
    return out


# ----------------------------------------------------------------------------- k-means

def sq_euclidean(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """(n, k) squared Euclidean distances, via the Gram trick (one matmul)."""
    d = (X * X).sum(1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _sq_euclidean_cached(X: np.ndarray) -> Distance:
    """sq_euclidean with the row norms of X computed once, in place (memory passes dominate the cost)."""
    xx = (X * X).sum(1)

    def dist(A: np.ndarray, C: np.ndarray) -> np.ndarray:
        D = A @ C.T
        D *= -2.0
        D += (C * C).sum(1)[None, :]
        D += (xx if A is X else (A * A).sum(1))[:, None]
        return np.maximum(D, 0.0, out=D)

    return dist


def kmeans_pp_init(X: np.ndarray, k: int, rng: np.random.Generator, distance: Distance | None = None
                   ) -> np.ndarray:
    """Greedy k-means++ (as sklearn): per step, 2 + log k D²-sampled candidates, keep the best."""
    n, distance = len(X), distance or _sq_euclidean_cached(X)
    trials = 2 + int(np.log(k))
    centers = [int(rng.integers(n))]
    closest = distance(X, X[centers[0]][None])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: any point will do
            cand = rng.integers(n, size=trials)
        else:
            cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total).clip(max=n - 1)
        new_closest = np.minimum(closest[:, None], distance(X, X[cand]))  # (n, trials)
        best = int(new_closest.sum(0).argmin())
        centers.append(int(cand[best]))
        closest = new_closest[:, best]
    return X[centers].copy()


def kmeans(X: np.ndarray, k: int, seed: int = 0, max_iter: int = 100, tol: float = 1e-4
           ) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's KMeans (Lloyd, k-means++ init, one run). Returns (labels (n,), centroids (k, d))."""
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float64)
    if not 1 <= k <= len(X):
        raise ValueError(f"k must be in 1..{len(X)}, got {k}")
    km = KMeans(k, init="k-means++", n_init=1, max_iter=max_iter, tol=tol, random_state=seed,
                algorithm="lloyd").fit(X)
    return km.labels_.astype(np.int64), km.cluster_centers_


# ----------------------------------------------------------------------------- SemDeDup

@dataclass(frozen=True)
class SemDedupResult:
    """Outcome of SemDeDup over n documents."""

    keep_mask: np.ndarray  # bool (n,): True = kept
    duplicate_of: np.ndarray  # int (n,): index of the kept representative, -1 for kept docs
    n_clusters: int
    n_pairs_compared: int  # within-cluster pair similarities evaluated
    circuits: int = 0  # swap-test circuits the similarity ran (quantum variant)

    @property
    def removed(self) -> np.ndarray:
        return ~self.keep_mask

    @property
    def n_removed(self) -> int:
        return int((~self.keep_mask).sum())


def cosine_similarity_matrix(Xc: np.ndarray) -> np.ndarray:
    """(m, m) cosine similarities of the rows of Xc."""
    Z = unit_rows(Xc)
    return Z @ Z.T


def cosine_to_centroid(Xc: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """(m,) cosine similarity of each row of Xc to `centroid`."""
    c = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
    return unit_rows(Xc) @ c


def _keeper(members: np.ndarray, to_centroid: np.ndarray | None, keep: str, rng: np.random.Generator
            ) -> int:
    """Position (in the cluster) of the member kept from one duplicate group."""
    if keep == "random":
        return int(members[rng.integers(len(members))])
    s = to_centroid[members]
    return int(members[s.argmin() if keep == "hard" else s.argmax()])  # ties: lowest index


def _dedup_cluster(Xc: np.ndarray, S: np.ndarray, threshold: float, keep: str, rng: np.random.Generator,
                   centroid: np.ndarray, centroid_similarity: CentroidSimilarity) -> np.ndarray:
    """Local duplicate_of (-1 = kept) for one cluster with similarity matrix S."""
    dup = np.full(len(Xc), -1, dtype=np.int64)
    adj = np.triu(S > threshold, k=1)
    if not adj.any():
        return dup
    _, comp = connected_components(csr_matrix(adj), directed=False)
    sizes = np.bincount(comp)
    to_centroid = centroid_similarity(Xc, centroid) if keep != "random" else None
    for g in np.flatnonzero(sizes > 1):
        members = np.flatnonzero(comp == g)
        kept = _keeper(members, to_centroid, keep, rng)
        dup[members[members != kept]] = kept
    return dup


Map = Callable[[Callable[[Any], Any], list, str], list]  # (fn, items, desc) -> [fn(x) for x in items], in order


def serial_map(fn: Callable[[Any], Any], items: list, desc: str = "") -> list:
    return [fn(x) for x in items]


def cluster_seed(seed: int, cluster: int) -> np.random.SeedSequence:
    """The RNG seed of one cluster's work: a function of (seed, cluster) alone, so the decisions do not depend
    on the order (or the process) the clusters run in."""
    return np.random.SeedSequence([int(seed), int(cluster)])


@dataclass(frozen=True)
class ClusterJob:
    """SemDeDup inside one cluster, picklable for a worker process: item (cluster, Xc, centroid, seed) ->
    (local duplicate_of, circuits run). `similarity` may be a `ClusterSimilarity` (quantum: `fork(seed)` gives
    the cluster its own copy and RNG, `circuits` counts what it ran) or plain functions (classical)."""

    similarity: Any
    centroid_similarity: CentroidSimilarity
    threshold: float
    keep: str

    def __call__(self, item: tuple) -> tuple[np.ndarray, int]:
        from threadpoolctl import threadpool_limits

        _, Xc, centroid, seed = item
        fork = getattr(self.similarity, "fork", None)
        sim = fork(seed) if fork is not None else self.similarity
        to_centroid = sim.to_centroid if fork is not None else self.centroid_similarity
        with threadpool_limits(1):  # OpenBLAS rounds some products differently on 1 and n threads: fix it
            local = _dedup_cluster(Xc, sim(Xc), self.threshold, self.keep, np.random.default_rng(seed), centroid,
                                   to_centroid)
        return local, int(getattr(sim, "circuits", 0))


def semdedup(X: np.ndarray, labels: np.ndarray, similarity: Similarity, threshold: float, keep: str = "hard",
             seed: int = 0, centroids: np.ndarray | None = None,
             centroid_similarity: CentroidSimilarity = cosine_to_centroid, pmap: Map = serial_map) -> SemDedupResult:
    """SemDeDup on given clusters: group within-cluster pairs with similarity > threshold, keep one each.

    `similarity(Xc)` returns the (m, m) matrix of one cluster (cosine classically, fidelity in the
    quantum variant). `centroids[label]` (default: cluster means) and `centroid_similarity` rank members
    for the keep rule. The clusters are independent: `pmap` runs them (serially by default; `qlife.parallel`
    across processes or a Dask cluster), each with the RNG `cluster_seed(seed, c)`. Memory is O(largest cluster²).
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
    X, labels = np.asarray(X), np.asarray(labels)
    duplicate_of = np.full(len(X), -1, dtype=np.int64)
    clusters = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in clusters]
    work = [(int(c), idx) for c, idx in zip(clusters, members) if len(idx) >= 2]
    items = [(c, X[idx], centroids[c] if centroids is not None else X[idx].mean(0), cluster_seed(seed, c))
             for c, idx in work]
    job = ClusterJob(similarity, centroid_similarity, threshold, keep)
    results = pmap(job, items, "semdedup clusters")
    for (_, idx), (local, _) in zip(work, results):
        hit = local >= 0
        duplicate_of[idx[hit]] = idx[local[hit]]
    n_pairs = sum(len(idx) * (len(idx) - 1) // 2 for _, idx in work)
    return SemDedupResult(keep_mask=duplicate_of < 0, duplicate_of=duplicate_of, n_clusters=len(clusters),
                          n_pairs_compared=n_pairs, circuits=sum(c for _, c in results))


def semdedup_classical(X: np.ndarray, n_clusters: int = 50, eps: float = 0.07, seed: int = 0,
                       keep: str = "hard", pmap: Map = serial_map) -> SemDedupResult:
    """k-means + cosine SemDeDup: duplicates are within-cluster pairs with cosine > 1 - eps.

    Defaults tuned on the generated corpus with 128-d TF-IDF+SVD embeddings (3k and 20k documents).
    """
    labels, centroids = kmeans(X, min(n_clusters, len(X)), seed=seed)
    return semdedup(X, labels, cosine_similarity_matrix, 1.0 - eps, keep=keep, seed=seed, centroids=centroids,
                    pmap=pmap)


# ----------------------------------------------------------------------------- MinHash-LSH peer

def _shingles(text: str, k: int) -> set[bytes]:
    t = normalize_text(text)
    return {t[i: i + k].encode("utf-8") for i in range(max(len(t) - k + 1, 1))}


def minhash_lsh_duplicates(texts: Sequence[str], threshold: float = 0.6, num_perm: int = 128, seed: int = 0,
                           shingle: int = 4) -> np.ndarray:
    """Removed mask: a text is a duplicate when an earlier kept text has estimated Jaccard >= threshold.

    Shingles are character `shingle`-grams of the normalised text; LSH proposes candidates, the MinHash
    estimate confirms them (LSH alone lets through pairs well below the threshold). Shingles are hashed
    with crc32: deterministic and cheaper than datasketch's sha1; the permutations supply the mixing.
    """
    from datasketch import MinHash, MinHashLSH  # optional peer, imported only when used

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = np.zeros(len(texts), dtype=bool)
    sketches = MinHash.bulk([list(_shingles(t, shingle)) for t in texts], num_perm=num_perm, seed=seed,
                            hashfunc=zlib.crc32)
    for i, m in enumerate(sketches):
        if any(m.jaccard(sketches[int(j)]) >= threshold for j in lsh.query(m)):
            removed[i] = True
        else:
            lsh.insert(str(i), m)
    return removed


# ----------------------------------------------------------------------------- scoring

def planted_groups(ids: Sequence[str], copy_of: Mapping[str, str]) -> list[list[int]]:
    """Ground-truth groups (original + its copies, as indices into `ids`) from copy id -> original id.

    Several maps (exact, near) can be merged first: `{**exact, **near}`. Chains (a copy of a copy) are
    followed; pairs whose ids are not in `ids` (e.g. dropped elsewhere) are ignored.
    """
    pos = {d: i for i, d in enumerate(ids)}
    pairs = [(pos[c], pos[o]) for c, o in copy_of.items() if c in pos and o in pos]
    if not pairs:
        return []
    rows, cols = np.array(pairs).T
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(len(ids), len(ids)))
    _, comp = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([rows, cols]))
    groups: dict[int, list[int]] = {}
    for i in touched:
        groups.setdefault(int(comp[i]), []).append(int(i))
    return list(groups.values())


def dedup_scores(removed: np.ndarray, groups: Sequence[Sequence[int]]) -> dict[str, float | int]:
    """Precision/recall of a removed mask against disjoint planted groups.

    A group of size s expects s - 1 removals, whichever members go (keeping the copy and removing the
    original is right); TP = sum of min(removed in group, s - 1); every other removal is a FP.
    Precision is 1.0 when nothing was removed, recall 1.0 when nothing was expected.
    """
    removed = np.asarray(removed, dtype=bool)
    expected = sum(len(g) - 1 for g in groups)
    tp = sum(min(int(removed[list(g)].sum()), len(g) - 1) for g in groups)
    n_removed = int(removed.sum())
    precision = tp / n_removed if n_removed else 1.0
    recall = tp / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": n_removed - tp,
            "fn": expected - tp, "removed": n_removed, "expected": expected}
