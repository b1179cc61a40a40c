"""Per-document drift scores: a domain classifier of reference vs window, cross-fitted, with a permutation test.

Evidently's default for embedding drift. Inputs: the reference ``X`` (n x d) and the live window ``Y`` (m x d),
the same feature columns (the monitor's standardised projection). A classifier learns to tell window rows (label 1)
from reference rows (label 0); cross-fitting makes every row's score come from a model not trained on it: the
pooled rows are cut into ``n_folds`` folds by ``split_seed`` alone (never by the labels), and fold k is scored by
the model fitted on the other folds. Outputs (`DomainClassifierResult`):
- ``auc``: the cross-fitted ROC-AUC of window vs reference: 0.5 when the window is the reference's distribution;
- ``p_value``: a permutation test of that AUC: the labels are permuted (`qlife.methods.drift.permutations`, the
  splits every drift test of a window shares for the same (N, n, count, seed)), the classifier refitted on the same
  folds and the AUC recomputed; p = (1 + #{permuted AUC >= observed}) / (1 + n_permutations), exact for any n,
  with a floor of 1 / (n_permutations + 1) (0.0099 at the default 100: every clear drift reads it);
- ``scores``: per window document, the cross-fitted probability that it comes from the window (without drift,
  about the base rate m / (n + m)): the documents that made the window drift rank first. Unlike a one-class SVM
  fitted on the reference (a density detector), it finds drifted documents that lie in a dense part of the
  reference's support, e.g. near its centre.

Classifier: by default a ridge-regularised least-squares classifier (the linear probability model: its prediction
estimates P(window | x); clipped to [0, 1] in ``scores``) on ``features`` expanded from the columns: ``linear``
(x), ``quadratic`` (x and x^2: mean, scale and "inside / outside" shifts; the default) or ``interactions`` (plus
x_i x_j); being linear in these, it sees changes of the columns' means and variances (and covariances with
interactions), not every change of shape (a nonlinear scikit-learn classifier can). Its fit is linear in the
labels, so the observed fit and every permuted refit are a few matrix products: 100 permutations cost little more
than one fit. Any scikit-learn classifier can replace it (``classifier=lambda: LogisticRegression()``, a
gradient-boosted model...): then it is refitted for every fold and permutation, (n_permutations + 1) x n_folds fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from qlife.methods.drift import _check_samples, permutations

FEATURES = ("linear", "quadratic", "interactions")


@dataclass(frozen=True)
class DomainClassifierResult:
    auc: float  # cross-fitted ROC-AUC of window (1) vs reference (0)
    p_value: float  # (1 + #{permuted AUC >= observed}) / (1 + n_permutations)
    n_permutations: int
    scores: np.ndarray = field(repr=False)  # (m,) cross-fitted P(window | x) of the window's documents
    reference_scores: np.ndarray = field(repr=False)  # (n,) the same for the reference rows
    n_folds: int = 5
    classifier: str = "ridge"

    @property
    def p_value_floor(self) -> float:
        """The smallest p-value this many permutations can give."""
        return 1.0 / (self.n_permutations + 1)

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-safe summary (the per-document scores stay on the object)."""
        n, m = len(self.reference_scores), len(self.scores)
        return {"auc": float(self.auc), "p_value": float(self.p_value), "p_value_floor": self.p_value_floor,
                "n_permutations": int(self.n_permutations), "n_folds": int(self.n_folds),
                "classifier": self.classifier, "n_ref": n, "n_live": m, "base_rate": m / (n + m),
                "mean_score": float(self.scores.mean())}


def expand(Z: np.ndarray, features: str = "quadratic") -> np.ndarray:
    """The classifier's inputs: x (linear), [x, x^2] (quadratic), [x, x^2, x_i x_j for i < j] (interactions)."""
    if features not in FEATURES:
        raise ValueError(f"features {features!r}: one of {FEATURES}")
    if features == "linear":
        return Z
    parts = [Z, Z**2]
    if features == "interactions":
        i, j = np.triu_indices(Z.shape[1], k=1)
        parts.append(Z[:, i] * Z[:, j])
    return np.concatenate(parts, axis=1)


