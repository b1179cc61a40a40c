"""Per-window drift statistics for the sequential alarm: a fixed function of (reference, window), one number each.

The conformal e-detector (qlife.methods.sequential) ranks each window's statistic among the past windows'; any
statistic that is a fixed function of the fixed reference and the window keeps its guarantee when windows are
exchangeable, so the statistic is chosen for power alone. bench/monitoring.py compared candidates on MiniLM +
PCA-16 features of SST-2 and generator traffic (tuning streams separate from the evaluation streams): RBF MMD^2 at
several fixed bandwidths, the max of standardised MMD^2 over bandwidths, energy distance, the mean shift, per-
document kNN novelty against the reference (top-k, Higher Criticism, Fisher), kNN two-sample counts, a domain
classifier's AUC and the kNN divergence below. A share of new documents (a new topic) lies in the reference's
support, often nearer its centre than typical documents (novelty scores fall), but the new documents crowd
together: where they sit, the window is denser than the reference. The kNN divergence reads exactly that and
moved furthest at 10% drift (the MMD^2 at the median-heuristic bandwidth, the stage's per-window statistic, least).

knn_divergence(reference, window, k=20): the k-nearest-neighbour estimator of the Kullback-Leibler divergence
KL(window || reference) (Wang, Kulkarni & Verdu 2009, "Divergence estimation for multidimensional densities via
k-nearest-neighbor distances"):

    D = (d / m) sum_i log(rho_k(i) / nu_k(i)) + log(n / (m - 1))

with, for window row i, rho_k(i) its distance to the k-th nearest reference row and nu_k(i) to the k-th nearest
other window row (Euclidean, on the standardised features); n reference rows, m window rows, d features. Without
drift it sits at a finite-sample offset, not 0 (about -1 at n = 600, m = 200, k = 20, d = 16: the estimator is
consistent only as k / m -> 0), which the conformal ranks remove; it grows where the window has mass the
reference lacks. Read it as a drift score, not as nats. `knn_log_ratios` gives the per-document terms
log(rho_k / nu_k): the documents in the crowded places, i.e. the likely drifted ones, rank first (with k below
the number of drifted documents).

Measured (bench/results/monitoring.json: 100 repetitions of 30 days of hourly windows of 200 against a held-out
reference of 600, the detector at sequential.DEFAULTS): at most one false alarm in 30 days in 99% of repetitions
on SST-2 and on the generator; a 10% new topic found within 6 windows in 96% and 93% (the conformal detector on
the median-bandwidth MMD^2: 50% and 2%). A new vocabulary (chat-style SST-2, the generator's drift terms) is not
found at 5-20% by this or any candidate: the PCA-16 features keep little of it.

Wiring: value = knn_divergence(reference, window) per window (the same reference rows, the same window size and
k for the whole stream: exchangeability), then sequential.update(state, value, window_id) with the default
settings (evidence 'conformal', larger_is_drift True).

Cost: one m x n and one m x m distance matrix and two partial sorts: ~2 ms for n = 600, m = 200, d = 16.
Distances are floored at 1e-6 so that k or more identical copies of a row (a window that repeats a document)
give a large, finite value.

residual_top(residuals, top=20): the mean of the window's `top` largest log residuals (qlife.methods.projection.
Residual: how far each document's unit-normalised embedding lies off the subspace the training split spans).
The projection drops the directions new content lives in: a new topic or new words move documents off the
subspace (per-document AUC of the residual 0.97 for new topics, 0.64-0.73 for new vocabulary on the bench's
pools) while they sit near the centre of the 16 projected features. A share of new documents lifts the window's
largest residuals, so the top-k mean (k = 10% of the window) reads a sparse drift that the window's mean dilutes.
A function of the window alone (no reference needed; standardising by the reference is an affine map, which the
conformal ranks ignore). Chosen on bench/monitoring.py's tuning streams (seed 1, 40 repetitions of 720 windows)
over the residual's mean, a one-sided KS, the kNN divergence with the residual as a 17th column (worse: the
drifted rows spread along it) and combinations with the kNN divergence. On the evaluation streams (seed 0, 100
repetitions of 720 windows, the detector at sequential.DEFAULTS): at most one false alarm in 30 days in 100% / 98%
of repetitions (SST-2 / generator); a 10% new topic within 6 windows in 97% / 97% (the kNN divergence: 96% / 93%),
a 5% one in 96% / 97% (29% / 21%); the generator's new vocabulary at 10% in 66% (1%), at 20% in 97% (20%). SST-2
rewritten in a chat style (a new vocabulary, the same content) is still not found (0%): its residuals move little.

new_words(vocabulary, texts, min_docs=3): a lexical statistic read from the window's texts, not its features. The
tokenisation (`words`): the text lower-cased, then every match of the unicode word regex \\w+ (letters, digits and
underscore of any script; "don't" gives "don" and "t"). The vocabulary is fixed: the words of the curated training
split, what the model was trained on (`vocabulary`; stage 7 builds it once per run and puts its fingerprint in the
stream's reference fingerprint, so another vocabulary starts the stream afresh). A new word is one outside it. Any
window holds new words, but rare ones: most sit in one document each. A new vocabulary (a chat style's lol / tbh /
u, a product's or a campaign's names) makes the same new words recur, so: the recurring new words are those found
in at least `min_docs` of the window's documents, and the statistic is the number of documents holding at least one
of them; `new_word_scores` gives per document how many recurring new words it holds (which documents carry the
change) and the recurring words with their document counts (what an operator reads). A fixed function of (the
fixed vocabulary, the window), never of other windows: the conformal detector's false-alarm guarantee holds for
exchangeable windows as for the statistics above. Its scale depends on the window's size: the stream cuts every
window to `window_rows` rows, as for the others.
Chosen on bench/monitoring.py's tuning streams (seed 1, 40 repetitions of 720 windows; the vocabulary: 10,000
training-like rows that never enter a reference or a window) over the plain new-token (OOV) rate of the window,
the top-20 mean of the per-document OOV rates and the count at min_docs 2 to 5, each alone and with residual_top
(one conformal p-value): min_docs 2 with residual_top (min_docs 3 within 0.01 of it; 2 finds the generator's
sparser new vocabulary at 5% more often). The OOV rate dilutes a new vocabulary in the window's ordinary rare
words (SST-2 chat style at 10%: 65% within 6 windows) and the top-k OOV rate reads the documents with the most
rare words, not the drifted ones (0-5% on SST-2). On the evaluation streams (seed 0, 100 repetitions of 720
windows, the detector at sequential.DEFAULTS), new_words (min_docs 2) with residual_top: at most one false alarm
in 30 days in 100% / 98% of repetitions (SST-2 / generator); a 10% new vocabulary within 6 windows in 96% / 97%
(residual_top alone: 0% / 66%), 5% in 94% / 89%; a 10% new topic in 96% / 97% (residual_top alone: 97% / 97%).
new_words alone: 97% / 95% on the new vocabulary, 96% / 97% on the new topic. The generator's traffic never
leaves its vocabulary (655 words: no new word in any in-distribution window), so there any recurring new word is
drift; SST-2's windows hold 1.3 recurring (min_docs 2) new-word documents on average without drift, and SST-2
train rows are phrases of shared sentences, which makes the vocabulary cover the windows better than a training
split covers new traffic: expect more in-distribution new words, hence less power, on other corpora.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

DEFAULT_K = 20  # bench/monitoring.py: k in {5, 10, 20, 30, 40, 60} on the tuning streams; 20 and 30 best at 10%
DIST_FLOOR = 1e-6


def _check(reference: np.ndarray, window: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    X, Y = np.asarray(reference, dtype=np.float64), np.asarray(window, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"reference and window must be 2-D with the same columns; got {X.shape} and {Y.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a whole number >= 1; got {k!r}")
    if len(X) < k or len(Y) < k + 1:
        raise ValueError(f"k = {k} needs at least k reference rows and k + 1 window rows; got {len(X)} and {len(Y)}")
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("reference and window must be finite")
    return X, Y


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T), 0.0)


def knn_log_ratios(reference: np.ndarray, window: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """(m,) per window row: log(rho_k / nu_k), its k-th nearest reference distance over its k-th nearest other-
    window distance; larger = the window is denser than the reference around this row (a likely drifted row)."""
    X, Y = _check(reference, window, k)
    d_wr = _sqdist(Y, X)
    d_ww = _sqdist(Y, Y)
    np.fill_diagonal(d_ww, np.inf)  # a row is not its own neighbour
    rho = np.partition(d_wr, k - 1, axis=1)[:, k - 1]
    nu = np.partition(d_ww, k - 1, axis=1)[:, k - 1]
    floor = DIST_FLOOR**2
    return 0.5 * (np.log(np.maximum(rho, floor)) - np.log(np.maximum(nu, floor)))


def knn_divergence(reference: np.ndarray, window: np.ndarray, k: int = DEFAULT_K) -> float:
    """The kNN estimate of KL(window || reference) (the module docstring: a drift score, offset without drift).
    reference (n x d) and window (m x d) standardised alike (by the reference's mean and sd, as stage 7 does); a
    fixed function of the two, larger = more drift. Feed it to qlife.methods.sequential.update with evidence
    'conformal' (the default, larger_is_drift True)."""
    X, Y = _check(reference, window, k)
    n, (m, d) = len(X), Y.shape
    return float(d * knn_log_ratios(X, Y, k).mean() + np.log(n / (m - 1)))


def residual_top(residuals: np.ndarray, top: int = 20) -> float:
    """The mean of the `top` largest values of a window's (log) residuals; larger = more drift (the module
    docstring). Feed it to qlife.methods.sequential.update with evidence 'conformal'."""
    r = np.asarray(residuals, dtype=np.float64).ravel()
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise ValueError(f"top must be a whole number >= 1; got {top!r}")
    if len(r) < top:
        raise ValueError(f"top = {top} needs at least that many rows; got {len(r)}")
    if not np.isfinite(r).all():
        raise ValueError("residuals must be finite")
    return float(np.partition(r, len(r) - top)[len(r) - top:].mean())


WORD = re.compile(r"\w+")  # the unicode word regex (str patterns match any script's letters and digits)
MIN_DOCS = 2  # bench/monitoring.py's tuning choice (lexical: min_docs 2 to 5)


def words(text: str) -> list[str]:
    """The tokenisation of new_words: the lower-cased text's matches of \\w+, in order."""
    return WORD.findall(str(text).lower())


