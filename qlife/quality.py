"""The one quality metric (`quality:` in params): what search maximises, what the gate checks, the headline.

`scores(y, pred, label_names)` gives accuracy, macro-F1 and per-class F1; `value(scores, quality)` picks the
metric params name (`macro_f1` by default, `accuracy`, or `f1` of one class). `majority_baseline` scores the
constant prediction of the training split's most frequent class on the same labels: on imbalanced data a
model that never predicts the minority class reaches high accuracy, but not this baseline's margin.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qlife.params import Quality


def scores(y: np.ndarray, pred: np.ndarray, label_names: Sequence[str] | None = None) -> dict:
    """accuracy, macro_f1 over every known class (absent classes count as 0, not skipped), f1 per class."""
    from sklearn.metrics import f1_score

    y, pred = np.asarray(y), np.asarray(pred)
    n = len(label_names) if label_names else int(max(y.max(initial=0), pred.max(initial=0))) + 1
    names = list(label_names) if label_names else [str(i) for i in range(n)]
    per = f1_score(y, pred, labels=np.arange(n), average=None, zero_division=0)
    return {"accuracy": float((y == pred).mean()) if len(y) else 0.0,
            "macro_f1": float(per.mean()),
            "f1_per_class": {name: float(f) for name, f in zip(names, per)}}


def value(s: dict, quality: Quality) -> float:
    """The named metric from a `scores` dict."""
    if quality.metric == "f1":
        if quality.label not in s["f1_per_class"]:
            raise ValueError(f"quality.label {quality.label!r} is not a class of this corpus "
                             f"({sorted(s['f1_per_class'])})")
        return s["f1_per_class"][quality.label]
    return s[quality.metric]


def evaluate(y: np.ndarray, pred: np.ndarray, label_names: Sequence[str], quality: Quality) -> dict:
    """scores plus `quality` (the named metric's value) and `metric` (its name)."""
    s = scores(y, pred, label_names)
    return {**s, "quality": value(s, quality), "metric": quality.name}


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray, label_names: Sequence[str],
                      quality: Quality) -> dict:
    """The constant predictor of the training majority class, scored like any model on `y_test`."""
    counts = np.bincount(np.asarray(y_train), minlength=len(label_names))
    majority = int(counts.argmax())
    out = evaluate(y_test, np.full(len(y_test), majority), label_names, quality)
    return {**out, "majority_class": label_names[majority], "majority_share": float(counts.max() / counts.sum())}


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of size min(n, len(y)) keeping class shares (each class at least once)."""
    y = np.asarray(y)
    if n >= len(y):
        return np.random.default_rng(seed).permutation(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    want = np.maximum(1, np.floor(counts / len(y) * n).astype(int))
    while want.sum() > n:  # more classes than slots: trim the largest
        want[want.argmax()] -= 1
    rest = n - want.sum()
    order = np.argsort(-(counts / len(y) * n - want))
    for c in order[:rest]:
        want[c] += 1
    want = np.minimum(want, counts)
    picks = [rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, want)]
    return rng.permutation(np.concatenate(picks))


def subsample(docs: list[dict], max_docs: int | None, seed: int) -> tuple[list[dict], dict]:
    """At most `max_docs` of `docs`, each label's share kept (every label at least once), in their order; and
    what was kept of what."""
    if max_docs is None or len(docs) <= max_docs:
        return docs, {"kept": len(docs), "of": len(docs)}
    keep = np.sort(stratified_subset(np.array([d["label"] for d in docs]), max_docs, seed))
    return [docs[i] for i in keep], {"kept": len(keep), "of": len(docs), "stratified_by": "label", "seed": seed}


SUBSAMPLE_FILE = "subsample.json"  # beside encode's tokenized splits: what each split kept of the curated one


def corpus_subsample(tokenized: str | Path) -> dict:
    """What encode kept of each curated split (`encode.max_docs`), as it wrote it beside the tokenized splits;
    {} for a folder written before encode recorded it."""
    path = Path(tokenized) / SUBSAMPLE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def document_verdict(y: np.ndarray, preds: dict[str, np.ndarray], label_names: Sequence[str], quality: Quality,
                     quantum: str, twin: str, *, classical: Sequence[str] | None = None,
                     cost: dict[str, dict] | None = None, seed: int = 0, n_resamples: int = 1000,
                     note: str | None = None) -> dict:
    """A classifier stage's verdict (qlife.verdict) in the project's metric: each method's predictions on the
    same test documents, a paired bootstrap over them; macro-F1 over every known class (as `scores`), f1 of
    `quality.label`. `cost`: per method, wall_s / cpu_s / energy_kwh / qpu_s_est as measured."""
    from qlife.verdict import paired_bootstrap, verdict

    pos = list(label_names).index(quality.label) if quality.metric == "f1" else 1
    spread = paired_bootstrap(quality.metric, y, preds, n_resamples=n_resamples, seed=seed,
                              labels=np.arange(len(label_names)), pos_label=pos)
    return verdict(spread, quantum, twin, classical=classical, cost=cost, note=note)
