"""Domain classifier: cross-fitted AUC near 0.5 and calibrated p-values without drift, planted drifted documents
ranked first, including the ones a one-class SVM calls typical (a dense cluster at the reference's centre)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import OneClassSVM

from qlife.methods.domain_classifier import (
    _ridge_scores,
    cross_fit_folds,
    domain_classifier_test,
    expand,
)
from qlife.methods.drift import median_bandwidth


def gauss(n: int, d: int = 4, scale: float = 1.0, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


def planted(drifted: np.ndarray, clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A window of the drifted rows then the clean ones, and its per-document truth (1 = drifted)."""
    return np.concatenate([drifted, clean]), np.r_[np.ones(len(drifted)), np.zeros(len(clean))]


def test_in_distribution_window_auc_near_half_p_not_small() -> None:
    res = domain_classifier_test(gauss(300, seed=1), gauss(150, seed=2))
    assert abs(res.auc - 0.5) < 0.07
    assert res.p_value > 0.1  # uniform under no drift: this seeded draw reads 0.19
    assert res.scores.shape == (150,) and res.reference_scores.shape == (300,)
    assert ((res.scores >= 0) & (res.scores <= 1)).all()
    assert abs(res.scores.mean() - 150 / 450) < 0.05  # about the base rate: nothing tells the window apart


def test_false_alarm_rate_over_50_in_distribution_draws() -> None:
    rejections = 0
    for s in range(50):
        rng = np.random.default_rng([34, s])
        X, Y = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
        rejections += domain_classifier_test(X, Y, n_permutations=50, seed=s, split_seed=s).p_value < 0.05
    assert rejections / 50 <= 0.12  # an exact permutation test: 0.05 in expectation (sd 0.03 over 50 draws)


def test_thirty_percent_shifted_documents_are_found() -> None:
    # 60 of 200 documents shifted by 1 in each of 4 features; over 20 seeds: per-document AUC 0.82-0.92, p 0.01-0.02
    window, truth = planted(gauss(60, shift=1.0, seed=3), gauss(140, seed=4))
    res = domain_classifier_test(gauss(300, seed=5), window)
    assert res.p_value < 0.05
    assert res.auc > 0.6
    assert roc_auc_score(truth, res.scores) > 0.8


def test_a_dense_cluster_at_the_centre_is_typical_for_a_one_class_svm_not_for_the_classifier() -> None:
    """Drifted documents inside the reference's support (a tight cluster at its mean): the one-class SVM, a
    density detector fitted on the reference, scores them as the most typical (the issue's AUC < 0.5)."""
    reference = gauss(300, scale=1.0, seed=6)
    window, truth = planted(gauss(30, scale=0.1, seed=7), gauss(70, seed=8))
    gamma = 1.0 / (2.0 * median_bandwidth(reference, reference) ** 2)  # the stage's one-class SVM kernel
    svm = OneClassSVM(kernel="rbf", gamma=gamma, nu=0.05).fit(reference)
    svm_auc = roc_auc_score(truth, -svm.decision_function(window))  # higher: more anomalous
    # over 20 seeds: one-class SVM 0.00-0.01, domain classifier 0.80-0.99
    dc_auc = roc_auc_score(truth, domain_classifier_test(reference, window).scores)
    assert svm_auc < 0.5
    assert dc_auc > 0.7


def test_ridge_scores_are_a_ridge_fit_on_the_other_folds() -> None:
    F = expand(gauss(60, d=3, seed=9))
    F = (F - F.mean(0)) / F.std(0)
    y = (np.random.default_rng(10).random(60) < 0.4).astype(float)
    folds = cross_fit_folds(60, 4, seed=0)
    ours = _ridge_scores(F, y[None], folds, ridge=0.05)[0]
    for k in range(4):
        tr, te = folds != k, folds == k
        ref = Ridge(alpha=0.05 * tr.sum()).fit(F[tr], y[tr]).predict(F[te])
        np.testing.assert_allclose(ours[te], ref, atol=1e-10)


def test_every_document_is_scored_by_a_model_not_trained_on_it() -> None:
    folds = cross_fit_folds(50, 5, seed=3)
    assert np.bincount(folds).tolist() == [10] * 5
    # 1-nearest-neighbour memorises its training rows: in-sample it would score AUC 1.0 on pure noise
    res = domain_classifier_test(gauss(40, seed=11), gauss(40, seed=12), n_permutations=20, features="linear",
                                 classifier=lambda: KNeighborsClassifier(n_neighbors=1))
    assert abs(res.auc - 0.5) < 0.15 and res.p_value > 0.05
    assert res.classifier == "KNeighborsClassifier/linear"


def test_a_scikit_learn_classifier_can_replace_the_ridge() -> None:
    window, truth = planted(gauss(30, shift=1.0, seed=13), gauss(70, seed=14))
    res = domain_classifier_test(gauss(200, seed=15), window, n_permutations=20, classifier=LogisticRegression)
    assert res.p_value == pytest.approx(res.p_value_floor) and res.p_value_floor == pytest.approx(1 / 21)
    assert roc_auc_score(truth, res.scores) > 0.8


def test_seeded_and_json_safe() -> None:
    X, Y = gauss(80, seed=16), gauss(60, shift=0.3, seed=17)
    a, b = domain_classifier_test(X, Y, seed=3), domain_classifier_test(X, Y, seed=3)
    assert a.auc == b.auc and a.p_value == b.p_value and np.array_equal(a.scores, b.scores)
    assert a.p_value >= a.p_value_floor == pytest.approx(1 / 101)
    d = json.loads(json.dumps(a.to_dict()))
    assert d["n_ref"] == 80 and d["n_live"] == 60 and d["classifier"] == "ridge/quadratic"


@pytest.mark.parametrize("X,Y,kwargs,match", [
    (np.zeros((10, 3)), np.zeros((10, 2)), {}, "same number of columns"),
    (np.full((10, 2), np.nan), np.zeros((10, 2)), {}, "NaN"),
    (gauss(10), gauss(10), {"n_folds": 1}, "n_folds must be >= 2"),
    (gauss(10), gauss(3), {}, "at least n_folds"),
    (gauss(10), gauss(10), {"n_permutations": 0}, "n_permutations"),
    (gauss(10), gauss(10), {"features": "cubic"}, "features 'cubic'"),
    (gauss(10), gauss(10), {"ridge": 0.0}, "ridge must be > 0"),
])
def test_bad_input_raises_with_a_sentence(X, Y, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        domain_classifier_test(X, Y, **kwargs)
