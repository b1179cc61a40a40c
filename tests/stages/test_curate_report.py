"""Stage 1 report: per-label removals and their warning, what is known without ground truth (null figures,
removed-pair statistics, reports/dedup_pairs.md), the decision, and the teacher embedder's code path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qlife.data.generator import generate_corpus
from qlife.dedup import embed, embedding_qubits
from qlife.io import DataError
from qlife.params import parse_params
from stages.curate import run


def _paths(tmp_path: Path) -> dict:
    return {k: str(tmp_path / k) for k in ("curated", "live", "incoming", "reports")}


@pytest.fixture(scope="module")
def planted_files(tmp_path_factory) -> Path:
    """A files-source corpus (no ground truth for the stage): the generator's originals and exact copies, plus
    its near copies of the minority class 'health' only, so that class loses disproportionately."""
    folder = tmp_path_factory.mktemp("files-source")
    g = generate_corpus(seed=0, n_docs=800, live_size=20, near_dup_frac=0.1, minority_frac=0.2)
    names = g.label_names
    rows = [{"id": d["id"], "text": d["text"], "label": names[d["label"]]} for d in g.docs
            if d["id"] not in g.near_duplicates or names[d["label"]] == "health"]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "live").mkdir()
    live = [{"text": d["text"], "label": names[d["label"]]} for d in g.live["window-000"]]
    (folder / "live" / "window-000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in live))
    return folder


def test_files_source_no_ground_truth_per_label_warning_and_pairs_report(tmp_path, planted_files):
    params = parse_params({"paths": _paths(tmp_path), "curate": {
        "source": {"kind": "files", "path": str(planted_files / "corpus.jsonl"),
                   "live_path": str(planted_files / "live")},
        "embedder": "tfidf", "n_clusters": 16, "report_pairs": 5}})
    rep = run(params)
    # figures that need ground truth are null, not 0; the summary keeps its keys without them
    assert set(rep["summary"]) == {"docs_in", "docs_out", "reference", "rejects", "removed", "applied", "embedder"}
    assert rep["comparison"]["f1_quantum_minus_classical"] is None
    for name, m in rep["methods"].items():
        assert m["precision"] is None and m["recall"] is None and m["f1"] is None, name
        # per-label removals add up to the method's totals
        t = m["per_label"]
        assert {k: r["label"] for k, r in t["labels"].items()} == {"0": "business", "1": "health", "2": "science",
                                                                     "3": "sports"}  # files: sorted names
        for key in ("docs", "exact_removed", "near_removed", "removed"):
            assert sum(r[key] for r in t["labels"].values()) == t["overall"][key], (name, key)
        assert t["overall"]["removed"] == m["removed"] and t["overall"]["near_removed"] == m["near_removed"] > 0
        assert t["overall"]["exact_removed"] == m["exact_removed"] > 0
        health = t["labels"]["1"]
        assert health["near_share"] > params.curate.label_loss_warn_ratio * t["overall"]["near_share"]
        # what can be known about the removed pairs
        pairs = m["pairs"]
        assert pairs["n"] == m["near_removed"]
        assert pairs["embedding_cosine"]["median"] > 1 - params.curate.eps  # (chained groups may dip below)
        assert 0 <= pairs["word_jaccard"]["min"] <= pairs["word_jaccard"]["median"] <= 1
        assert 0 <= pairs["share_jaccard_below_0.5"] <= 1 and pairs["share_cross_label"] <= 0.1
    # the minority class is warned about, by name and with both rates, for each method; nothing else is
    assert rep["warnings"] and all("'health'" in w and "overall" in w for w in rep["warnings"])
    assert {w.split(":")[0] for w in rep["warnings"]} == {"classical", "quantum"}
    dec = rep["decision"]
    assert dec["applied"] == "quantum" and dec["removed"] == rep["summary"]["removed"]
    assert dec["warnings"] and all(w.startswith("quantum:") for w in dec["warnings"])
    assert "no ground truth" in dec["why"]
    v = rep["verdict"]  # nothing to score against: not judged, and what is known instead
    assert v["verdict"] == "no ground truth" and v["quantum"]["value"] is None and v["metric"] == "f1"
    assert v["quantum"]["method"].startswith("quantum SemDeDup") and v["twin"]["method"] == "classical SemDeDup"
    assert f"Jaccard {rep['comparison']['jaccard_removed']:.2f}" in v["note"]
    assert v["quantum"]["cost"]["wall_s"] == rep["cost"]["quantum"]["wall_s"]
    # the readable report: per-label table and a seeded sample of removed pairs per method
    md = (tmp_path / "reports" / "dedup_pairs.md").read_text()
    assert md.count("   - removed `") == 10 and md.count("   - kept `") == 10  # report_pairs=5, two methods
    assert "| health |" in md and "no ground truth" in md and "'health'" in md
    again = run(params)  # seeded: the same removals and the same readable report
    assert again["summary"] == rep["summary"] and (tmp_path / "reports" / "dedup_pairs.md").read_text() == md


def test_teacher_embedder_unit_rows_of_the_encoder_width(tmp_path, tiny_teacher):
    params = parse_params({"paths": _paths(tmp_path), "train": {"model": tiny_teacher},
                           "curate": {"generator": {"n_docs": 300, "live_size": 20}, "n_clusters": 8}})
    assert params.curate.embedder == "teacher"  # the default
    texts = [d["text"] for d in generate_corpus(seed=0, n_docs=300, live_size=20).docs[:40]]
    X, info = embed(texts, params)
    assert X.shape == (40, 32) and X.dtype == np.float64  # the tiny BERT's hidden size
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    assert {k: v for k, v in info.items() if k not in ("parameters", "median_cosine")} == {
        "kind": "teacher", "model": tiny_teacher, "model_type": "bert", "decoder": False, "pooling": "mean",
        "max_length": 64, "dim": 32}
    from qlife.models import load_encoder

    assert info["parameters"] == sum(p.numel() for p in load_encoder(tiny_teacher)[0].parameters())
    assert 0.5 < info["median_cosine"] <= 1  # random weights: every text alike
    # in input order: the length-sorted batching is undone
    X_rev, _ = embed(texts[::-1], params)
    np.testing.assert_allclose(X_rev[::-1], X, atol=1e-5)
    # the whole stage on it: qubits follow the embedding width (32 dims -> 5 amplitude qubits); its random weights
    # make 97% of the texts near duplicates, which curate refuses (curate.max_near_dup_frac): off for this check
    with pytest.raises(DataError, match="max_near_dup_frac"):
        run(params)
    params = params.model_copy(update={"curate": params.curate.model_copy(update={"max_near_dup_frac": None})})
    rep = run(params)
    q = rep["methods"]["quantum"]
    assert rep["summary"]["embedder"] == "teacher" and rep["embedder"]["dim"] == 32
    assert q["embedding_dim"] == 32 and q["n_qubits"] == 5 and q["swap_test_qubits"] == 11
    # generated corpus: ground truth, and it shows the over-removal (every planted duplicate among 97% removed)
    s, applied = rep["summary"], rep["methods"][rep["decision"]["applied"]]
    assert s["precision"] == applied["precision"] and s["recall"] == applied["recall"] == 1.0
    assert s["precision"] < 0.2 and s["docs_out"] == s["docs_in"] - s["removed"] < 0.05 * s["docs_in"]


def test_per_document_truth_scores_as_dedup_scores():
    """The verdict's per-document F1 (qlife.verdict) equals the report's group F1 whichever members go."""
    from sklearn.metrics import f1_score

    from qlife.methods.dedup_report import aligned_removals, planted_truth
    from qlife.methods.semdedup import dedup_scores

    groups = [[3, 1, 7], [0, 5], [9, 8, 2, 6]]
    y, gid = planted_truth(12, groups)
    assert y.tolist() == [0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0] and gid.tolist() == [0, 1, 2, 1, 4, 0, 2, 1, 2, 2, 10, 11]
    rng = np.random.default_rng(0)
    for _ in range(50):
        removed = rng.random(12) < 0.5
        pred = aligned_removals(removed, groups)
        assert pred.sum() == removed.sum()
        assert f1_score(y, pred, zero_division=0) == pytest.approx(dedup_scores(removed, groups)["f1"])


def test_qubits_from_the_actual_embedding_width():
    p = parse_params({})
    assert [embedding_qubits(p, d) for d in (128, 384, 768, 100_000)] == [7, 9, 10, 12]  # MiniLM: 384 -> 9, zero-padded
    assert embedding_qubits(parse_params({"curate": {"quantum": {"encoding": "angle"}}}), 384) == 16
    assert embedding_qubits(parse_params({"curate": {"quantum": {"qubits": 6}}}), 384) == 6