def vocabulary(texts: Iterable[str]) -> frozenset[str]:
    """Every word (`words`) of the texts: the fixed reference vocabulary of new_words."""
    out: set[str] = set()
    for t in texts:
        out.update(words(t))
    return frozenset(out)


def new_word_scores(vocab: frozenset[str] | set[str], texts: list[str],
                    min_docs: int = MIN_DOCS) -> tuple[np.ndarray, dict[str, int]]:
    """((m,) per document: how many recurring new words it holds, {recurring new word: documents holding it},
    most documents first). A new word is outside `vocab`; a recurring one is in at least `min_docs` of the texts."""
    if isinstance(min_docs, bool) or not isinstance(min_docs, int | np.integer) or min_docs < 1:
        raise ValueError(f"min_docs must be a whole number >= 1; got {min_docs!r}")
    new = [set(words(t)) - vocab for t in texts]
    df = Counter(w for doc in new for w in doc)
    recurring = {w: c for w, c in sorted(df.items(), key=lambda x: (-x[1], x[0])) if c >= min_docs}
    return np.array([sum(w in recurring for w in doc) for doc in new], dtype=np.int64), recurring


def new_words(vocab: frozenset[str] | set[str], texts: list[str], min_docs: int = MIN_DOCS) -> float:
    """The number of the window's documents holding at least one new word (outside `vocab`) that recurs in at
    least `min_docs` of them; larger = more drift (the module docstring). Feed it to qlife.methods.sequential.update
    with evidence 'conformal'."""
    scores, _ = new_word_scores(vocab, texts, min_docs)
    return float((scores > 0).sum())
