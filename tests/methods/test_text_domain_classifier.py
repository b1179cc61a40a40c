"""The text domain classifier (qlife.methods.text_domain_classifier): a planted vocabulary drift ranks its documents
first with a small p-value, texts of the same pool do not, the cross-fitting never scores a document with a model
that saw it (the dual fit equals a primal ridge fitted without the fold; a row's own label never moves its score),
and bad inputs are refused. Small seeded synthetic texts, a few seconds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from qlife.methods.domain_classifier import cross_fit_folds
from qlife.methods.text_domain_classifier import _dual_ridge_scores, text_domain_classifier_test, text_features

WORDS = [f"w{i}" for i in range(300)]
NEW = ["zorblax", "quibnet", "fenwarp", "glimmox", "trundle"]


def docs(rng: np.random.Generator, n: int, planted: int = 0) -> list[str]:
    """n texts of 12 words drawn Zipf-like from WORDS; the first `planted` also hold 3 of the NEW words."""
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    out = []
    for i in range(n):
        w = list(rng.choice(WORDS, 12, p=p / p.sum()))
        if i < planted:
            w += list(rng.choice(NEW, 3, replace=False))
            rng.shuffle(w)
        out.append(" ".join(w))
    return out


def test_planted_vocabulary_ranks_first_with_a_small_p_value():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    ref, window = docs(rng, 400), docs(rng, 200, planted=40)  # the same new words in 20% of the window
    r = text_domain_classifier_test(ref, window, n_permutations=100, seed=1)
    assert r.p_value < 0.05  # (0.0099 here: no permutation reaches the observed AUC)
    assert r.auc > 0.55  # the window's AUC: the 80% clean documents dilute it
    planted = np.r_[np.ones(40), np.zeros(160)]
    assert roc_auc_score(planted, r.scores) > 0.95  # per document: the planted ones rank first
    assert set(np.argsort(-r.scores)[:20]) <= set(range(40))  # the 20 highest scores are all planted documents
    assert r.scores.shape == (200,) and r.reference_scores.shape == (400,)
    assert r.to_dict()["classifier"] == "ridge/tfidf-word"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_pool_gives_a_p_value_that_is_not_small(seed):
    rng = np.random.default_rng(100 + seed)
    pool = docs(rng, 400)
    r = text_domain_classifier_test(pool[:300], pool[300:], n_permutations=100, seed=seed)
    assert r.p_value > 0.05
    assert abs(r.auc - 0.5) < 0.08


def test_same_settings_same_result():
    rng = np.random.default_rng(3)
    ref, window = docs(rng, 120), docs(rng, 60, planted=10)
    a = text_domain_classifier_test(ref, window, n_permutations=30, seed=4, split_seed=2)
    b = text_domain_classifier_test(ref, window, n_permutations=30, seed=4, split_seed=2)
    assert a.p_value == b.p_value and np.array_equal(a.scores, b.scores)


def test_folds_cover_every_row_once():
    for N, k in ((7, 2), (100, 5), (803, 5)):
        folds = cross_fit_folds(N, k, seed=3)
        assert folds.shape == (N,) and set(folds) == set(range(k))  # one fold per row: a partition
        sizes = np.bincount(folds)
        assert sizes.sum() == N and sizes.max() - sizes.min() <= 1


def test_each_fold_is_scored_by_a_ridge_fitted_without_it():
    rng = np.random.default_rng(5)
    texts = docs(rng, 80, planted=15)
    F = text_features(texts)
    y = np.r_[np.zeros(50), np.ones(30)]
    folds = cross_fit_folds(len(texts), 5, seed=0)
    ours = _dual_ridge_scores((F @ F.T).toarray(), y[None], folds, ridge=0.7)[0]
    dense = F.toarray()
    for k in range(5):
        tr, te = folds != k, folds == k
        ref = Ridge(alpha=0.7).fit(dense[tr], y[tr]).predict(dense[te])  # the primal fit, this fold left out
        np.testing.assert_allclose(ours[te], ref - y[tr].mean(), atol=1e-8)  # (less its intercept)


def test_a_rows_own_label_never_moves_its_score():
    rng = np.random.default_rng(6)
    texts = docs(rng, 60, planted=10)
    K = (text_features(texts) @ text_features(texts).T).toarray()
    y = np.r_[np.zeros(40), np.ones(20)]
    folds = cross_fit_folds(len(texts), 5, seed=1)
    base = _dual_ridge_scores(K, y[None], folds, ridge=1.0)[0]
    for i in (0, 17, 45, 59):
        flipped = y.copy()
        flipped[i] = 1 - flipped[i]
        s = _dual_ridge_scores(K, flipped[None], folds, ridge=1.0)[0]
        assert s[i] == pytest.approx(base[i], abs=1e-12)  # scored by a model that never saw row i
        assert not np.allclose(s[folds != folds[i]], base[folds != folds[i]])  # the other folds did see it


def test_refuses_bad_inputs():
    rng = np.random.default_rng(7)
    ref, window = docs(rng, 20), docs(rng, 10)
    with pytest.raises(ValueError, match="n_folds"):
        text_domain_classifier_test(ref, window, n_folds=1)
    with pytest.raises(ValueError, match="at least n_folds"):
        text_domain_classifier_test(ref, window[:3])
    with pytest.raises(ValueError, match="ridge"):
        text_domain_classifier_test(ref, window, ridge=0.0)
    with pytest.raises(ValueError, match="analyzer"):
        text_features(ref, analyzer="bpe")


def test_texts_without_shared_terms_give_a_null_result_not_an_error():
    ref = [f"alpha{i}" for i in range(10)]
    window = [f"beta{i}" for i in range(10)]
    r = text_domain_classifier_test(ref, window, n_permutations=20)  # every term in one document: nothing to learn
    assert r.auc == pytest.approx(0.5) and r.p_value == 1.0  # one intercept for every fold: all scores tie
    assert np.all(r.scores == 10 / 20)


def test_the_registry_test_reads_the_windows_texts_and_skips_without_them():
    from qlife.methods.drifttests import REGISTRY, Window, subsample_decisions
    from qlife.params import Monitor

    rng = np.random.default_rng(8)
    ref_t, live_t = docs(rng, 120), docs(rng, 60, planted=30)
    section = Monitor(n_permutations=50, max_ref=None, seed=3, ref_seed=1, split_seed=2,
                      tests=["rbf", "text_domain_classifier"])
    ref, live = rng.normal(size=(120, 4)), rng.normal(size=(60, 4))  # features without drift: the texts carry it
    test = REGISTRY["text_domain_classifier"](section)
    out = test.run(Window(section, ref, live, reference_texts=ref_t, texts=live_t))
    direct = text_domain_classifier_test(ref_t, live_t, n_permutations=50, seed=3, split_seed=2)
    assert out.row["p_value"] == direct.p_value < 0.05 and out.row["alarm"] is True
    np.testing.assert_array_equal(out.scores, direct.scores)
    skipped = test.run(Window(section, ref, live))
    assert skipped.row["p_value"] is None and "no texts" in skipped.row["skipped"] and not skipped.row["alarm"]
    with pytest.raises(ValueError, match="59 window texts"):
        test.run(Window(section, ref, live, reference_texts=ref_t, texts=live_t[:59]))
    # the verdict's halves: the texts halved with the rows
    d, outcomes = subsample_decisions(section, ref, live, ["text_domain_classifier"], k=2, n_permutations=30,
                                      reference_texts=ref_t, texts=live_t)
    assert [o.row["n_ref"] for o in outcomes["text_domain_classifier"]] == [60, 60]
    assert [o.row["n_live"] for o in outcomes["text_domain_classifier"]] == [30, 30]
