"""Classical curation core: exact dedup, embedder, k-means, SemDeDup, MinHash, scoring."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from threadpoolctl import threadpool_limits

from qlife.data.generator import generate_corpus
from qlife.methods.embed import TfidfSvdEmbedder, tfidf_svd_embed
from qlife.methods.semdedup import (
    cosine_similarity_matrix,
    dedup_scores,
    exact_duplicate_of,
    kmeans,
    kmeans_pp_init,
    minhash_lsh_duplicates,
    planted_groups,
    semdedup,
    semdedup_classical,
    sq_euclidean,
)

# recommended defaults (params.yaml: curate)
DIM, N_CLUSTERS, EPS, KEEP = 128, 50, 0.07, "hard"


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    # small matrices: BLAS threads gain little and, on a busy 2-core box, oversubscription costs ~10x
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(seed=0)


@pytest.fixture(scope="module")
def groups(corpus):
    return planted_groups([d["id"] for d in corpus.docs], {**corpus.exact_duplicates, **corpus.near_duplicates})


# ----------------------------------------------------------------------------- exact dedup

def test_exact_duplicate_of():
    dup = exact_duplicate_of(["A b.", "c", "a  B .", "C", "d", "a b."])
    assert dup.tolist() == [-1, -1, 0, 1, -1, 0]


def test_exact_dedup_finds_planted_exact_copies(corpus):
    ids = [d["id"] for d in corpus.docs]
    dup = exact_duplicate_of([d["text"] for d in corpus.docs])
    scores = dedup_scores(dup >= 0, planted_groups(ids, corpus.exact_duplicates))
    assert scores["precision"] == 1.0 and scores["recall"] == 1.0
    pos = {d: i for i, d in enumerate(ids)}
    for copy, orig in corpus.exact_duplicates.items():
        assert dup[max(pos[copy], pos[orig])] == min(pos[copy], pos[orig])  # later one points at the first


# ----------------------------------------------------------------------------- embedder

def test_embedder_shapes_norms_and_determinism():
    texts = [f"doc {i} about topic {i % 3} and word{i % 7} plus term{i % 11}" for i in range(60)]
    X = tfidf_svd_embed(texts, dim=16, seed=0)
    assert X.shape == (60, 16) and np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert np.array_equal(X, tfidf_svd_embed(texts, dim=16, seed=0))
    emb = TfidfSvdEmbedder(16, 0).fit(texts)
    assert np.allclose(emb.transform(texts[:5]), X[:5])
    new = emb.transform(["topic 1 and word3", "nothing known here"])
    assert new.shape == (2, 16) and np.isclose(np.linalg.norm(new[0]), 1.0) and not new[1].any()


def test_embedder_dim_larger_than_vocabulary():
    X = tfidf_svd_embed(["red apple", "green apple", "red car"], dim=64)
    assert X.shape == (3, 64) and np.allclose(np.linalg.norm(X, axis=1), 1.0)
    assert X[0] @ X[1] > X[1] @ X[2]  # shared "apple" is kept


# ----------------------------------------------------------------------------- k-means

def test_kmeans_is_sklearns_and_seeded():
    X, _ = make_blobs(n_samples=3000, centers=8, n_features=16, cluster_std=2.0, random_state=0)
    labels, C = kmeans(X, 8, seed=0)
    ref = KMeans(8, n_init=1, random_state=0).fit(X)
    assert ((X - C[labels]) ** 2).sum() == pytest.approx(ref.inertia_)
    assert np.array_equal(labels, kmeans(X, 8, seed=0)[0])
    with pytest.raises(ValueError):
        kmeans(X[:5], 6)


def test_kmeans_pp_init_takes_an_injected_distance():
    X = np.repeat(np.eye(3), 4, axis=0)  # 3 distinct points, 4 copies each
    calls = []

    def dist(A, B):
        calls.append(B.shape)
        return sq_euclidean(A, B)

    C = kmeans_pp_init(X, 3, np.random.default_rng(1), dist)
    assert calls and len({tuple(c) for c in C}) == 3  # greedy D^2 sampling finds the three distinct points


# ----------------------------------------------------------------------------- SemDeDup

def _ring(m: int) -> np.ndarray:
    a = np.linspace(0, 0.5, m)
    return np.stack([np.cos(a), np.sin(a)], 1)


def test_semdedup_honours_injected_similarity():
    X, labels = np.vstack([_ring(4), _ring(3)]), np.array([0] * 4 + [1] * 3)
    seen = []

    def all_same(Xc):
        seen.append(len(Xc))
        return np.ones((len(Xc), len(Xc)))

    r = semdedup(X, labels, all_same, threshold=0.5, keep="random", seed=0)
    assert sorted(seen) == [3, 4] and r.n_pairs_compared == 6 + 3 and r.n_clusters == 2
    assert r.keep_mask.sum() == 2 and r.n_removed == 5
    assert all(r.keep_mask[r.duplicate_of[~r.keep_mask]])  # representatives are kept docs
    none = semdedup(X, labels, lambda Xc: np.eye(len(Xc)), threshold=0.5)
    assert none.keep_mask.all() and (none.duplicate_of == -1).all()


def test_semdedup_groups_transitively_and_keep_rules():
    # 0~1 and 1~2 are similar, 0 and 2 are not: one group of three by connected components
    S = np.array([[1, .9, .1, 0], [.9, 1, .9, 0], [.1, .9, 1, 0], [0, 0, 0, 1.]])
    X = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1.0]])
    centroid = np.array([[0.9, 0.1]])
    hard = semdedup(X, np.zeros(4, int), lambda Xc: S, 0.5, keep="hard", centroids=centroid)
    easy = semdedup(X, np.zeros(4, int), lambda Xc: S, 0.5, keep="easy", centroids=centroid)
    assert hard.keep_mask.tolist() == [False, False, True, True]  # keeps the member farthest from centroid
    assert easy.keep_mask.tolist() == [True, False, False, True]
    assert hard.duplicate_of.tolist() == [2, 2, -1, -1]
    with pytest.raises(ValueError, match="keep"):
        semdedup(X, np.zeros(4, int), cosine_similarity_matrix, 0.5, keep="first")


def test_semdedup_classical_on_noisy_copies():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 32))
    X = np.vstack([base, base[:20] + 0.01 * rng.normal(size=(20, 32))])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    r = semdedup_classical(X, n_clusters=8, eps=0.01, seed=0)
    groups = [[i, 200 + i] for i in range(20)]
    assert dedup_scores(r.removed, groups)["f1"] == 1.0


def test_pipeline_reaches_planted_ground_truth(corpus, groups):
    texts = [d["text"] for d in corpus.docs]
    exact = exact_duplicate_of(texts)
    rest = np.flatnonzero(exact < 0)
    X = tfidf_svd_embed([texts[i] for i in rest], dim=DIM, seed=0)
    r = semdedup_classical(X, n_clusters=N_CLUSTERS, eps=EPS, seed=0, keep=KEEP)
    removed = exact >= 0
    removed[rest[r.removed]] = True
    s = dedup_scores(removed, groups)
    assert s["recall"] >= 0.9 and s["precision"] >= 0.9, s


def test_minhash_lsh_finds_planted_duplicates(corpus, groups):
    s = dedup_scores(minhash_lsh_duplicates([d["text"] for d in corpus.docs], seed=0), groups)
    assert s["recall"] >= 0.9 and s["precision"] >= 0.9, s


# ----------------------------------------------------------------------------- scoring

def test_dedup_scores_hand_cases():
    groups = [[0, 1], [2, 3, 4]]
    mask = np.zeros(8, bool)

    def score(*removed):
        m = mask.copy()
        m[list(removed)] = True
        return dedup_scores(m, groups)

    assert score(1, 3, 4) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 3, "fp": 0, "fn": 0,
                              "removed": 3, "expected": 3}
    assert score(0, 2, 3)["f1"] == 1.0  # keeping the copy and dropping the original is still right
    both = score(0, 1)  # removing a whole group loses the content: one TP, one FP
    assert (both["tp"], both["fp"], both["fn"]) == (1, 1, 2)
    extra = score(1, 3, 4, 6)
    assert extra["fp"] == 1 and extra["precision"] == 0.75 and extra["recall"] == 1.0
    assert score(2)["recall"] == pytest.approx(1 / 3)
    nothing = score()
    assert nothing["precision"] == 1.0 and nothing["recall"] == 0.0 and nothing["f1"] == 0.0


def test_planted_groups_merges_maps():
    ids = ["a", "b", "c", "d", "e"]
    groups = planted_groups(ids, {"b": "a", "d": "a", "e": "c", "zz": "a"})
    assert sorted(sorted(g) for g in groups) == [[0, 1, 3], [2, 4]]
    assert planted_groups(ids, {}) == []
