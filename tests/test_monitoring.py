"""qlife.monitoring: the stream alarm's state across runs (a window counted once, a new reference starts afresh),
the decision's reasons, and the gate's way out (labels, an acknowledgement of these very records, estimated
quality)."""

from __future__ import annotations

import numpy as np
import pytest

from qlife import monitoring
from qlife.io import DataError, read_json, write_json, write_jsonl
from qlife.params import Monitor, parse_params


def pv() -> Monitor:
    """The stream reading each window's p-value (the synthetic results below carry p-values only)."""
    return Monitor(stream={"statistic": "p_value"})


def results(p_values: dict[str, float]) -> dict:
    """Per-window results as the monitor stage writes them (the rbf row is what the stream reads)."""
    return {n: {"alarm": p < 0.05, "tests": {"rbf": {"p_value": p, "mmd2": 1 - p, "alarm": p < 0.05}}}
            for n, p in p_values.items()}


def hashes(names) -> dict[str, str]:
    return {n: monitoring.window_hash([{"text": n}]) for n in names}


def test_a_window_is_counted_once_and_a_new_reference_starts_afresh(tmp_path):
    mp = pv()
    first = results({"w-000": 0.4, "w-001": 0.7})
    s1 = monitoring.update_stream(tmp_path, "ref-a", first, hashes(first), mp)
    assert s1["restarted"] == "first run" and s1["windows_since_reset"] == 2
    assert all(r["counted"] for r in s1["windows"].values())
    # the hourly schedule reruns on the same windows plus a new one: only the new one is counted
    more = results({"w-000": 0.4, "w-001": 0.7, "w-002": 0.2})
    s2 = monitoring.update_stream(tmp_path, "ref-a", more, hashes(more), mp)
    assert s2["restarted"] is None and s2["windows_since_reset"] == 3
    assert [n for n, r in s2["windows"].items() if r["counted"]] == ["w-002"]
    # another reference (a retrained model): the history is not comparable
    s3 = monitoring.update_stream(tmp_path, "ref-b", more, hashes(more), mp)
    assert "new reference" in s3["restarted"] and s3["windows_since_reset"] == 3
    # the same records with another statistic (other code): afresh too, never a crash
    changed = results({"w-000": 0.41, "w-001": 0.7, "w-002": 0.2})
    s4 = monitoring.update_stream(tmp_path, "ref-b", changed, hashes(changed), mp)
    assert "statistic changed" in s4["restarted"] and s4["windows_since_reset"] == 3
    assert read_json(tmp_path / monitoring.STREAM_FILE)["why_started"] == s4["restarted"]


def test_the_stream_alarms_on_persistent_drift_and_names_its_start(tmp_path):
    mp = pv()
    rng = np.random.default_rng(0)
    clean = {f"w-{i:03d}": float(rng.uniform()) for i in range(60)}
    s = monitoring.update_stream(tmp_path, "ref", results(clean), hashes(clean), mp)
    assert not s["alarm"]  # 60 exchangeable windows: under a threshold set for 720
    drifted = {**clean, **{f"w-{i:03d}": 0.001 for i in range(60, 70)}}
    s = monitoring.update_stream(tmp_path, "ref", results(drifted), hashes(drifted), mp)
    assert s["alarm"] and s["log10_statistic"] >= s["log10_threshold"]
    alarmed = monitoring.stream_alarmed(s, list(drifted))
    assert alarmed and set(alarmed) <= {f"w-{i:03d}" for i in range(58, 70)} and "w-069" in alarmed
    decision = monitoring.decide(mp, results(drifted), s, quality={})
    assert decision["alarms"] == alarmed and all("stream alarm" in decision["reasons"][w]["stream"] for w in alarmed)
    # per window, every p < 0.05 alarms on its own (the old rule), whatever the stream says
    per = monitoring.decide(Monitor(decide="per_window", stream={"statistic": "p_value"}), results(drifted), s,
                            quality={})
    assert per["alarms"] == [n for n, p in drifted.items() if p < 0.05]


def test_a_quality_drop_is_an_alarm_with_its_reason():
    mp = Monitor()
    stream = {"alarm": False, "history": []}
    quality = {"teacher": {"val_accuracy": 0.9, "max_drop": 0.05, "windows": {
        "w-0": {"estimate": 0.88, "ci95": [0.84, 0.92], "drop_alarm": False},
        "w-1": {"estimate": 0.70, "ci95": [0.65, 0.75], "drop_alarm": True}}}}
    d = monitoring.decide(mp, results({"w-0": 0.5, "w-1": 0.5}), stream, quality)
    assert d["alarms"] == ["w-1"] and "teacher: estimated accuracy 0.700" in d["reasons"]["w-1"]["quality_drop"][0]


