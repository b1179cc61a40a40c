"""Bad input records: every malformed row is a reject with its reason and where it is (file and line; Parquet:
row), valid rows survive, labels are declared or learned (a rare label is a reject, not a new class), and no
input row ends in a traceback: a file that cannot be parsed at all is a DataError naming it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qlife.data.sources import load_corpus, load_live
from qlife.io import DataError
from qlife.params import Generator, Source

RNG = np.random.default_rng(7)
WORDS = ["market", "goal", "vote", "season", "budget", "match", "senate", "coach", "tax", "league"]


def text(i: int) -> str:
    """A distinct, seeded text (no comma, quote or newline: the malformed bits are written on purpose)."""
    return f"record {i} " + " ".join(RNG.choice(WORDS, size=5))


TEXTS = [text(i) for i in range(40)]


def jsonl(rows: list) -> bytes:
    """Rows as JSONL; a bytes item is written as a raw line (malformed on purpose)."""
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def csv_lines(lines: list) -> bytes:
    return b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)


def alternating(labels: tuple, n: int = 10) -> list[dict]:
    return [{"text": TEXTS[i], "label": labels[i % len(labels)]} for i in range(n)]


@dataclass
class Case:
    name: str
    suffix: str
    content: bytes | pd.DataFrame
    docs: int                         # valid records expected
    rejects: list[tuple[int, str]]    # (line, or row for Parquet; reason substring), in order
    names: list[str]
    source: dict = field(default_factory=dict)
    rare: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] | None = None  # text -> expected label id, for a few survivors
    valid: int = 10                    # TEXTS[:valid] are the valid rows written


def _typo() -> Case:
    rows = alternating(("sports", "politics"))
    rows.insert(6, {"text": "a typo for sports", "label": "sprots"})  # line 7
    return Case("jsonl-typo-label", ".jsonl", jsonl(rows), 10, [(7, "rare label")], ["politics", "sports"],
                rare={"sprots": 1}, ids={TEXTS[0]: 1, TEXTS[1]: 0})


def _stray_numeric() -> Case:
    rows = alternating((0, 1))
    rows.insert(3, {"text": "a stray label", "label": 99})  # line 4
    return Case("jsonl-stray-numeric-label", ".jsonl", jsonl(rows), 10, [(4, "rare label")], ["0", "1"],
                rare={"99": 1}, ids={TEXTS[0]: 0, TEXTS[1]: 1})


def _invalid_json_and_bytes() -> Case:
    rows = alternating((0, 1))
    rows[2:2] = [b'{"text": "cut short', b'{"text": "caf\xe9", "label": 0}', b"[" * 100_000, b'"a string"']
    return Case("jsonl-invalid-json-non-utf8", ".jsonl", jsonl(rows), 10,
                [(3, "invalid JSON"), (4, "undecodable"), (5, "invalid JSON"), (6, "not an object")], ["0", "1"])


def _declared() -> Case:
    rows = alternating(("pos", "neg"), 6)
    rows.insert(2, {"text": "a third class", "label": "neutral"})  # line 3
    rows.append({"text": "an id for a declared label", "label": 1})  # line 8: ids are indexes of the declared
    return Case("jsonl-declared-labels-unknown", ".jsonl", jsonl(rows), 7, [(3, "unknown label")],
                ["pos", "neg"], source={"labels": ["pos", "neg"]}, valid=6,
                ids={TEXTS[0]: 0, TEXTS[1]: 1, "an id for a declared label": 1})


def _csv_empty_label() -> Case:
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in alternating(("pos", "neg"))]
    lines.insert(4, "no label here,")  # line 5
    return Case("csv-empty-label-cell", ".csv", csv_lines(lines), 10, [(5, "bad label")], ["neg", "pos"],
                ids={TEXTS[0]: 1, TEXTS[1]: 0})


def _csv_numeric_empty_label() -> Case:
    lines = ["id,text,label"] + [f"d{i},{r['text']},{r['label']}" for i, r in enumerate(alternating((0, 1)))]
    lines.insert(2, "dx,no label here,")  # line 3
    return Case("csv-numeric-empty-label-cell", ".csv", csv_lines(lines), 10, [(3, "bad label")], ["0", "1"],
                ids={TEXTS[0]: 0, TEXTS[1]: 1})


def _csv_extra_fields() -> Case:
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in alternating(("pos", "neg"))]
    lines.insert(3, "too many,pos,surprise")  # line 4
    return Case("csv-extra-fields", ".csv", csv_lines(lines), 10, [(4, "3 fields, the header has 2")],
                ["neg", "pos"])


def _csv_non_utf8() -> Case:
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in alternating(("pos", "neg"))]
    lines.insert(5, b"caf\xe9 au lait,pos")  # line 6
    return Case("csv-non-utf8", ".csv", csv_lines(lines), 10, [(6, "undecodable")], ["neg", "pos"])


def _csv_multiline() -> Case:
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in alternating(("pos", "neg"))]
    lines[2:2] = ['"a quoted field', 'over three lines, with a comma', 'and ""quotes""",neg',  # lines 3-5
                  "no label right after,",                                                   # line 6
                  '"two lines',  'then a typo",nge']                                         # lines 7-8
    return Case("csv-multiline-quoted-field", ".csv", csv_lines(lines), 11,
                [(6, "bad label"), (7, "rare label")], ["neg", "pos"], rare={"nge": 1},
                ids={'a quoted field\nover three lines, with a comma\nand "quotes"': 0})


