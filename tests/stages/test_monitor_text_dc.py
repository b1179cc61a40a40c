"""Stage 7's text domain classifier (monitor.tests text_domain_classifier): the reference's texts read from
paths.curated/reference.jsonl in the order of encode's reference rows, each window's texts tested against them, the
per-document scores summarised, a reference file that does not match encode's rows refused with the fix. A tiny
workspace (the tiny teacher, 2 windows of 120)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qlife.data.generator import generate_corpus
from qlife.io import DataError, write_json, write_jsonl
from qlife.params import read_params, with_overrides
from tests.stages.test_monitor_live import reference_features


def test_the_text_domain_classifier_flows_through_the_stage(tiny_workdir, tiny_teacher):
    from stages import monitor

    params = with_overrides(read_params("params.yaml"), {
        "monitor.tests": ["rbf", "ks", "text_domain_classifier"], "monitor.alarm": "rbf",
        "monitor.quality.models": [], "monitor.ocsvm.kernels": ["rbf"]})
    g = generate_corpus(seed=0, n_docs=1200, live_size=120)
    reference = g.docs[:300]
    reference_features(params, tiny_teacher, [d["text"] for d in reference])  # encode's reference rows: these 300
    curated = Path(params.paths.curated)
    write_jsonl(curated / "reference.jsonl", reference)
    write_json(curated / "labels.json", g.label_names)
    clean = g.live["window-000"]
    planted = [{**d, "text": d["text"] + " lolz brb"} if i < 30 else d for i, d in enumerate(clean)]
    live = Path(params.paths.live)
    write_jsonl(live / "a-clean.jsonl", clean)
    write_jsonl(live / "b-planted.jsonl", planted)
    write_json(live / "windows.json", {"a-clean": {"drift_planted": False}, "b-planted": {"drift_planted": True}})
    report = monitor.run(params)
    res = json.loads((Path(params.paths.monitor) / "drift.json").read_text())
    rows = {w: res[w]["tests"]["text_domain_classifier"] for w in ("a-clean", "b-planted")}
    assert rows["b-planted"]["p_value"] < 0.05 and rows["b-planted"]["alarm"] is True
    assert rows["a-clean"]["p_value"] > 0.05 and rows["a-clean"]["alarm"] is False
    assert rows["b-planted"]["n_ref"] == 300 and rows["b-planted"]["n_live"] == 120
    assert rows["b-planted"]["classifier"] == "ridge/tfidf-word"
    tdc = report["methods"]["text_domain_classifier"]
    assert tdc["alarms"] == ["b-planted"]
    # the planted window's documents against the clean window's (each scored against the reference): 30 of 120
    # carry the new words, so at most 0.25 + 0.75 / 2 = 0.625 when the other 90 rank as the clean window's
    assert 0.55 < tdc["per_document"]["auc_drifted_vs_clean"] <= 0.63
    # a reference file that is not encode's reference rows: refused with the fix, before any window is embedded
    write_jsonl(curated / "reference.jsonl", reference[:299])
    with pytest.raises(DataError, match="299 reference texts for 300 reference rows.*rerun encode"):
        monitor.run(params)
    (curated / "reference.jsonl").unlink()
    with pytest.raises(DataError, match="reference.jsonl.*run curate"):
        monitor.run(params)
