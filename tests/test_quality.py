"""The one quality metric: macro-F1 counts every class, the majority baseline is what a prior-only model
scores, stratified proxy subsets keep a 10% minority."""

from __future__ import annotations

import numpy as np
import pytest

from qlife.params import Quality
from qlife.quality import evaluate, majority_baseline, scores, stratified_subset

NAMES = ["major", "minor"]


def test_majority_only_model_scores_the_baseline_not_its_accuracy():
    y = np.array([0] * 90 + [1] * 10)
    pred = np.zeros(100, dtype=int)
    s = scores(y, pred, NAMES)
    assert s["accuracy"] == 0.9  # what a gate on accuracy would have passed
    assert s["f1_per_class"]["minor"] == 0.0
    assert s["macro_f1"] == pytest.approx((2 * 0.9 / 1.9) / 2)
    base = majority_baseline(y, y, NAMES, Quality())
    assert base["quality"] == pytest.approx(s["macro_f1"]) and base["majority_class"] == "major"


def test_named_class_f1_and_accuracy():
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert evaluate(y, pred, NAMES, Quality(metric="accuracy"))["quality"] == 0.75
    assert evaluate(y, pred, NAMES, Quality(metric="f1", label="minor"))["quality"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="not a class"):
        evaluate(y, pred, NAMES, Quality(metric="f1", label="sprots"))


def test_absent_class_counts_as_zero_in_macro_f1():
    y = np.array([0, 0, 0, 0])
    assert scores(y, y, ["a", "b"])["macro_f1"] == 0.5  # b is never right because it never occurs: 0, not skipped


def test_stratified_subset_keeps_the_minority_share():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)
    idx = stratified_subset(y, 256, seed=3)
    assert len(idx) == 256 and len(set(idx.tolist())) == 256
    assert abs(y[idx].mean() - y.mean()) < 0.01
    assert np.array_equal(idx, stratified_subset(y, 256, seed=3))
    assert set(stratified_subset(np.array([0] * 50 + [1]), 5, seed=0).tolist()) >= {50}  # a rare class stays


def test_summary_leads_with_one_verdict_row_per_stage_and_step():
    """reports/summary.md's body: a row per stage's verdict (deploy's pruning and compression steps each their
    own), then the cost table with the ledger's QPU estimate."""
    from qlife import ledger
    from qlife.params import Quality, parse_params
    from qlife.pipeline import summary_text
    from qlife.quality import document_verdict
    from qlife.stage import merge_steps

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good, worse = np.where(rng.random(300) < 0.9, y, 1 - y), np.where(rng.random(300) < 0.6, y, 1 - y)
    v = document_verdict(y, {"vqc": good, "twin": worse, "mlp": good}, ["n", "p"], Quality(), "vqc", "twin")
    assert v["verdict"] == "ahead"
    deploy = merge_steps([{"stage": "deploy", "verdict": v, "cost": {"qubo": {"quantum": {"qpu_seconds_est": 2.0}}}},
                          {"stage": "compress", "verdict": {**v, "verdict": "behind"}}])
    assert set(deploy["verdicts"]) == {"deploy", "compress"} and deploy["verdict"] is v
    reports = {"curate": {"verdict": v, "cost": {"total": {"wall_s": 1.0}}}, "deploy": deploy}
    text = summary_text(reports, ledger.summarize(reports), parse_params({}))
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert any(r.startswith("| curate (macro_f1) | vqc: 0.") and "| ahead (vs best: tie) |" in r for r in rows)
    assert any(r.startswith("| deploy/compress") and "| behind (vs best: tie) |" in r for r in rows)
    assert "| deploy | 0.0 | 0.0 | 0.00e+00 | 2 |" in text  # the cost table's QPU estimate, as the ledger sums it