def _parquet() -> Case:
    rows = alternating((0, 1))
    rows[2:2] = [{"text": None, "label": 0}, {"text": "half a label", "label": 1.5},
                 {"text": "no label", "label": None}, {"text": "typo class", "label": 7}]
    return Case("parquet-bad-rows", ".parquet", pd.DataFrame(rows), 10,
                [(2, "no text"), (3, "bad label"), (4, "bad label"), (5, "rare label")], ["0", "1"],
                rare={"7": 1}, ids={TEXTS[0]: 0, TEXTS[1]: 1})


CASES = [_typo(), _stray_numeric(), _invalid_json_and_bytes(), _declared(), _csv_empty_label(),
         _csv_numeric_empty_label(), _csv_extra_fields(), _csv_non_utf8(), _csv_multiline(), _parquet()]


def write(path: Path, content: bytes | pd.DataFrame) -> None:
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path)
    else:
        path.write_bytes(content)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_records_are_located_rejects(tmp_path, case):
    path = tmp_path / f"corpus{case.suffix}"
    write(path, case.content)
    corpus = load_corpus(Source(kind="files", path=str(path), **case.source), Generator())

    where = "row" if case.suffix == ".parquet" else "line"
    got = [(r[where], r["reason"]) for r in corpus.rejects]
    assert len(got) == len(case.rejects), got
    for (loc, reason), (want_loc, needle) in zip(got, case.rejects):
        assert (loc, needle in reason) == (want_loc, True), (loc, reason)
    assert all(r["file"] == str(path) for r in corpus.rejects)
    assert len(corpus.docs) == case.docs
    assert corpus.label_names == case.names
    assert corpus.rare_labels == case.rare
    assert {d["label"] for d in corpus.docs} == set(range(len(case.names)))
    by_text = {d["text"]: d["label"] for d in corpus.docs}
    assert set(TEXTS[:case.valid]) <= set(by_text)  # every valid row survives
    for t, label in (case.ids or {}).items():
        assert by_text[t] == label


