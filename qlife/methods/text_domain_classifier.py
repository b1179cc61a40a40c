"""A domain classifier on the window's texts: reference vs window, TF-IDF features, cross-fitted, with a permutation
test (Evidently's text-drift method: a classifier of reference vs current texts, its ROC-AUC against a null).

The embedding domain classifier (qlife.methods.domain_classifier) reads the 16 projected features, which keep little
of a vocabulary change; this one reads the words. Inputs: the reference's texts and the window's texts (lists of
str). Method:
- features: TF-IDF of the pooled texts (reference + window; the vectoriser and its idf are fitted on both, without
  the labels, so every permutation sees the same features): lower-cased `\\w+` words (as
  qlife.methods.window_stats.words: "u" and "lol" count), unigrams by default (`analyzer`: `word`, `word12` for
  unigrams and bigrams, `char` for character 2-4-grams inside word boundaries), a term kept when it occurs in at
  least `min_df` (2) of the pooled documents (a term of one document cannot be learnt across folds), sublinear tf,
  rows unit-normalised;
- classifier: ridge least squares of the 0/1 window label on those features (the linear probability model),
  intercept unpenalised, penalty `ridge` (absolute: the rows have unit norm); fitted in its dual form (a kernel
  ridge on the linear kernel F F^T, N x N with N = n + m pooled rows) because the terms outnumber the documents;
- cross-fitting: the pooled rows are cut into `n_folds` folds by `split_seed` alone
  (qlife.methods.domain_classifier.cross_fit_folds: never by the labels); fold k is scored by the model fitted on
  the other folds, so no document is scored by a model that saw it; every fold's scores share one intercept, the
  pooled window share m / N (the same for every permutation), not their training rows' mean (`_dual_ridge_scores`:
  that one ranks a window below its reference when the classifier learns little);
- p-value: the labels permuted (qlife.methods.drift.permutations: the same splits as the window's other tests for
  the same (N, n, count, seed)), refitted on the same folds, the AUC recomputed; p = (1 + #{permuted AUC >=
  observed}) / (1 + n_permutations). The fit is linear in the labels: per fold one Cholesky factor, then the
  observed labels and every permutation are one multi-right-hand-side solve.
Outputs (qlife.methods.domain_classifier.DomainClassifierResult): `auc` (cross-fitted, window vs reference; 0.5
without drift), `p_value`, `scores` (per window document, the cross-fitted linear-probability score of "window":
higher = more window-like = more drift-like; not clipped to [0, 1], which would tie the most window-like documents)
and `reference_scores`.

`DEFAULTS` (word unigrams, ridge 1) were chosen on tuning draws seeded apart from the evaluation's (bench/doc_scores.py
--tune-text: 3 draws per cell, 10 cells of new topic / generator vocabulary / chat style / label shift / the
generator's planted drift at 10 and 20%; bench/results/doc_scores_text_tuning.json): mean per-document AUC word/1
0.654, word1-2/1 0.653, ridge 10 and 100 0.649-0.650. A larger ridge suits a new topic (a diffuse shift of many
words: 0.67 at 100 against 0.55 at 1), a smaller one a new vocabulary (a few new words in few documents: 0.69 at 1
against 0.62 at 100). Character 2-4-grams matched words within 0.01 on the topic cells at 2-3x the cost.
Measured (bench/results/doc_scores.json): the per-document AUC is high where the drifted documents share new
words in many documents (SST-2 in a chat style: 0.87 / 0.95 at 10 / 20%) and low where each new word sits in a few
of the window's documents (the generator's drift vocabulary: 0.59-0.65, where a supervised classifier on the same
words reaches 0.89-0.91: cross-fitted on one window, the classifier sees each new word in 1-3 training documents).
The window's AUC is diluted by its clean documents (at most f + (1 - f) / 2 for a share f of drifted documents),
so the per-window test finds a 20% drift less often than the per-document ranking suggests.
Cost: ~0.2-0.4 s of one core for 225 reference + 400 window texts and 200 permutations (vectorising, one N x N
kernel, five Cholesky factors and a multi-right-hand-side solve each); ~0.7 s for 600 + 200 on a loaded box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from qlife.methods.domain_classifier import DomainClassifierResult, _aucs, cross_fit_folds
from qlife.methods.drift import permutations

ANALYZERS = ("word", "word12", "char")
DEFAULTS = {"analyzer": "word", "ridge": 1.0, "min_df": 2}


def text_features(texts: Sequence[str], analyzer: str = DEFAULTS["analyzer"], min_df: int = DEFAULTS["min_df"]):
    """Sparse TF-IDF rows (unit norm) of `texts`: the module docstring's features. A corpus where no term reaches
    `min_df` documents gives one all-zero column (nothing to learn)."""
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer not in ANALYZERS:
        raise ValueError(f"analyzer {analyzer!r}: one of {ANALYZERS}")
    kw = ({"analyzer": "char_wb", "ngram_range": (2, 4)} if analyzer == "char" else
          {"analyzer": "word", "token_pattern": r"(?u)\w+", "ngram_range": (1, 2 if analyzer == "word12" else 1)})
    try:
        return TfidfVectorizer(lowercase=True, min_df=min_df, sublinear_tf=True, dtype=np.float64,
                               **kw).fit_transform([str(t) for t in texts])
    except ValueError:  # "no terms remain": every term is rarer than min_df
        return csr_matrix((len(texts), 1))


def _dual_ridge_scores(K: np.ndarray, labels: np.ndarray, folds: np.ndarray, ridge: float) -> np.ndarray:
    """Out-of-fold ridge predictions (P, N) of each 0/1 row of `labels` from the linear kernel K = F F^T, less their
    intercept: per fold, features centred on its training rows (the kernel centred alike), labels centred on the
    training rows' mean. The caller adds one intercept for every fold (the pooled share m / N): a per-fold intercept
    (the training rows' mean) is lower in a fold that holds more window rows, which ranks the window's rows below
    the reference's whenever the learnt part is small (the cross-validation bias of a weak classifier)."""
    out = np.empty(labels.shape)
    for k in np.unique(folds):
        tr, te = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        Ktr = K[np.ix_(tr, tr)]
        col = Ktr.mean(0)
        Kc = Ktr - col[:, None] - col[None, :] + col.mean()
        Kte = K[np.ix_(te, tr)]
        Kte_c = Kte - Kte.mean(1)[:, None] - col[None, :] + col.mean()
        y = labels[:, tr]
        ybar = y.mean(1)
        alpha = cho_solve(cho_factor(Kc + ridge * np.eye(len(tr))), (y - ybar[:, None]).T)  # (n_tr, P)
        out[:, te] = (Kte_c @ alpha).T
    return out


def text_domain_classifier_test(
    reference_texts: Sequence[str], window_texts: Sequence[str], n_folds: int = 5, n_permutations: int = 200,
    analyzer: str = DEFAULTS["analyzer"], ridge: float = DEFAULTS["ridge"], min_df: int = DEFAULTS["min_df"],
    seed: int = 0, split_seed: int = 0,
) -> DomainClassifierResult:
    """Cross-fitted TF-IDF ridge classifier of the reference's texts vs the window's: its AUC, a permutation p-value
    (labels permuted with `seed`, refitted on the folds fixed by `split_seed`) and per-document scores."""
    n, m = len(reference_texts), len(window_texts)
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2 (every document scored by a model not trained on it); got {n_folds}")
    if min(n, m) < n_folds:
        raise ValueError(f"each sample needs at least n_folds = {n_folds} texts; got {n} and {m}")
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    if ridge <= 0:
        raise ValueError(f"ridge must be > 0; got {ridge}")
    N = n + m
    F = text_features([*reference_texts, *window_texts], analyzer, min_df)
    K = (F @ F.T).toarray()
    folds = cross_fit_folds(N, n_folds, split_seed)
    observed = np.r_[np.zeros(n), np.ones(m)][None]
    obs_scores = m / N + _dual_ridge_scores(K, observed, folds, ridge)[0]  # m / N: every permutation's share too
    auc = float(_aucs(obs_scores[None], observed)[0])
    exceed = 0
    for Z in permutations(N, n, n_permutations, seed):  # Z: 1 = a reference row; the window's label is 1 - Z
        exceed += int((_aucs(_dual_ridge_scores(K, 1.0 - Z, folds, ridge), 1.0 - Z) >= auc - 1e-12).sum())
    return DomainClassifierResult(auc, (1 + exceed) / (1 + n_permutations), n_permutations, obs_scores[n:],
                                  obs_scores[:n], n_folds, f"ridge/tfidf-{analyzer}")
