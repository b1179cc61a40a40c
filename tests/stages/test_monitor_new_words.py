"""Stage 7's lexical stream statistic (monitor.stream.statistic new_words, alone and with residual_top): each
window's texts against the curated training split's words, the recurring new words reported per window and per
record, the vocabulary in the stream's fingerprint. A tiny workspace (the tiny teacher, 2 windows of 120)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qlife.data.generator import generate_corpus
from qlife.io import DataError, write_json, write_jsonl
from qlife.params import read_params, with_overrides
from tests.stages.test_monitor_live import reference_features


def workspace(teacher: str, statistic: str):
    """Params of the tiny workspace, its training split written, a clean and a planted window (a new word in the
    first 30 of 120 records) in paths.live."""
    params = with_overrides(read_params("params.yaml"), {
        "monitor.tests": ["rbf", "ks"], "monitor.alarm": "rbf", "monitor.quality.models": [],
        "monitor.ocsvm.kernels": ["rbf"], "monitor.stream.statistic": statistic})
    g = generate_corpus(seed=0, n_docs=1200, live_size=120)  # 1,200 training documents: the windows' words
    reference_features(params, teacher, [d["text"] for d in g.docs[:300]])
    curated = Path(params.paths.curated)
    write_jsonl(curated / "train.jsonl", g.docs)  # all 1,200 (the features above: the first 300)
    write_json(curated / "labels.json", g.label_names)
    clean = g.live["window-000"]
    planted = [{**d, "text": d["text"] + " lolz"} if i < 30 else d for i, d in enumerate(clean)]
    live = Path(params.paths.live)
    write_jsonl(live / "a-clean.jsonl", clean)
    write_jsonl(live / "b-planted.jsonl", planted)
    write_json(live / "windows.json", {"a-clean": {"drift_planted": False}, "b-planted": {"drift_planted": True}})
    return params, g


@pytest.mark.slow  # ~20 s: the stage twice; tests/stages/test_monitor_live.py runs the default (this statistic)
def test_the_combined_statistic_flows_through_the_stage(tiny_workdir, tiny_teacher):
    from qlife.methods.window_stats import vocabulary, words
    from stages import monitor

    params, g = workspace(tiny_teacher, "new_words+residual_top")
    vocab = vocabulary(d["text"] for d in g.docs)
    assert not any(set(words(d["text"])) - vocab for d in g.live["window-000"])  # a clean window's words are known
    report = monitor.run(params)
    res = json.loads((Path(params.paths.monitor) / "drift.json").read_text())
    stream = report["stream"]
    assert stream["statistic"] == "new_words+residual_top" and stream["windows_since_reset"] == 2
    clean, planted = (stream["windows"][w]["value"] for w in ("a-clean", "b-planted"))
    assert len(clean) == len(planted) == 2  # [new_words, residual_top]: one combined conformal p-value
    # new_words reads window_rows (100) of the 120 records: 30 carry the planted word, so 10-30 of them are read
    assert clean[0] == 0.0 and 10 <= planted[0] <= 30
    assert res["b-planted"]["stream_statistic"] == planted
    # the whole window's recurring new words and, per record, how many it holds
    assert res["b-planted"]["new_words"] == {"records_with_recurring_new_words": 30, "recurring_new_words": 1,
                                             "most_frequent": {"lolz": 30}}
    assert res["a-clean"]["new_words"]["records_with_recurring_new_words"] == 0
    nw = report["methods"]["new_words"]
    assert nw["min_docs"] == 2 and nw["per_document"]["auc_drifted_vs_clean"] == pytest.approx(0.625)
    # a retrained model's training split that knows the word: another vocabulary, another fingerprint, a fresh
    # stream; the planted word is no longer new, the residual part is unchanged (the same rows)
    write_jsonl(Path(params.paths.curated) / "train.jsonl", [*g.docs, {"text": "lolz", "label": g.docs[0]["label"]}])
    again = monitor.run(params)["stream"]
    assert again["restarted"] and again["windows_since_reset"] == 2
    assert again["windows"]["b-planted"]["value"] == [0.0, planted[1]]
    # no training split: refused with the fix, before any window is embedded
    (Path(params.paths.curated) / "train.jsonl").unlink()
    with pytest.raises(DataError, match="train.jsonl.*run curate"):
        monitor.run(params)