def test_numeric_labels_keep_their_ids(tmp_path):
    """A 0..k-1 corpus gives the ids it always gave; a rare value in the middle does not shift them silently:
    the names say which value each id stands for."""
    path = tmp_path / "c.jsonl"
    path.write_bytes(jsonl(alternating((0, 1, 2), 15)))
    corpus = load_corpus(Source(kind="files", path=str(path)), Generator())
    assert corpus.label_names == ["0", "1", "2"]
    assert [d["label"] for d in corpus.docs] == [i % 3 for i in range(15)]

    rows = alternating((0, 2), 10) + [{"text": "only one", "label": 1}]
    path.write_bytes(jsonl(rows))
    corpus = load_corpus(Source(kind="files", path=str(path)), Generator())
    assert corpus.label_names == ["0", "2"] and corpus.rare_labels == {"1": 1}
    assert [d["label"] for d in corpus.docs] == [i % 2 for i in range(10)]
    # live traffic maps onto the same classes: 2 is id 1, and 1 (no class) is dropped, the text kept
    live = tmp_path / "live"
    live.mkdir()
    (live / "w.jsonl").write_bytes(jsonl([{"text": "a", "label": 2}, {"text": "b", "label": 1},
                                          {"text": "c", "label": "0"}]))
    windows, rejects = load_live(Source(kind="files", path=str(path), live_path=str(live)), corpus.label_names)
    assert [r.get("label") for r in windows["w"]] == [1, None, 0]
    assert [(r["line"], r["kept"]) for r in rejects] == [(2, "text")] and "unknown label" in rejects[0]["reason"]


def test_min_label_docs_and_all_rare_is_a_clear_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(csv_lines(["text,label"] + [f"{r['text']},{r['label']}" for r in alternating(("a", "b"), 6)]))
    with pytest.raises(DataError, match="min_label_docs=5"):  # three of each: both rare
        load_corpus(Source(kind="files", path=str(path)), Generator())
    corpus = load_corpus(Source(kind="files", path=str(path), min_label_docs=3), Generator())
    assert corpus.label_names == ["a", "b"] and len(corpus.docs) == 6 and corpus.labels_learned
    # declared labels are classes however few their records
    corpus = load_corpus(Source(kind="files", path=str(path), labels=["b", "a"]), Generator())
    assert corpus.label_names == ["b", "a"] and not corpus.labels_learned and not corpus.rare_labels
    assert [d["label"] for d in corpus.docs] == [1, 0] * 3


@pytest.mark.parametrize("suffix,content", [
    (".csv", b"\x89PNG\r\n\x1a\n" + RNG.bytes(4096)),
    (".csv", b"\x00\x00\x00\x01text,label\nx,1\n"),
    (".parquet", b"text,label\nnot parquet,1\n"),
], ids=["png-named-csv", "nul-header-csv", "csv-named-parquet"])
def test_unparseable_file_is_a_data_error_naming_it(tmp_path, suffix, content):
    path = tmp_path / f"blob{suffix}"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_corpus(Source(kind="files", path=str(path)), Generator())
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_no_row_ends_in_a_traceback(tmp_path, suffix):
    """Seeded mutations of a good file (flipped bytes, stray quotes, commas, newlines, braces): the corpus
    loads or is a DataError, and every reject names its file and line."""
    rng = np.random.default_rng(11)
    rows = alternating(("pos", "neg"), 20)
    good = jsonl(rows) if suffix == ".jsonl" else csv_lines(
        ["text,label"] + [f"{r['text']},{r['label']}" for r in rows])
    path = tmp_path / f"m{suffix}"
    junk = [b'"', b",", b"\n", b"{", b"}", b"\xff", b"\x00", b"\r", b'""', b"\\"]
    for _ in range(40):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 8))):
            pos = int(rng.integers(0, len(data)))
            data[pos:pos + int(rng.integers(0, 3))] = junk[int(rng.integers(0, len(junk)))]
        path.write_bytes(bytes(data))
        try:
            corpus = load_corpus(Source(kind="files", path=str(path), min_label_docs=3), Generator())
        except DataError:
            continue
        assert all(r["file"] == str(path) and r["line"] >= 1 and r["reason"] for r in corpus.rejects)
        assert all(d["label"] in (0, 1) for d in corpus.docs)