def cross_fit_folds(N: int, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) of each of N pooled rows: a seeded, label-free partition into near-equal folds, so
    the observed labels and every permutation are scored on the same folds (the permutation test stays exact)."""
    folds = np.empty(N, dtype=int)
    folds[np.random.default_rng(seed).permutation(N)] = np.arange(N) % n_folds
    return folds


def _ridge_scores(F: np.ndarray, labels: np.ndarray, folds: np.ndarray, ridge: float) -> np.ndarray:
    """Out-of-fold least-squares predictions (P, N) of each row of 0/1 `labels` (P, N): for each fold, intercept +
    ridge fit on the other folds (penalty ridge * training rows, features standardised on the pooled rows)."""
    out = np.empty(labels.shape)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        mean = F[tr].mean(0)
        Fc = F[tr] - mean
        A = Fc.T @ Fc + ridge * tr.sum() * np.eye(F.shape[1])
        B = np.linalg.solve(A, Fc.T @ labels[:, tr].T)  # (p, P): Fc is centred, so the labels need not be
        out[:, te] = labels[:, tr].mean(1)[:, None] + ((F[te] - mean) @ B).T
    return out


def _sklearn_scores(F: np.ndarray, labels: np.ndarray, folds: np.ndarray, classifier: Callable[[], Any]
                    ) -> np.ndarray:
    """Out-of-fold P(label 1) (P, N) from a fresh `classifier()` fitted per fold and per labels row."""
    from threadpoolctl import threadpool_limits

    out = np.empty(labels.shape)
    with threadpool_limits(1):  # many small fits: BLAS threads oversubscribe a shared box (~5x slower)
        for p, y in enumerate(labels):
            for k in np.unique(folds):
                tr, te = folds != k, folds == k
                if np.unique(y[tr]).size < 2:  # a training set of one class: predict that class
                    out[p, te] = y[tr][0]
                    continue
                est = classifier().fit(F[tr], y[tr])
                out[p, te] = est.predict_proba(F[te])[:, list(est.classes_).index(1)]
    return out


def _aucs(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of `scores` against the 0/1 row of `labels` (Mann-Whitney, ties counted half)."""
    m = labels.sum(1)
    n = labels.shape[1] - m
    ranks = rankdata(scores, axis=1)
    return ((ranks * labels).sum(1) - m * (m + 1) / 2) / (n * m)


def domain_classifier_test(
    X: np.ndarray, Y: np.ndarray, n_folds: int = 5, n_permutations: int = 100, features: str = "quadratic",
    ridge: float = 1e-2, classifier: Callable[[], Any] | None = None, seed: int = 0, split_seed: int = 0,
) -> DomainClassifierResult:
    """Cross-fitted domain classifier of reference ``X`` vs window ``Y``: its AUC, a permutation p-value for it
    (labels permuted with ``seed``, refitted on the folds fixed by ``split_seed``) and per-document scores.

    ``classifier``: a factory of scikit-learn classifiers (``predict_proba``) to use instead of the closed-form
    ridge classifier (``ridge``: its penalty per training row, on standardised ``features``).
    """
    X, Y = _check_samples(X, Y)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2 (every document scored by a model not trained on it); got {n_folds}")
    if min(len(X), len(Y)) < n_folds:
        raise ValueError(f"each sample needs at least n_folds = {n_folds} rows; got {len(X)} and {len(Y)}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    if ridge <= 0 and classifier is None:
        raise ValueError(f"ridge must be > 0; got {ridge}")
    n, N = len(X), len(X) + len(Y)
    F = expand(np.concatenate([X, Y]), features)
    F = (F - F.mean(0)) / np.where(F.std(0) > 0, F.std(0), 1.0)  # label-free: the same for every permutation
    folds = cross_fit_folds(N, n_folds, split_seed)
    fit = (lambda lab: _ridge_scores(F, lab, folds, ridge)) if classifier is None else (
        lambda lab: _sklearn_scores(F, lab, folds, classifier))
    observed = np.r_[np.zeros(n), np.ones(N - n)][None]
    obs_scores = fit(observed)[0]
    auc = float(_aucs(obs_scores[None], observed)[0])
    exceed = 0
    for Z in permutations(N, n, n_permutations, seed):  # Z: 1 = a reference row; the window's label is 1 - Z
        exceed += int((_aucs(fit(1.0 - Z), 1.0 - Z) >= auc - 1e-12).sum())
    name = "ridge" if classifier is None else type(classifier()).__name__
    scores = np.clip(obs_scores, 0.0, 1.0)
    return DomainClassifierResult(auc, (1 + exceed) / (1 + n_permutations), n_permutations, scores[n:], scores[:n],
                                  n_folds, f"{name}/{features}")
