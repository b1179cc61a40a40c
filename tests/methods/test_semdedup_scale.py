"""SemDeDup at scale (issue 37, curate streams): a big cluster's similarity in row blocks, clusters in batches, the
centroids fitted on a sample, more clusters for a bigger corpus, the quantum encoding fitted once and applied row-wise,
TF-IDF embedded in shards, the removed pairs' TF-IDF cosine without a corpus-wide matrix. Below the thresholds every
path is the one-shot computation (same decisions); past them the decisions are the same or close."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from threadpoolctl import threadpool_limits

from qlife.data.generator import generate_corpus
from qlife.methods import semdedup as sd
from qlife.methods.embed import tfidf_pair_cosine, tfidf_svd_embed
from qlife.methods.qencoding import StateEncoder, encode
from qlife.methods.qkmeans import qsemdedup, sample_pairs
from qlife.methods.semdedup import (
    cluster_count,
    dedup_scores,
    fit_rows,
    planted_groups,
    semdedup_classical,
)

EPS = 0.09


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(seed=0, n_docs=1500)


@pytest.fixture(scope="module")
def X(corpus):
    return tfidf_svd_embed([d["text"] for d in corpus.docs], dim=128, seed=0)


@pytest.fixture(scope="module")
def groups(corpus):
    return planted_groups([d["id"] for d in corpus.docs], {**corpus.exact_duplicates, **corpus.near_duplicates})


def test_cluster_count_grows_past_n_clusters_times_cluster_docs():
    assert cluster_count(3000, 50, 5000) == 50  # the sizes the project runs today: unchanged
    assert cluster_count(250_000, 50, 5000) == 50
    assert cluster_count(800_000, 50, 5000) == 160
    assert cluster_count(800_000, 50, None) == 50
    assert cluster_count(10, 50, 5000) == 10


def test_fit_rows_is_none_up_to_the_sample_and_a_seeded_sorted_sample_past_it():
    assert fit_rows(1000, 1000) is None and fit_rows(1000, None) is None
    s = fit_rows(1000, 100, seed=3)
    assert len(s) == 100 == len(np.unique(s)) and (np.diff(s) > 0).all()
    assert np.array_equal(s, fit_rows(1000, 100, seed=3)) and not np.array_equal(s, fit_rows(1000, 100, seed=4))


def test_row_blocks_and_cluster_batches_give_the_one_shot_decisions(X, monkeypatch):
    whole = semdedup_classical(X, n_clusters=4, eps=EPS, seed=0)
    q_whole = qsemdedup(X, 4, EPS, seed=0)
    assert whole.n_removed > 50
    monkeypatch.setattr(sd, "BLOCK_ELEMS", 5000)  # clusters of ~375: blocks of 13 rows
    monkeypatch.setattr(sd, "BATCH_ROWS", 300)  # every cluster alone
    blocked = semdedup_classical(X, n_clusters=4, eps=EPS, seed=0)
    assert np.array_equal(blocked.duplicate_of, whole.duplicate_of)
    assert blocked.n_pairs_compared == whole.n_pairs_compared
    q_blocked = qsemdedup(X, 4, EPS, seed=0)
    assert np.array_equal(q_blocked.result.duplicate_of, q_whole.result.duplicate_of)
    # the circuits counted: the same distinct pairs, block by block
    assert q_blocked.resources.circuits == q_whole.resources.circuits


def test_a_fit_sample_as_large_as_the_corpus_changes_nothing(X):
    for m in (semdedup_classical(X, 20, EPS, seed=0), semdedup_classical(X, 20, EPS, seed=0, fit_sample=len(X))):
        assert m.n_removed == semdedup_classical(X, 20, EPS, seed=0).n_removed
    q = qsemdedup(X, 20, EPS, seed=0, fit_sample=len(X))
    assert np.array_equal(q.result.duplicate_of, qsemdedup(X, 20, EPS, seed=0).result.duplicate_of)
    assert q.fit_docs == len(X)


def test_centroids_fitted_on_a_sample_assign_every_document_and_still_find_the_planted_duplicates(X, groups):
    full = dedup_scores(semdedup_classical(X, 20, EPS, seed=0).removed, groups)
    r = semdedup_classical(X, 20, EPS, seed=0, fit_sample=500)
    sampled = dedup_scores(r.removed, groups)
    assert sampled["f1"] > full["f1"] - 0.05
    q = qsemdedup(X, 20, EPS, seed=0, fit_sample=500)
    assert q.fit_docs == 500 and len(q.kmeans.labels) == len(X)
    # every document sits with the centroid of highest fidelity (amplitude states: cos^2)
    states = encode(X, "amplitude", 7)
    assert np.array_equal(q.kmeans.labels, ((states @ q.kmeans.centroids.T) ** 2).argmax(1))
    assert dedup_scores(q.result.removed, groups)["f1"] > full["f1"] - 0.05
    A, B = sample_pairs(q, X, 10, seed=0)
    assert A.shape == B.shape == (10, 128)


@pytest.mark.parametrize("encoding,q,dim", [("amplitude", 7, 128), ("amplitude", 4, 128), ("angle", 6, 128)])
def test_the_fitted_encoder_is_encode_on_its_rows_and_row_wise_elsewhere(X, encoding, q, dim):
    enc = StateEncoder.fit(X, encoding, q)
    assert np.array_equal(enc(X), encode(X, encoding, q))
    assert np.allclose(enc(X[100:200]), enc(X)[100:200], atol=1e-12)


def test_tfidf_in_shards_is_tfidf_at_once(corpus, monkeypatch):
    from qlife import dedup
    from qlife.params import parse_params

    texts = [d["text"] for d in corpus.docs]
    params = parse_params({"curate": {"embedder": "tfidf"}})
    monkeypatch.setattr(dedup, "EMBED_ROWS", 128)
    X, info = dedup.tfidf_embed(texts, params)
    assert np.array_equal(X, tfidf_svd_embed(texts, dim=params.curate.embed_dim, seed=params.curate.seed))
    assert "fit_docs" not in info  # fitted on every text: the report as it was
    small = parse_params({"curate": {"embedder": "tfidf", "fit_sample": 500}})
    Xs, info = dedup.tfidf_embed(texts, small)
    assert info["fit_docs"] == 500 and Xs.shape == X.shape
    assert np.allclose(np.linalg.norm(Xs, axis=1), 1.0)


def test_removed_pairs_tfidf_cosine_is_sklearns_without_the_corpus_matrix(corpus):
    texts = [d["text"] for d in corpus.docs]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(texts), 300), rng.integers(0, len(texts), 300)
    T = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), dtype=np.float64).fit_transform(texts)
    expected = np.asarray(T[a].multiply(T[b]).sum(axis=1)).ravel()
    assert np.allclose(tfidf_pair_cosine(texts, a, b), expected, atol=1e-12)
    assert tfidf_pair_cosine(texts, a[:0], b[:0]).shape == (0,)
    assert (tfidf_pair_cosine(["!", "?"], np.array([0]), np.array([1])) == 0).all()