def test_curate_reports_rare_labels(tmp_path):
    """Stage 1 on a files corpus with a typo label: the typo is counted in the rejects and named in the
    report's `label_rejects`, and is not a class."""
    from qlife.data.generator import generate_corpus
    from qlife.params import parse_params
    from stages.curate import run

    g = generate_corpus(seed=0, n_docs=400, live_size=20)
    rows = [{"text": d["text"], "label": g.label_names[d["label"]]} for d in g.docs]
    rows.insert(17, {"text": "the match went to extra time", "label": "sprots"})
    (tmp_path / "corpus.jsonl").write_bytes(jsonl(rows))
    (tmp_path / "live").mkdir()
    params = parse_params({"paths": {k: str(tmp_path / k) for k in ("curated", "live", "incoming", "reports")},
                           "curate": {"source": {"kind": "files", "path": str(tmp_path / "corpus.jsonl"),
                                                 "live_path": str(tmp_path / "live")},
                                      "embedder": "tfidf", "n_clusters": 8}})
    rep = run(params)
    assert rep["summary"]["rejects"] == 1 and "sprots" not in rep["labels"]
    assert rep["labels"] == sorted(g.label_names)
    assert rep["label_rejects"] == {"min_label_docs": 5, "rare": {"sprots": 1}, "records": 1}
    rejects = [json.loads(line) for line in (tmp_path / "curated" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"][:10]) for r in rejects] == [(18, "rare label")]


@pytest.mark.parametrize(("after", "closes"), [
    ([], "unexpected end of data"),                    # no quote after it: the field ran to the end of the file
    (['"a quoted, later text",neg'], "expected after"),  # the next quote closed it mid-record
], ids=["to-end-of-file", "to-a-later-quote"])
def test_unclosed_quote_rejects_its_own_line_and_reads_the_records_after_it(tmp_path, after, closes):
    """A record whose quote never closes used to swallow the valid records after it into one reject (or, when
    a later quote closed it, into one silently wrong record): now its own line is the reject, and each record
    after it is read from its own line."""
    lines = ["text,label", f"{TEXTS[0]},pos", f'"{TEXTS[1]} with an unclosed quote,neg', f"{TEXTS[2]},neg",
             f"{TEXTS[3]},pos", *after]
    path = tmp_path / "c.csv"
    path.write_bytes(csv_lines(lines))
    corpus = load_corpus(Source(kind="files", path=str(path), labels=["pos", "neg"]), Generator())
    assert [(r["file"], r["line"]) for r in corpus.rejects] == [(str(path), 3)]
    assert "unclosed quote" in corpus.rejects[0]["reason"] and closes in corpus.rejects[0]["reason"]
    want = [(TEXTS[0], 0), (TEXTS[2], 1), (TEXTS[3], 0)] + [("a quoted, later text", 1)] * len(after)
    assert [(d["text"], d["label"]) for d in corpus.docs] == want


def test_unclosed_quote_on_the_last_line_and_a_multiline_record_still_read(tmp_path):
    """A quoted field over several lines that closes into a whole record is one record (its first line); an
    unclosed quote on the last line is a reject of that line."""
    lines = ["text,label", f'"{TEXTS[0]}', 'and its second line",pos', f"{TEXTS[1]},neg", f'"{TEXTS[2]},pos']
    path = tmp_path / "c.csv"
    path.write_bytes(csv_lines(lines))
    corpus = load_corpus(Source(kind="files", path=str(path), labels=["pos", "neg"]), Generator())
    assert [(d["text"], d["label"]) for d in corpus.docs] == [(f"{TEXTS[0]}\nand its second line", 0),
                                                              (TEXTS[1], 1)]
    assert [(r["line"], "unclosed quote" in r["reason"]) for r in corpus.rejects] == [(5, True)]