@pytest.fixture()
def project(tmp_path):
    """A params set whose live folder holds two windows (labelled) and an empty incoming folder."""
    params = parse_params({"paths": {k: str(tmp_path / k) for k in ("live", "incoming", "curated", "state")},
                           "curate": {"source": {"live_path": str(tmp_path / "none")}}})
    (tmp_path / "none").mkdir()
    write_json(tmp_path / "curated" / "labels.json", ["neg", "pos"])
    for name in ("w-0", "w-1"):
        write_jsonl(tmp_path / "live" / f"{name}.jsonl", [{"id": f"{name}-{i}", "text": f"{name} text {i}",
                                                           "label": i % 2} for i in range(4)])
    return params


def report(reasons: dict) -> dict:
    return {"decision": {"alarms": list(reasons), "reasons": reasons}}


def test_an_alarmed_window_blocks_until_answered(project, tmp_path):
    stream_only = {"w-0": {"stream": "stream alarm (...)"}}
    dropped = {"w-1": {"quality_drop": ["teacher: estimated accuracy 0.70 [0.65, 0.75] < validation 0.90 - 0.05"]}}
    # estimated quality decides a window only the stream flagged; a quality drop blocks
    assert monitoring.blocking(project, report({**stream_only, **dropped}), quality_decides=True) == [
        ("w-1", dropped["w-1"]["quality_drop"][0])]
    assert [w for w, _ in monitoring.blocking(project, report(stream_only), quality_decides=False)] == ["w-0"]
    # labelled records trained on (the flow wrote them into incoming): answered
    write_jsonl(tmp_path / "incoming" / "w-1.jsonl", [{"text": "x", "label": 0}])
    assert monitoring.blocking(project, report(dropped), quality_decides=True) == []


def test_acknowledging_a_window_answers_these_records_only(project, tmp_path):
    dropped = {"w-1": {"quality_drop": ["teacher: ..."]}}
    with pytest.raises(DataError, match="no live window named 'w-9'"):
        monitoring.acknowledge(project, "w-9", "checked by hand")
    with pytest.raises(DataError, match="say why"):
        monitoring.acknowledge(project, "w-1", "  ")
    stream = results({"w-0": 0.3, "w-1": 0.001})
    monitoring.update_stream(tmp_path / "state", "ref", stream, hashes(stream), pv())
    done = monitoring.acknowledge(project, "w-1", "a marketing campaign: expected", false_alarm=False)
    assert done["stream_reset"] and done["hash"] == monitoring.window_hash(
        [{"text": f"w-1 text {i}", "label": i % 2} for i in range(4)])
    state = read_json(tmp_path / "state" / monitoring.STREAM_FILE)["detector"]
    assert state["history"] == [] and "marketing campaign" in state["resets"][-1]["reason"]  # drift accepted
    assert monitoring.blocking(project, report(dropped), quality_decides=True) == []
    # the window's file changed: the acknowledgement was for other records
    write_jsonl(tmp_path / "live" / "w-1.jsonl", [{"id": "n", "text": "new traffic", "label": 1}])
    assert [w for w, _ in monitoring.blocking(project, report(dropped), quality_decides=True)] == ["w-1"]


def test_the_cli_acknowledges_with_a_sentence(project, tmp_path, monkeypatch, capsys):
    from qlife import cli

    monkeypatch.setattr(cli, "load_params", lambda: project)
    cli.main(["acknowledge", "w-0", "--reason", "false positive: a holiday", "--false-alarm"])
    assert "w-0: acknowledged (false alarm" in capsys.readouterr().out
    assert read_json(tmp_path / "state" / monitoring.ACK_FILE)["w-0"]["false_alarm"] is True
    with pytest.raises(SystemExit) as err:
        cli.main(["acknowledge", "nope", "--reason", "x"])
    assert err.value.code == 1 and "acknowledge: no live window named 'nope'" in capsys.readouterr().err


