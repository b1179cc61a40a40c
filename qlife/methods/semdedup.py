"""Classical curation core of stage 1: exact-hash dedup, k-means, SemDeDup, MinHash-LSH, scoring.

- `exact_duplicate_of(texts)`: first index with the same dedup key (`qlife.data.text.dedup_key`: sha1 of the
  normalised text, held as its digest), else -1.
- `kmeans(X, k, seed)`: scikit-learn's KMeans (k-means++ init, one run): the classical baseline as it is
  usually run. `kmeans_pp_init` (greedy k-means++ with an injectable distance) seeds quantum k-means, which
  has its own swap-test loop (`qlife.methods.qkmeans`).
- `semdedup(X, labels, similarity, threshold, keep)`: within each cluster, pairs with similarity above
  `threshold` are joined into groups (connected components) and one member per group is kept (SemDeDup's
  rule: "hard" = least similar to the cluster centroid, "easy" = most similar, "random"). The similarity
  is injected: cosine here, a fidelity Gram matrix in the quantum variant. `semdedup_classical` wires
  kmeans + cosine with threshold 1 - eps.
- At scale (SemDeDup's own recipe): `cluster_count` grows the clusters with the corpus (about `cluster_docs`
  documents each); `fit_rows` picks the seeded sample the centroids are fitted on when the corpus is larger than
  `fit_sample`, every row then assigned to its nearest centroid in blocks (`assign_nearest`); inside a cluster of
  more than 4,096 documents the similarity runs in row blocks of at most `BLOCK_ELEMS` entries, each kept only as
  the list of its pairs above the threshold; the clusters' rows are copied out `BATCH_ROWS` at a time. Memory is
  O(n d) for the embeddings plus O(BLOCK_ELEMS + BATCH_ROWS d), whatever the cluster sizes. Below those sizes
  every step is the one-shot computation it always was (same decisions).
- `minhash_lsh_duplicates`: the MinHash-LSH peer (datasketch) on character shingles.
- `dedup_scores(removed, groups)`, `planted_groups(ids, copy_of)`: precision/recall against planted copies.
Arrays in, arrays/results out; no I/O.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from qlife.arrays import unit_rows
from qlife.data.text import normalize_text

Similarity = Callable[[np.ndarray], np.ndarray]  # (m, d) -> (m, m); may have block(A, B, circuits) -> (a, b)
CentroidSimilarity = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (m, d), (d,) -> (m,)
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (n, d), (k, d) -> (n, k)
KEEP_RULES = ("hard", "easy", "random")
BLOCK_ELEMS = 1 << 24  # similarities held at once inside a cluster (128 MB of float64): up to 4,096 members, one matrix
BATCH_ROWS = 1 << 17  # cluster members copied out (and encoded) at once, one map over their clusters
ASSIGN_ROWS = 1 << 15  # rows assigned to their nearest centroid at once


def progress(items, total: int, desc: str, unit: str = "it", min_total: int = 2):
    """A progress bar on stderr (rate and ETA) for the long loops of curation, every 10 s at most; none for a loop
    of fewer than `min_total` steps (the corpora the project runs today: no noise)."""
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, mininterval=10, leave=False, disable=total < min_total)


def cluster_count(n: int, n_clusters: int, cluster_docs: int | None = None) -> int:
    """Clusters for n documents: `n_clusters`, more when the corpus is larger than `n_clusters * cluster_docs`
    (about `cluster_docs` each: the within-cluster pairs, sum of m^2 / 2, then grow as n, not n^2); at most n."""
    k = n_clusters if cluster_docs is None else max(n_clusters, -(-n // cluster_docs))
    return max(1, min(k, n))


def fit_rows(n: int, fit_sample: int | None, seed: int = 0) -> np.ndarray | None:
    """The sorted seeded sample of `fit_sample` of n rows the centroids (and the embedder) are fitted on; None when
    n <= fit_sample (or no sample): every row, as before."""
    if fit_sample is None or n <= fit_sample:
        return None
    return np.sort(np.random.default_rng([int(seed), n]).choice(n, fit_sample, replace=False))


def assign_nearest(n: int, rows: Callable[[int, int], np.ndarray], score: Callable[[np.ndarray], np.ndarray],
                   desc: str = "assign") -> np.ndarray:
    """(n,) argmax of `score(rows(start, stop))` ((b, k) scores of each row against the centroids), block by block
    of ASSIGN_ROWS rows: every row's cluster without holding more than one block of scores."""
    out = np.empty(n, dtype=np.int64)
    starts = range(0, n, ASSIGN_ROWS)
    for s in progress(starts, len(starts), desc, "block"):
        out[s: s + ASSIGN_ROWS] = score(rows(s, min(n, s + ASSIGN_ROWS))).argmax(1)
    return out


