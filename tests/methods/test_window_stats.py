"""The per-window drift statistic for the sequential alarm (qlife.methods.window_stats): the estimator's
definition, a fixed function of (reference, window), its direction under a clustered drift that a median-bandwidth
MMD^2 barely sees, and its inputs refused with a sentence. Small seeded Gaussians, well under a second."""

from __future__ import annotations

import numpy as np
import pytest

from qlife.methods import sequential as sq
from qlife.methods.drift import median_bandwidth, mmd2_from_kernel, rbf_kernel
from qlife.methods.window_stats import knn_divergence, knn_log_ratios

D = 8


def sample(rng: np.random.Generator, n: int, drift: float = 0.0, where: float = 0.0) -> np.ndarray:
    """n rows of N(0, I_D); a share `drift` replaced by a tight cluster at `where` on the first axis (a new topic:
    inside the reference's support, crowded together)."""
    x = rng.standard_normal((n, D))
    k = int(round(drift * n))
    if k:
        x[:k] = 0.15 * rng.standard_normal((k, D))
        x[:k, 0] += where
    return x


def brute(reference: np.ndarray, window: np.ndarray, k: int) -> float:
    """The Wang-Kulkarni-Verdu estimator written out row by row."""
    n, (m, d) = len(reference), window.shape
    total = 0.0
    for i, y in enumerate(window):
        rho = np.sort(np.linalg.norm(reference - y, axis=1))[k - 1]
        nu = np.sort(np.linalg.norm(np.delete(window, i, axis=0) - y, axis=1))[k - 1]
        total += np.log(rho / nu)
    return d * total / m + np.log(n / (m - 1))


def test_matches_the_estimator_written_out():
    rng = np.random.default_rng(0)
    ref, win = sample(rng, 120), sample(rng, 40, 0.2)
    for k in (1, 5, 20):
        assert knn_divergence(ref, win, k) == pytest.approx(brute(ref, win, k), rel=1e-9, abs=1e-9)
    lr = knn_log_ratios(ref, win, 5)
    assert lr.shape == (40,)
    assert knn_divergence(ref, win, 5) == pytest.approx(D * lr.mean() + np.log(120 / 39))


def test_a_fixed_function_of_reference_and_window():
    """The same rows give the same number, whatever their order (ranks over windows need a fixed function)."""
    rng = np.random.default_rng(1)
    ref, win = sample(rng, 150), sample(rng, 50, 0.1)
    v = knn_divergence(ref, win)
    assert knn_divergence(ref[rng.permutation(150)], win[rng.permutation(50)]) == pytest.approx(v, rel=1e-12)
    assert knn_divergence(ref.copy(), win.copy()) == v


def test_clustered_drift_raises_it_where_median_bandwidth_mmd_barely_moves():
    """10% of the window crowded near the reference's centre: the kNN divergence moves several null standard
    deviations; the RBF MMD^2 at the median-heuristic bandwidth (stage 7's statistic) far less. With k below the
    cluster's size, the drifted rows rank first by their log ratios."""
    rng = np.random.default_rng(2)
    ref = sample(rng, 300)

    def stats(drift: float) -> tuple[float, float]:
        w = sample(rng, 100, drift)
        gamma = 1.0 / (2.0 * median_bandwidth(ref, w) ** 2)
        z = np.concatenate([ref, w])
        return knn_divergence(ref, w), mmd2_from_kernel(rbf_kernel(z, z, gamma), len(ref))

    null = np.array([stats(0.0) for _ in range(40)])
    drifted = np.array([stats(0.1) for _ in range(10)])
    shift = (drifted.mean(0) - null.mean(0)) / null.std(0, ddof=1)
    assert shift[0] > 4.0 and shift[0] > 2.0 * shift[1], shift
    w = sample(rng, 100, 0.1)
    top = np.argsort(-knn_log_ratios(ref, w, 5))[:10]
    assert (top < 10).mean() >= 0.8  # rows 0..9 are the drifted ones


def test_repeated_rows_stay_finite():
    rng = np.random.default_rng(3)
    ref = sample(rng, 60)
    win = np.repeat(sample(rng, 2), 15, axis=0)  # 30 rows, two documents repeated
    assert np.isfinite(knn_divergence(ref, win, 5))


@pytest.mark.parametrize("bad, match", [
    (dict(k=0), "k must be"), (dict(k=2.5), "k must be"), (dict(k=True), "k must be"),
    (dict(k=30), "needs at least"), (dict(window=np.zeros((10, D + 1))), "same columns"),
    (dict(window=np.full((10, D), np.nan)), "finite"),
])
def test_refuses_bad_inputs_with_a_sentence(bad, match):
    rng = np.random.default_rng(4)
    args = {"reference": sample(rng, 40), "window": sample(rng, 10), "k": 3, **bad}
    with pytest.raises(ValueError, match=match):
        knn_divergence(**args)


def test_feeds_the_sequential_detector():
    """The stage's wiring: the window's statistic into sequential.update (conformal, larger = drift) with the
    default settings; a clustered drift after 60 clean windows raises the alarm within a few windows."""
    rng = np.random.default_rng(5)
    ref = sample(rng, 300)
    state = sq.init_state({"sim_streams": 500})
    for t in range(60):
        state, dec = sq.update(state, knn_divergence(ref, sample(rng, 100)), f"w{t}")
        assert not dec["alarm"]
    for t in range(60, 72):
        state, dec = sq.update(state, knn_divergence(ref, sample(rng, 100, 0.2)), f"w{t}")
        if dec["alarm"]:
            break
    assert dec["alarm"] and t - 60 + 1 <= 6, t


