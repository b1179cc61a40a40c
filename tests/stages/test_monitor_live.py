"""Live windows are unlabelled production traffic: loaded with text only, scored end to end by stage 7, and
only their labelled records become retraining feedback."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qlife.data.generator import generate_corpus
from qlife.data.sources import load_live
from qlife.io import read_jsonl, read_records_jsonl, save_npz, write_json, write_jsonl
from qlife.params import Source, read_params, with_overrides

LABELS = ["neg", "pos"]


def write_raw_windows(folder: Path, texts: list[str]) -> None:
    """Three windows as a user would bring them: text-only JSONL, CSV with an empty label column, and a
    JSONL with bad, unknown, known and null labels plus lines that are real rejects."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "a-text-only.jsonl").open("w") as f:
        for t in texts[:30]:
            f.write(json.dumps({"text": t}) + "\n")
        f.write("\n")                                   # blank: skipped, not a reject
        f.write('{"text": "broken json\n')              # line 32: invalid JSON
        f.write(json.dumps({"text": "  "}) + "\n")      # line 33: no text
    pd.DataFrame({"text": texts[30:55], "label": [None] * 25}).to_csv(folder / "b-empty-label.csv", index=False)
    rows = [{"text": t, "label": lab} for t, lab in
            zip(texts[55:65], ["neutral", 7, -1, "pos", 0, None, "", "neg", 1.0, True])]
    with (folder / "c-bad-labels.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)


def test_live_records_need_only_text(tmp_path):
    texts = [f"live message number {i} about the weather" for i in range(65)]
    write_raw_windows(tmp_path / "raw", texts)
    pd.DataFrame({"text": ["a parquet row", None, "another one"], "label": [None, "pos", "neg"]}
                 ).to_parquet(tmp_path / "raw" / "d-rows.parquet")
    src = Source(kind="files", path=str(tmp_path / "train.jsonl"), live_path=str(tmp_path / "raw"))
    live, rejects = load_live(src, LABELS)

    assert set(live) == {"a-text-only", "b-empty-label", "c-bad-labels", "d-rows"}
    a, b, c, d = (live[k] for k in sorted(live))
    assert [r["text"] for r in a] == texts[:30] and all("label" not in r for r in a)
    assert [r["text"] for r in b] == texts[30:55] and all("label" not in r for r in b)
    # every text with a bad label is kept; only known labels survive
    assert [r["text"] for r in c] == texts[55:65]
    assert [r.get("label") for r in c] == [None, None, None, 1, 0, None, None, 0, 1, None]
    assert [r.get("label") for r in d] == [None, 0]  # the row without text is a reject
    assert all(len({r["id"] for r in w}) == len(w) for w in live.values())

    by_file = {}
    for r in rejects:
        by_file.setdefault(Path(r["file"]).name, []).append(r)
    # real rejects name the file and the line
    assert [(r["line"], r["reason"][:12]) for r in by_file["a-text-only.jsonl"]] == [
        (32, "invalid JSON"), (33, "no text in f")]
    assert "b-empty-label.csv" not in by_file  # an empty label is not a problem
    # dropped labels: counted with file and line, the text kept
    dropped = by_file["c-bad-labels.jsonl"]
    assert [r["line"] for r in dropped] == [1, 2, 3, 10] and all(r["kept"] == "text" for r in dropped)
    assert "unknown label" in dropped[1]["reason"] and "bad label" in dropped[0]["reason"]
    assert [(r["row"], r["reason"][:7]) for r in by_file["d-rows.parquet"]] == [(1, "no text")]


def test_csv_rejects_name_the_file_line(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "w.csv").write_text("text,label\nfine,\n,pos\nalso fine,maybe\n")
    _, rejects = load_live(Source(kind="files", path="x.jsonl", live_path=str(tmp_path / "raw")), LABELS)
    assert [(r["line"], r.get("kept")) for r in rejects] == [(3, None), (4, "text")]  # header is line 1


def reference_features(params, teacher: str, texts: list[str]) -> int:
    """What encode writes for monitor: a PCA projection of the teacher's embeddings and the train features; and
    curate's training split (its words: the default stream statistic's vocabulary)."""
    from transformers import AutoModel

    from qlife.methods.projection import fit_pca
    from qlife.models import encode_texts, load_tokenizer

    emb = encode_texts(AutoModel.from_pretrained(teacher), load_tokenizer(teacher), texts,
                       params.encode.max_length, 64)[0]
    proj = fit_pca(emb, params.encode.n_features, residual=True)
    enc = Path(params.paths.encoded)
    save_npz(enc / "projection.npz", **proj.to_arrays())
    feats = proj.transform(emb).astype(np.float32)  # here the reference is the fitted rows (a test of mechanics)
    res = proj.residuals(emb).astype(np.float32)
    save_npz(enc / "features.npz", train=feats, reference=feats, train_residual=res, reference_residual=res)
    write_jsonl(Path(params.paths.curated) / "train.jsonl", ({"text": t, "label": 0} for t in texts))
    return len(texts)


def test_unlabelled_windows_are_scored_end_to_end(tiny_workdir, tiny_teacher):
    from stages import monitor

    params = with_overrides(read_params("params.yaml"), {"curate.source.live_path": "raw",
                                                         "monitor.quality.models": []})  # no trained model here
    g = generate_corpus(seed=0, n_docs=300, live_size=70)
    n_ref = reference_features(params, tiny_teacher, [d["text"] for d in g.docs])
    write_raw_windows(tiny_workdir / "raw", [d["text"] for d in g.live["window-000"]])
    (tiny_workdir / "raw" / "e-all-rejected.jsonl").write_text('{"text": ""}\n')
    write_json(Path(params.paths.curated) / "labels.json", LABELS)
    # monitor reads the user's windows from curate.source.live_path itself (labels optional)
    report = monitor.run(params)
    assert report["summary"]["rejects"] >= 1  # the bad labels and the empty text, with file and line
    assert all("file" in r and ("line" in r or "row" in r)
               for r in read_jsonl(Path(params.paths.monitor) / "rejects.jsonl"))

    v = report["verdict"]  # unlabelled windows: nothing to judge against; the two tests' agreement instead
    assert v["verdict"] == "no ground truth" and v["metric"] == "balanced_accuracy" and v["quantum"]["value"] is None
    assert (v["quantum"]["method"], v["twin"]["method"]) == ("quantum_fidelity", "rbf_tuned")
    assert "decide alike on" in v["note"] and "of 3 windows" in v["note"] and "subsamples" not in v
    assert v["quantum"]["cost"]["wall_s"] == report["methods"]["quantum_fidelity"]["wall_s"]
    assert v["quantum"]["cost"]["qpu_s_est"] > 0 and v["twin"]["cost"]["qpu_s_est"] is None
    res = json.loads((Path(params.paths.monitor) / "drift.json").read_text())
    expected = {"a-text-only": (30, 0), "b-empty-label": (25, 0), "c-bad-labels": (10, 4), "e-all-rejected": (0, 0)}
    assert {w: (r["n"], r["n_labelled"]) for w, r in res.items()} == expected
    floor = 1 / (params.monitor.n_permutations + 1)
    for w in ("a-text-only", "b-empty-label", "c-bad-labels"):
        r = res[w]
        assert r["n_live"] == r["n"] and r["n_ref"] == n_ref  # every record scored, against the whole reference
        assert floor <= r["mmd_p_value"] <= 1 and r["p_value_floor"] == pytest.approx(floor)
        assert r["n_permutations"] == params.monitor.n_permutations
        assert r["bandwidth"] > 0 and math.isfinite(r["ks_bonferroni_p"])
    assert res["e-all-rejected"]["alarm"] is False and "skipped" in res["e-all-rejected"]

    decision = report["decision"]
    assert decision["decide"] == "stream" and decision["skipped"] == ["e-all-rejected"]
    assert decision["per_window_alarms"] == [w for w, r in res.items() if r["alarm"]]
    # windows of 10-30 records: below monitor.stream.window_rows, so the stream counts none of them (and says why);
    # no quality model here: nothing is alarmed
    stream = report["stream"]
    assert stream["windows_since_reset"] == 0 and not stream["alarm"] and decision["alarms"] == []
    assert all("window_rows" in stream["windows"][w]["why"] for w in ("a-text-only", "b-empty-label", "c-bad-labels"))
    assert decision["retrain"] == report["summary"]["retrain"] is False
    assert Path(stream["state_file"]).exists() and "720" in stream["meaning"]
    assert set(report["summary"]) >= {"windows", "alarms", "retrain"} and report["summary"]["windows"] == 4
    # the report's decision is what the flow and promote read: no separate flag file
    assert sorted(p.name for p in Path(params.paths.monitor).iterdir()) == ["drift.json", "rejects.jsonl"]
    for t in params.monitor.tests:  # every configured test reports every testable window
        assert set(report["methods"][t]["p_values"]) == {"a-text-only", "b-empty-label", "c-bad-labels"}
        assert all(res[w]["tests"][t]["alarm"] == (res[w]["tests"][t]["p_value"] < params.monitor.alpha)
                   for w in report["methods"][t]["p_values"])
    assert all(res[w]["alarm"] == res[w]["tests"]["rbf"]["alarm"] for w in res if "tests" in res[w])
    # the permutation seed moves the p-value by Monte Carlo error only, never the statistic
    # (and monitor.alarm names the test whose decision raises the alarm)
    again = monitor.run(with_overrides(params, {"monitor.seed": 5, "monitor.alarm": "quantum_fidelity"}))
    again_res = json.loads((Path(params.paths.monitor) / "drift.json").read_text())
    assert again["decision"]["alarm_test"] == "quantum_fidelity"
    assert again["decision"]["per_window_alarms"] == [w for w, r in again_res.items()
                                                      if "tests" in r and r["tests"]["quantum_fidelity"]["alarm"]]
    assert again["stream"]["restarted"]  # other settings: the stream starts afresh
    for w in ("a-text-only", "b-empty-label"):
        assert again_res[w]["mmd2"] == res[w]["mmd2"]
        assert again_res[w]["bandwidth"] == res[w]["bandwidth"]
        assert again_res[w]["tests"]["quantum_fidelity"]["mmd2"] == res[w]["tests"]["quantum_fidelity"]["mmd2"]
    # more quantum features than the projection has: refused before any window is embedded
    from qlife.io import DataError

    wide = params.encode.n_features + 2  # the residual is the (n_features + 1)-th column
    with pytest.raises(DataError, match=f"monitor.quantum.features = {wide}: the projection has only"):
        monitor.run(with_overrides(params, {"monitor.quantum.features": wide}))
    # monitor.features pca+residual (the default): every test saw the log residual as a last column, and the
    # residual is a per-document score of its own; an encode without it is refused with the fix
    assert params.monitor.features == "pca+residual"
    assert len(res["a-text-only"]["ks_statistics"]) == params.encode.n_features + 1
    assert set(report["methods"]["residual"]["mean_standardised"]) == {"a-text-only", "b-empty-label", "c-bad-labels"}
    enc = Path(params.paths.encoded) / "features.npz"
    with np.load(enc) as f:
        old = {k: f[k] for k in f.files if "residual" not in k}
    save_npz(enc, **old)
    with pytest.raises(DataError, match="no reference_residual.*rerun encode"):
        monitor.run(params)
    pca = monitor.run(with_overrides(params, {"monitor.features": "pca", "monitor.stream.statistic": "knn_divergence"}))
    assert "residual" not in pca["methods"] and pca["stream"]["restarted"]


def test_planted_windows_give_a_verdict_with_power_and_false_alarms(tiny_workdir, tiny_teacher, monkeypatch):
    """The generator's windows carry their planted truth: the quantum kernel test against its twin and the best
    classical test on seeded halves of each window (power on the drifted one, false alarms on the clean one).
    Kept small (~2 s): 5 halves instead of 10, 4 qubits, two bandwidths, the tests the verdict reads."""
    from qlife.verdict import markdown_row
    from stages import monitor

    monkeypatch.setattr(monitor, "VERDICT_HALVES", 5)
    params = with_overrides(read_params("params.yaml"), {
        "monitor.tests": ["rbf", "ks", "rbf_tuned", "quantum_fidelity"], "monitor.quantum.features": 4,
        "monitor.quality.models": [],
        "monitor.quantum.bandwidths": [0.5, 1.0], "monitor.ocsvm.kernels": ["rbf"]})
    g = generate_corpus(seed=0, n_docs=150, live_size=60)
    reference_features(params, tiny_teacher, [d["text"] for d in g.docs])
    live = Path(params.paths.live)
    for name, docs in g.live.items():
        write_jsonl(live / f"{name}.jsonl", docs)
    write_json(live / "windows.json", {n: {"n": len(d), "drift_planted": g.live_drift[n]} for n, d in g.live.items()})
    write_json(Path(params.paths.curated) / "labels.json", g.label_names)
    report = monitor.run(params)
    v = report["verdict"]
    assert (v["quantum"]["method"], v["twin"]["method"], v["metric"]) == ("quantum_fidelity", "rbf_tuned",
                                                                          "balanced_accuracy")
    assert v["best_classical"]["method"] in ("rbf", "ks", "rbf_tuned") and v["verdict"] in ("ahead", "tie", "behind")
    d = v["difference"]["quantum_minus_twin"]
    assert d["ci95"][0] <= d["value"] <= d["ci95"][1] and v["quantum"]["ci95"] is not None
    assert v["subsamples"] == {"per_window": 5, "rows": {"window-000": 30, "window-001": 30}, "n_permutations": 100,
                               "reference_rows": 75, "drifted": 5, "clean": 5}
    assert set(v["rates"]) == {"quantum_fidelity", "rbf", "ks", "rbf_tuned"}
    r = v["rates"]["quantum_fidelity"]
    assert v["quantum"]["value"] == pytest.approx((r["power"] + 1 - r["false_alarm"]) / 2)
    assert "5 drifted halves" in v["note"] and "5 clean halves" in v["note"] and "10 window halves" in v["spread"]
    assert v["quantum"]["cost"]["qpu_s_est"] > 0 and v["twin"]["cost"]["cpu_s"] > 0
    assert report["cost"]["verdict"]["quantum"]["circuits"] > 0  # the halves' quantum kernels reach the ledger
    assert "| quantum_fidelity: " in markdown_row("monitor", v)


def test_promote_feedback_writes_only_labelled_records(tmp_path):
    from flows.monitor import promote_feedback

    live, incoming = tmp_path / "live", tmp_path / "incoming"
    mixed = [{"id": "m0", "text": "labelled one", "label": 1}, {"id": "m1", "text": "no label"},
             {"id": "m2", "text": "null label", "label": None}, {"id": "m3", "text": "labelled two", "label": 0}]
    write_jsonl(live / "w-mixed.jsonl", mixed)
    write_jsonl(live / "w-none.jsonl", [{"id": "n0", "text": "traffic"}, {"id": "n1", "text": "more traffic"}])

    windows = {w: read_jsonl(live / f"{w}.jsonl") for w in ("w-mixed", "w-none")}
    got = promote_feedback(windows, ["w-mixed", "w-none"], incoming)

    assert got == {"added": ["w-mixed"], "already": [], "no_labels": ["w-none"]}
    assert read_jsonl(incoming / "w-mixed.jsonl") == [mixed[0], mixed[3]]
    assert sorted(p.name for p in incoming.iterdir()) == ["w-mixed.jsonl"]  # no temporaries, no empty window
    recs, rejects = read_records_jsonl(incoming / "w-mixed.jsonl")  # what curate's add_incoming reads
    assert [r["label"] for r in recs] == [1, 0] and rejects == []
    # promoted once: a second alarm on the same window leaves it alone
    again = promote_feedback({"w-mixed": mixed[:1]}, ["w-mixed"], incoming)
    assert again == {"added": [], "already": ["w-mixed"], "no_labels": []}
    assert len(read_jsonl(incoming / "w-mixed.jsonl")) == 2