# ----------------------------------------------------------------------------- exact dedup

def exact_duplicate_of(texts: Sequence[str]) -> np.ndarray:
    """For each text, the index of the first text with the same dedup key, or -1 if it is first. The keys are
    held as sha1 digests (20 bytes; `dedup_key` is their hex), text by text: no normalised copy of the corpus."""
    first: dict[bytes, int] = {}
    out = np.full(len(texts), -1, dtype=np.int64)
    for i, t in enumerate(progress(texts, len(texts), "curate exact hash", "doc", min_total=100_000)):
        j = first.setdefault(hashlib.sha1(normalize_text(t).encode("utf-8")).digest(), i)
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


def kmeans(X: np.ndarray, k: int, seed: int = 0, max_iter: int = 100, tol: float = 1e-4,
           sample: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's KMeans (Lloyd, k-means++ init, one run). Returns (labels (n,), centroids (k, d)).
    `sample` (row indices): fitted on those rows, every row then given its nearest centroid (`assign_nearest`)."""
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float64)
    fit = X if sample is None else X[sample]
    if not 1 <= k <= len(fit):
        raise ValueError(f"k must be in 1..{len(fit)}, got {k}")
    km = KMeans(k, init="k-means++", n_init=1, max_iter=max_iter, tol=tol, random_state=seed,
                algorithm="lloyd").fit(fit)
    C = km.cluster_centers_
    if sample is None:
        return km.labels_.astype(np.int64), C
    del fit
    cc = (C * C).sum(1)
    labels = assign_nearest(len(X), lambda s, e: X[s:e], lambda A: 2.0 * (A @ C.T) - cc, "curate k-means assign")
    return labels, C


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


class CosineSimilarity:
    """`cosine_similarity_matrix`, and `block(A, B)`: the (a, b) cosines of rows of one cluster against all of it
    (a big cluster's matrix goes in row blocks)."""

    def __call__(self, Xc: np.ndarray) -> np.ndarray:
        return cosine_similarity_matrix(Xc)

    def block(self, A: np.ndarray, B: np.ndarray, circuits: int | None = None) -> np.ndarray:
        return unit_rows(A) @ unit_rows(B).T


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


def _neighbours(Xc: np.ndarray, sim: Any, threshold: float) -> csr_matrix:
    """(m, m) upper-triangle adjacency (i < j) of the members' pairs with similarity > threshold. Up to BLOCK_ELEMS
    pairs (or a similarity without `block`): the whole matrix at once; beyond, row blocks of `sim.block(rows, Xc,
    circuits)`, each kept only as its pairs above the threshold (`circuits`: the distinct pairs i < j it holds)."""
    m = len(Xc)
    block = getattr(sim, "block", None)
    if block is None or m * m <= BLOCK_ELEMS:
        return csr_matrix(np.triu(sim(Xc) > threshold, k=1))
    step, rows, cols = max(1, BLOCK_ELEMS // m), [], []
    for s in range(0, m, step):
        e = min(m, s + step)
        i, j = np.nonzero(block(Xc[s:e], Xc, (e - s) * (m - 1) - (s + e - 1) * (e - s) // 2) > threshold)
        i += s
        upper = j > i
        rows.append(i[upper])
        cols.append(j[upper])
    i, j = np.concatenate(rows), np.concatenate(cols)
    return csr_matrix((np.ones(len(i), dtype=bool), (i, j)), shape=(m, m))


def _dedup_cluster(Xc: np.ndarray, sim: Any, threshold: float, keep: str, rng: np.random.Generator,
                   centroid: np.ndarray, centroid_similarity: CentroidSimilarity) -> np.ndarray:
    """Local duplicate_of (-1 = kept) for one cluster with similarity `sim` (`_neighbours`)."""
    dup = np.full(len(Xc), -1, dtype=np.int64)
    adj = _neighbours(Xc, sim, threshold)
    if adj.nnz == 0:
        return dup
    _, comp = connected_components(adj, directed=False)
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
            local = _dedup_cluster(Xc, sim, self.threshold, self.keep, np.random.default_rng(seed), centroid,
                                   to_centroid)
        return local, int(getattr(sim, "circuits", 0))


def _batches(work: list[tuple[int, np.ndarray]], rows: int) -> list[list[tuple[int, np.ndarray]]]:
    """Consecutive clusters in batches of at most `rows` members (a bigger cluster alone)."""
    out: list[list[tuple[int, np.ndarray]]] = [[]]
    size = 0
    for c, idx in work:
        if out[-1] and size + len(idx) > rows:
            out.append([])
            size = 0
        out[-1].append((c, idx))
        size += len(idx)
    return [b for b in out if b]


def semdedup(X: np.ndarray, labels: np.ndarray, similarity: Similarity, threshold: float, keep: str = "hard",
             seed: int = 0, centroids: np.ndarray | None = None,
             centroid_similarity: CentroidSimilarity = cosine_to_centroid, pmap: Map = serial_map,
             transform: Callable[[np.ndarray], np.ndarray] | None = None) -> SemDedupResult:
    """SemDeDup on given clusters: group within-cluster pairs with similarity > threshold, keep one each.

    `similarity(Xc)` returns the (m, m) matrix of one cluster (cosine classically, fidelity in the
    quantum variant); with a `block` method, a cluster of more than 4,096 members goes in row blocks
    (`_neighbours`). `centroids[label]` (default: cluster means) and `centroid_similarity` rank members
    for the keep rule. `transform` (row-wise, e.g. the quantum encoding) turns a cluster's rows of X into what the
    similarity compares, one batch at a time. The clusters are independent: `pmap` runs them (serially by default;
    `qlife.parallel` across processes or a Dask cluster), each with the RNG `cluster_seed(seed, c)`, in batches of
    at most BATCH_ROWS members. Memory: O(BLOCK_ELEMS + BATCH_ROWS d) beside X.
    """
    if keep not in KEEP_RULES:
        raise ValueError(f"keep must be one of {KEEP_RULES}, got {keep!r}")
    X, labels = np.asarray(X), np.asarray(labels)
    duplicate_of = np.full(len(X), -1, dtype=np.int64)
    order = np.argsort(labels, kind="stable")  # members of each cluster, in index order, without a scan per cluster
    clusters, starts = np.unique(labels[order], return_index=True)
    members = np.split(order, starts[1:])
    work = [(int(c), idx) for c, idx in zip(clusters, members) if len(idx) >= 2]
    job = ClusterJob(similarity, centroid_similarity, threshold, keep)
    circuits, batches = 0, _batches(work, BATCH_ROWS)
    for batch in progress(batches, len(batches), "curate semdedup cluster batches", "batch"):
        items = []
        for c, idx in batch:
            Xc = X[idx] if transform is None else transform(X[idx])
            items.append((c, Xc, centroids[c] if centroids is not None else Xc.mean(0), cluster_seed(seed, c)))
        results = pmap(job, items, "semdedup clusters")
        del items
        for (_, idx), (local, ran) in zip(batch, results):
            hit = local >= 0
            duplicate_of[idx[hit]] = idx[local[hit]]
            circuits += ran
    n_pairs = sum(len(idx) * (len(idx) - 1) // 2 for _, idx in work)
    return SemDedupResult(keep_mask=duplicate_of < 0, duplicate_of=duplicate_of, n_clusters=len(clusters),
                          n_pairs_compared=n_pairs, circuits=circuits)


def semdedup_classical(X: np.ndarray, n_clusters: int = 50, eps: float = 0.07, seed: int = 0,
                       keep: str = "hard", pmap: Map = serial_map, fit_sample: int | None = None) -> SemDedupResult:
    """k-means + cosine SemDeDup: duplicates are within-cluster pairs with cosine > 1 - eps. `fit_sample`: k-means
    fitted on a seeded sample of that many rows (`fit_rows`) when X has more, every row then assigned.

    Defaults tuned on the generated corpus with 128-d TF-IDF+SVD embeddings (3k and 20k documents).
    """
    labels, centroids = kmeans(X, min(n_clusters, len(X)), seed=seed, sample=fit_rows(len(X), fit_sample, seed))
    return semdedup(X, labels, CosineSimilarity(), 1.0 - eps, keep=keep, seed=seed, centroids=centroids,
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