def test_quality_is_estimated_per_window_beside_the_labelled_truth(project, tmp_path, monkeypatch):
    """A model whose confidences are honest on validation: the estimate tracks the accuracy it really has on a
    window, its drop below validation raises the quality alarm, and labelled records show the truth beside it."""
    rng = np.random.default_rng(0)

    class Model:  # right with probability equal to its confidence c: calibrated by construction
        def __init__(self):
            self.conf = {}

        def probabilities(self, texts):
            return np.array([self.conf[t] for t in texts])

    model = Model()

    def docs(prefix, n, c):
        out = []
        for i in range(n):
            y = int(rng.integers(2))
            right = rng.random() < c
            model.conf[f"{prefix}{i}"] = [c, 1 - c] if (y == 0) == right else [1 - c, c]
            out.append({"id": f"{prefix}{i}", "text": f"{prefix}{i}", "label": y})
        return out

    write_jsonl(tmp_path / "curated" / "val.jsonl", docs("v", 400, 0.9))
    windows = {"same": docs("s", 400, 0.9), "hard": docs("h", 400, 0.6)}
    monkeypatch.setattr(monitoring, "served_model", lambda role, params: model)
    params = parse_params({**project.model_dump(), "monitor": {"quality": {"models": ["teacher"]}}})
    q = monitoring.quality_estimates(params, windows)["teacher"]
    assert q["val_accuracy"] == pytest.approx(0.9, abs=0.04) and q["calibration"]["method"] == "temperature"
    same, hard = q["windows"]["same"], q["windows"]["hard"]
    assert same["estimate"] == pytest.approx(0.9, abs=0.03) and not same["drop_alarm"]
    assert hard["estimate"] == pytest.approx(0.6, abs=0.03) and hard["drop_alarm"]
    for row in (same, hard):
        assert row["labelled"]["n"] == 400 and row["labelled"]["abs_error"] < 0.06
    assert monitoring.quality_error({"teacher": q})["teacher"]["windows"] == 2


def test_the_knn_statistic_reads_a_fixed_number_of_rows_of_each_window():
    """The kNN divergence: the same window gives the same number (its rows drawn by its content), a window denser
    than the reference somewhere scores higher, a window below window_rows is not counted."""
    mp = Monitor(features="pca", stream={"statistic": "knn_divergence", "window_rows": 100, "k": 10})
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(600, 8))
    clean = rng.normal(size=(300, 8))
    drifted = clean.copy()
    drifted[:60] = 0.1 * rng.normal(size=(60, 8))  # a crowd near the centre: "typical" to a density detector
    a, b = monitoring.knn_statistic(mp, ref, clean), monitoring.knn_statistic(mp, ref, clean)
    assert a == b and monitoring.knn_statistic(mp, ref, drifted) > a + 0.2
    assert monitoring.knn_statistic(mp, ref, clean[:99]) is None
    res = {"w": {"alarm": False, "tests": {}, "stream_statistic": None}}
    assert monitoring.window_statistic(res["w"], mp) is None


def test_the_residual_statistics_read_the_last_column_of_the_same_rows():
    """The residual's stream statistic (monitor.features pca+residual): residual_top, the mean of the `top` largest
    log residuals (the last column) of the window's window_rows rows; the kNN divergence beside it reads the
    projected columns only; both as one list; the settings enter the stream's fingerprint."""
    from qlife.methods.window_stats import knn_divergence, residual_top

    mp = Monitor(stream={"statistic": "residual_top", "window_rows": 100, "top": 10})
    assert (Monitor().features, Monitor().stream.statistic) == ("pca+residual", "new_words+residual_top")
    rng = np.random.default_rng(1)
    ref, clean = rng.normal(size=(600, 9)), rng.normal(size=(300, 9))
    drifted = clean.copy()
    drifted[:30, -1] += 4.0  # a tenth of the window off the subspace, nothing in the projected columns
    top = monitoring.knn_statistic(mp, ref, clean, residual=True)
    assert top == monitoring.knn_statistic(mp, ref, clean, residual=True)
    assert monitoring.knn_statistic(mp, ref, drifted, residual=True) > top + 1.0
    assert monitoring.knn_statistic(mp, ref, clean) is None  # no residual column: not counted
    both = Monitor(stream={"statistic": "knn_divergence+residual_top", "window_rows": 100, "top": 10, "k": 10})
    knn, res = monitoring.knn_statistic(both, ref, drifted, residual=True)
    assert res == monitoring.knn_statistic(mp, ref, drifted, residual=True)
    w = drifted[:100]  # window_rows rows: every one of them is read
    knn100, _ = monitoring.knn_statistic(both, ref, w, residual=True)
    assert knn100 == knn_divergence(ref[:, :-1], w[:, :-1], 10)  # the projected columns only
    assert monitoring.window_statistic({"stream_statistic": [knn, res]}, both) == [knn, res]
    assert residual_top(np.arange(10.0), 3) == 8.0 and np.isfinite(knn_divergence(ref, clean))
    prints = {monitoring.reference_fingerprint(ref, m) for m in
              (mp, both, Monitor(stream={"statistic": "residual_top", "top": 5}))}
    assert len(prints) == 3
    with pytest.raises(ValueError, match="needs monitor.features: pca\\+residual"):
        Monitor(features="pca")
    with pytest.raises(ValueError, match="exceeds monitor.stream.window_rows"):
        Monitor(stream={"window_rows": 10, "top": 20})


