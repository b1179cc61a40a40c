"""Corpus sources: files with malformed records, string labels, HF datasets via a local file."""

from __future__ import annotations

import json

import pytest

from qlife.data.sources import load_corpus
from qlife.io import DataError
from qlife.params import Generator, Source

# five records per label: learned labels need curate.source.min_label_docs (5) records to be a class
GOOD = [{"text": f"document number {i} about topic {i % 2}", "label": i % 2} for i in range(10)]


def write_messy_jsonl(path):
    with path.open("wb") as f:
        for row in GOOD:
            f.write((json.dumps(row) + "\n").encode())
        f.write(b'{"text": "broken json\n')                      # invalid JSON
        f.write(b'{"text": "   ", "label": 1}\n')                 # no text
        f.write(b'{"text": "fine text", "label": "seven"}\n')     # a name among numeric labels
        f.write(b'{"text": "negative", "label": -1}\n')           # bad label
        f.write(b'{"text": "\xff\xfe bytes", "label": 0}\n')      # not UTF-8
        f.write(b"\n")


def test_files_source_counts_rejects_and_goes_on(tmp_path):
    path = tmp_path / "corpus.jsonl"
    write_messy_jsonl(path)
    corpus = load_corpus(Source(kind="files", path=str(path)), Generator())
    assert len(corpus.docs) == len(GOOD)
    reasons = " | ".join(r["reason"] for r in corpus.rejects)
    assert len(corpus.rejects) == 5, reasons
    for needle in ("invalid JSON", "no text", "bad label", "undecodable"):
        assert needle in reasons
    assert len({d["id"] for d in corpus.docs}) == len(GOOD)


def test_csv_with_string_labels(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("text,label\nhello there,pos\ngood bye,neg\nmore words,pos\n")
    corpus = load_corpus(Source(kind="files", path=str(path), min_label_docs=1), Generator())
    assert corpus.label_names == ["neg", "pos"]
    assert [d["label"] for d in corpus.docs] == [1, 0, 1]


def test_hf_source_through_datasets_load_dataset(tmp_path):
    path = tmp_path / "hf.jsonl"
    path.write_text("".join(json.dumps({"sentence": r["text"], "y": r["label"]}) + "\n" for r in GOOD))
    src = Source(kind="hf", name="json", data_files=str(path), text_field="sentence", label_field="y")
    corpus = load_corpus(src, Generator())
    assert [d["text"] for d in corpus.docs] == [r["text"] for r in GOOD]


def test_unusable_corpus_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": ""}\n{"nope": 1}\n')
    with pytest.raises(DataError, match="no usable record"):
        load_corpus(Source(kind="files", path=str(path)), Generator())
    with pytest.raises(DataError, match="not found"):
        load_corpus(Source(kind="files", path=str(tmp_path / "missing.jsonl")), Generator())