def test_residual_top_is_the_mean_of_the_largest_values_and_refuses_too_few():
    from qlife.methods.window_stats import residual_top

    rng = np.random.default_rng(5)
    r = rng.normal(size=200)
    assert residual_top(r, 20) == pytest.approx(np.sort(r)[-20:].mean())
    assert residual_top(r[::-1], 20) == residual_top(r, 20)  # order-free
    lifted = r.copy()
    lifted[:20] += 3.0  # a tenth of the window off the subspace
    assert residual_top(lifted, 20) > residual_top(r, 20) + 1.0
    for bad in (0, 201, 2.5, True):
        with pytest.raises(ValueError):
            residual_top(r, bad)
    with pytest.raises(ValueError, match="finite"):
        residual_top(np.r_[r, np.nan], 5)


def _words_window(rng: np.random.Generator, vocab: list[str], m: int, planted: str | None = None,
                  share: float = 0.0) -> tuple[list[str], np.ndarray]:
    """m texts of 6-12 vocabulary words each, each with one rare new word of its own (a hapax: xq<row><draw>);
    a share `share` of them also ends with the planted new word. Returns the texts and which hold the plant."""
    texts, holds = [], np.zeros(m, dtype=bool)
    for i in range(m):
        w = list(rng.choice(vocab, rng.integers(6, 13))) + [f"Xq{i}{rng.integers(10**6)}"]
        if planted and i < round(share * m):
            w.append(planted)
            holds[i] = True
        texts.append(" ".join(w))
    return texts, holds


def test_new_words_counts_the_documents_of_a_recurring_new_word_and_scores_them():
    """A new word planted in a tenth of the window is counted (20 documents of 200) and exactly its documents are
    scored; the tokenisation is lower-cased \\w+, so 'LOL!' and 'lol' are one word."""
    from qlife.methods.window_stats import new_word_scores, new_words, vocabulary, words

    rng = np.random.default_rng(7)
    base = [f"w{i}" for i in range(300)]
    vocab = vocabulary(" ".join(rng.choice(base, 10)) for _ in range(400))
    assert vocab == set(base)  # every word of the training texts
    texts, holds = _words_window(rng, base, 200, planted="LOL!", share=0.1)
    scores, recurring = new_word_scores(vocab, texts, 3)
    assert recurring == {"lol": 20}
    assert np.array_equal(scores > 0, holds) and scores.max() == 1
    assert new_words(vocab, texts, 3) == 20.0
    assert words("Don't say LOL, café!") == ["don", "t", "say", "lol", "café"]
    # a second planted word in 5 of the same documents: they hold two recurring new words, counted once each
    texts2 = [t + " tbh" if i < 5 else t for i, t in enumerate(texts)]
    s2, rec2 = new_word_scores(vocab, texts2, 3)
    assert rec2 == {"lol": 20, "tbh": 5} and s2[:5].tolist() == [2] * 5 and new_words(vocab, texts2, 3) == 20.0


def test_new_words_is_zero_in_distribution():
    """Texts whose words are all in the vocabulary give 0, and so do rare new words each in one document (or
    two, below min_docs = 3): any window has them."""
    from qlife.methods.window_stats import new_word_scores, new_words, vocabulary

    rng = np.random.default_rng(8)
    base = [f"w{i}" for i in range(300)]
    vocab = vocabulary(base)
    known = [" ".join(rng.choice(base, 10)) for _ in range(200)]
    assert new_words(vocab, known) == 0.0
    rare, _ = _words_window(rng, base, 200)  # a hapax in every document
    scores, recurring = new_word_scores(vocab, rare, 3)
    assert new_words(vocab, rare) == 0.0 and recurring == {} and not scores.any()
    pairs = rare[:2] + [t + " zz" for t in rare[2:4]] + rare[4:]  # 'zz' in two documents: not recurring at 3
    assert new_words(vocab, pairs, 3) == 0.0 and new_words(vocab, pairs, 2) == 2.0
    with pytest.raises(ValueError, match="min_docs"):
        new_words(vocab, rare, 0)


def test_new_words_feeds_the_sequential_detector():
    """Exchangeable windows of rare new words keep the detector quiet; a new word in a tenth of the documents
    raises the alarm within 6 windows."""
    from qlife.methods.window_stats import new_words, vocabulary

    rng = np.random.default_rng(9)
    base = [f"w{i}" for i in range(300)]
    vocab = vocabulary(base)
    pool, _ = _words_window(rng, base, 1000)  # documents with a hapax each; windows drawn from them

    def window(share: float = 0.0) -> list[str]:
        texts = [pool[i] for i in rng.choice(len(pool), 100, replace=False)]
        return [t + " tbh" if i < round(share * 100) else t for i, t in enumerate(texts)]

    state = sq.init_state({"sim_streams": 500})
    for t in range(60):
        state, dec = sq.update(state, new_words(vocab, window()), f"w{t}")
        assert not dec["alarm"]
    for t in range(60, 72):
        state, dec = sq.update(state, new_words(vocab, window(0.1)), f"w{t}")
        if dec["alarm"]:
            break
    assert dec["alarm"] and t - 60 + 1 <= 6, t