def test_the_stream_takes_both_statistics_and_restarts_when_the_statistic_changes(tmp_path):
    """A stream of knn_divergence+residual_top windows (two numbers each, one conformal p-value); switching the
    statistic (another fingerprint) starts the detector afresh instead of mixing numbers of other kinds."""
    both = Monitor(stream={"statistic": "knn_divergence+residual_top"})
    rng = np.random.default_rng(2)
    res = {f"w-{i:03d}": {"alarm": False, "tests": {}, "stream_statistic": list(rng.normal(size=2))}
           for i in range(5)}
    ref = rng.normal(size=(50, 4))
    s1 = monitoring.update_stream(tmp_path, monitoring.reference_fingerprint(ref, both), res, hashes(res), both)
    assert s1["windows_since_reset"] == 5 and all(0 < r["p_value"] <= 1 for r in s1["windows"].values())
    top = Monitor(stream={"statistic": "residual_top"})
    one = {n: {**r, "stream_statistic": r["stream_statistic"][1]} for n, r in res.items()}
    s2 = monitoring.update_stream(tmp_path, monitoring.reference_fingerprint(ref, top), one, hashes(one), top)
    assert s2["restarted"] and s2["windows_since_reset"] == 5 and s2["statistic"] == "residual_top"


def test_new_words_reads_the_texts_of_the_same_rows_and_its_vocabulary_enters_the_fingerprint():
    """monitor.stream.statistic new_words (alone, or with residual_top as one list): the texts of the window_rows
    rows the other statistics read, against the training vocabulary; without texts or vocabulary the window is not
    counted; another vocabulary or min_docs is another stream (fingerprint)."""
    from qlife.methods.window_stats import new_words, vocabulary

    rng = np.random.default_rng(3)
    vocab = vocabulary(["the cat sat on a mat", "a dog ran"])
    live = rng.normal(size=(150, 5))
    texts = [("the cat lolz" if i % 5 == 0 else "a dog ran") + f" q{i}" for i in range(150)]  # lolz in 30
    nw = Monitor(stream={"statistic": "new_words", "window_rows": 100})
    idx = monitoring.stream_rows(nw, live)
    value = monitoring.knn_statistic(nw, live, live, residual=True, texts=texts, vocabulary=vocab)
    assert nw.stream.min_docs == 2  # the default: bench/monitoring.py's tuning choice
    assert value == new_words(vocab, [texts[i] for i in idx], 2) == float(sum(i % 5 == 0 for i in idx))
    assert monitoring.knn_statistic(nw, live, live, residual=True) is None  # no texts: not counted
    assert monitoring.knn_statistic(nw, live, live[:99], texts=texts[:99], vocabulary=vocab) is None
    both = Monitor(stream={"statistic": "new_words+residual_top", "window_rows": 100, "top": 10})
    top = Monitor(stream={"statistic": "residual_top", "window_rows": 100, "top": 10})
    assert monitoring.knn_statistic(both, live, live, True, texts, vocab) == [
        value, monitoring.knn_statistic(top, live, live, True)]
    report, scores = monitoring.new_word_report(nw, texts, vocab)
    assert report["most_frequent"] == {"lolz": 30} and report["records_with_recurring_new_words"] == 30
    assert np.array_equal(scores > 0, np.arange(150) % 5 == 0)
    more = vocab | {"lolz"}
    prints = {monitoring.reference_fingerprint(live, m, v) for m, v in
              ((nw, vocab), (nw, more), (Monitor(stream={"statistic": "new_words", "window_rows": 100,
                                                         "min_docs": 3}), vocab), (both, vocab))}
    assert len(prints) == 4
    assert monitoring.reference_fingerprint(live, top) == monitoring.reference_fingerprint(live, top, vocab)
    with pytest.raises(ValueError, match="vocabulary"):
        monitoring.reference_fingerprint(live, nw)
