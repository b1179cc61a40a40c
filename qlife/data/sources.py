"""Corpus sources: the built-in generator, local files (JSONL/CSV/Parquet), Hugging Face datasets.

`load_corpus(source, generator)` returns a `Corpus`: valid records, rejects (with reasons and where: `file`
and `line`, Parquet/HF `row`), label names (declared in `source.labels`, or learned: a label on fewer than
`source.min_label_docs` records is a reject, not a class), and
for the generator its live windows and the planted duplicate / drift ground truth. `load_live(source, labels)`
reads user live windows (`source.live_path`, labels optional): stage 7 reads them directly, so a new window
makes only monitor stale, not curation; `live_windows(params)` is every window stage 7 tests (the generator's
that curate wrote, and the user's), `is_labelled(record)` whether a live record is feedback for retraining.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlife.io import DataError, _label_value, read_json, read_jsonl, read_jsonl_located, validate_record
from qlife.params import Generator, Params, Source

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
LIVE_MANIFEST = "windows.json"


@dataclass
class Corpus:
    docs: list[dict]
    label_names: list[str]
    live: dict[str, list[dict]] = field(default_factory=dict)
    rejects: list[dict] = field(default_factory=list)
    duplicate_of: dict[str, str] | None = None  # planted copy id -> original id (generator only)
    exact_copies: set[str] = field(default_factory=set)
    live_drift: dict[str, bool] | None = None
    rare_labels: dict[str, int] = field(default_factory=dict)  # learned labels rejected as rare -> their records
    labels_learned: bool = False


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"data path not found: {path}")
    if not files:
        raise DataError(f"no {'/'.join(SUFFIXES)} files in {path}")
    return files


def has_data_files(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(p.suffix in SUFFIXES for p in path.iterdir()))


class _Lines:
    """The physical lines of a binary file, each decoded on its own (a non-UTF-8 line is decoded with
    replacement characters and noted), so the csv module's records can be traced to their lines. `pulled` holds
    (line number, text, undecodable) of the lines the current record took; `push_back` returns lines to be read
    again (after a record that an unclosed quote stretched over them)."""

    def __init__(self, fh):
        self.fh, self.n, self.pulled, self.back = fh, 0, [], []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.back:
            entry = self.back.pop()
        else:
            raw = self.fh.readline()
            if not raw:
                raise StopIteration
            self.n += 1
            try:
                entry = (self.n, raw.decode("utf-8"), False)
            except UnicodeDecodeError:
                entry = (self.n, raw.decode("utf-8", "replace"), True)
            if self.n == 1:
                entry = (1, entry[1].lstrip("\ufeff"), entry[2])
        self.pulled.append(entry)
        return entry[1]

    @property
    def bad(self) -> list[int]:
        return [n for n, _, bad in self.pulled if bad]

    def push_back(self, entries: list[tuple[int, str, bool]]) -> None:
        self.back.extend(reversed(entries))


def _unclosed(first: int, last: int, err: csv.Error | None, fields: int, header: int) -> str:
    what = str(err) if err is not None else f"{fields} fields, the header has {header}"
    return (f"malformed CSV: unclosed quote? a quoted field opens on line {first} and runs to line {last} "
            f"without ending a well-formed record ({what}); line {first} is rejected and the lines after it "
            "are read again")


def _csv_rows(path: Path) -> tuple[list[tuple[dict, Any]], list[dict]]:
    """CSV rows located by the physical line where each record starts (quoted fields may span lines).
    A row with more fields than the header, or with non-UTF-8 bytes, is a reject; a file whose header is
    not text (a binary file) is a DataError.

    A record is read strictly (a closing quote must end its field): a quoted field that spans lines and does
    not end in a well-formed record (a csv error, the end of the file, or a field count other than the
    header's) is taken for an unclosed quote: its first line is a reject naming it, and the lines after it are
    read again as records of their own (they are not swallowed into the reject). A one-line record that is not
    strict CSV (`"a"b,c`) is read leniently, as before."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # long documents are not malformed
    located, rejects, header = [], [], None
    with path.open("rb") as fh:
        lines = _Lines(fh)
        reader = csv.reader(lines, strict=True)
        while True:
            lines.pulled.clear()
            try:
                row, err = next(reader), None
            except StopIteration:
                break
            except csv.Error as error:
                row, err = None, error
            first = lines.pulled[0][0] if lines.pulled else lines.n
            where = {"file": str(path), "line": first}
            if len(lines.pulled) > 1 and (err is not None or (header is not None and len(row) != len(header))):
                last = lines.pulled[-1][0]
                if header is None:
                    raise DataError(f"{path}: not a readable CSV file (the header's quoted field opens on line "
                                    f"{first} and does not close: {err})")
                rejects.append({**where, "reason": _unclosed(first, last, err, len(row or ()), len(header))})
                lines.push_back(lines.pulled[1:])
                continue
            if err is not None:  # one line: an unclosed quote at the end of the file, or lenient CSV
                text = lines.pulled[0][1] if lines.pulled else ""
                try:
                    row = next(csv.reader([text])) if "unexpected end of data" not in str(err) else None
                except (csv.Error, StopIteration) as error:
                    err, row = error, None
                if row is None:
                    if header is None:
                        raise DataError(f"{path}: not a readable CSV file ({err})") from err
                    reason = ("malformed CSV: unclosed quote (the quoted field that opens here does not close "
                              "before the end of the file)" if "unexpected end of data" in str(err)
                              else f"malformed CSV: {err}")
                    rejects.append({**where, "reason": reason})
                    continue
            if not any(c.strip() for c in row):  # blank line
                continue
            if header is None:
                if lines.bad or any("\x00" in c for c in row):
                    raise DataError(f"{path}: not a CSV text file (the header, line {where['line']}, "
                                    "is not UTF-8 text)")
                header = [c.strip() for c in row]
                continue
            if lines.bad:
                rejects.append({**where, "reason": f"undecodable bytes (not UTF-8) on line {lines.bad[0]}"})
            elif len(row) > len(header):
                rejects.append({**where, "reason": f"{len(row)} fields, the header has {len(header)}"})
            else:
                located.append((where, dict(zip(header, row))))
    return located, rejects


def _parquet_rows(path: Path) -> tuple[list[tuple[dict, Any]], list[dict]]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except ImportError:
        raise
    except Exception as err:  # pyarrow raises its own kinds for a file that is not Parquet
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__}: {err})") from err
    return [({"file": str(path), "row": i}, row) for i, row in enumerate(df.to_dict("records"))], []


def read_located(path: Path) -> tuple[list[tuple[dict, Any]], list[dict]]:
    """Raw rows of one file with where each comes from (JSONL/CSV: `file`, `line`; Parquet: `file`, `row`,
    0-based), plus rejects for what cannot be decoded at all. A file that is not parseable is a DataError."""
    if path.suffix == ".csv":
        return _csv_rows(path)
    if path.suffix == ".parquet":
        return _parquet_rows(path)
    return read_jsonl_located(path)


def _usable(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and value >= 0)


def build_records(located: list[tuple[dict, Any]], text_field: str, label_field: str,
                  label_names: list[str] | None = None, min_label_docs: int = 1
                  ) -> tuple[list[dict], list[dict], list[str], dict[str, int]]:
    """Validate located raw rows into records; returns (records, rejects, label names, rare labels).

    Labels declared (`label_names`): any other label is a reject. Learned: names when most labels are
    names (sorted), else the numbers (sorted, names their string form; 0..k-1 keep their ids); a label seen
    on fewer than `min_label_docs` records is a reject ("rare label", counted in the rare labels), as is a
    label of the other kind.
    """
    learned = label_names is None
    keys = [_label_value(row.get(label_field)) if isinstance(row, dict) else None for _, row in located]
    keys = [k if _usable(k) else None for k in keys]
    rare: dict[str, int] = {}
    kind: type = int
    if learned:
        kind = str if sum(isinstance(k, str) for k in keys) > sum(isinstance(k, int) for k in keys) else int
        counts = Counter(k for k in keys if isinstance(k, kind))
        label_names = [str(k) for k in sorted(k for k, c in counts.items() if c >= min_label_docs)]
        rare = {str(k): c for k, c in sorted(counts.items()) if c < min_label_docs}
    mapping = {n: i for i, n in enumerate(label_names)}
    records, rejects = [], []
    for (where, row), key in zip(located, keys):
        rec, reason = validate_record(row, len(records), text_field, label_field, mapping or None)
        label_ok = rec is not None or (reason or "").startswith("bad label")
        if learned and key is not None and label_ok:
            raw = row.get(label_field)
            if not isinstance(key, kind):
                rec, reason = None, (f"unknown label in field '{label_field}': {raw!r} (the labels here are "
                                     f"{'names' if kind is str else 'numbers'})")
            elif str(key) in rare:
                rec, reason = None, (f"rare label in field '{label_field}': {raw!r} on {rare[str(key)]} "
                                     f"record(s), fewer than min_label_docs={min_label_docs} (a typo?)")
        if rec is None:
            rejects.append({**where, "reason": reason})
        else:
            records.append(rec)
    return records, rejects, label_names, rare


def _unique_ids(records: list[dict], prefix: str) -> None:
    seen: set[str] = set()
    for i, r in enumerate(records):
        if r["id"] in seen or r["id"].startswith("rec-"):
            r["id"] = f"{prefix}-{i:07d}"
        seen.add(r["id"])


def _load_files(source: Source) -> Corpus:
    located, rejects = [], []
    for f in _files(Path(source.path)):
        rows, rej = read_located(f)
        located += rows
        rejects += rej
    docs, rej, names, rare = build_records(located, source.text_field, source.label_field, source.labels,
                                           source.min_label_docs)
    _unique_ids(docs, "doc")
    return Corpus(docs=docs, label_names=names, rejects=rejects + rej, rare_labels=rare,
                  labels_learned=source.labels is None)


def _load_hf(source: Source) -> Corpus:
    import datasets

    kwargs = {"data_files": source.data_files} if source.data_files else {}
    ds = datasets.load_dataset(source.name, source.config, split=source.split, revision=source.revision, **kwargs)
    feature = ds.features.get(source.label_field)
    rows = list(ds)
    names, learned = source.labels, source.labels is None
    if isinstance(feature, datasets.ClassLabel):  # ids become their names, mapped onto the classes by name
        names, learned = names or list(feature.names), False
        for r in rows:
            v = r.get(source.label_field)
            if isinstance(v, int) and 0 <= v < len(feature.names):
                r[source.label_field] = feature.names[v]
    located = [({"file": source.name, "row": i}, r) for i, r in enumerate(rows)]
    docs, rejects, names, rare = build_records(located, source.text_field, source.label_field, names,
                                               source.min_label_docs)
    _unique_ids(docs, "doc")
    return Corpus(docs=docs, label_names=names, rejects=rejects, rare_labels=rare, labels_learned=learned)


def load_live(source: Source, label_names: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Live windows, one per file; unlabelled production traffic is the normal case, so records need only text.

    A missing label (absent, null, empty cell) gives a record with no "label" key; a known label is kept
    (feedback for retraining); an unknown or bad label is dropped, the text kept and scored, and the reason
    reported as a reject with `"kept": "text"`. Labels map onto the curated classes as in curation
    (`validate_record`). Every reject names its file and line (JSONL: the line; CSV: the line where the record
    starts; Parquet: `row`, 0-based).
    """
    if not source.live_path or not has_data_files(Path(source.live_path)):  # placeholder folder: no window
        return {}, []
    mapping = {n: i for i, n in enumerate(label_names)}  # the curated classes, mapped as in curation
    live, rejects = {}, []
    for f in _files(Path(source.live_path)):
        if f.name == LIVE_MANIFEST:  # curate's list of generated windows, not a window
            continue
        located, rej = read_located(f)
        rejects += rej
        recs = []
        for where, row in located:
            rec, reason = validate_record(row, len(recs), source.text_field, source.label_field, mapping or None,
                                          require_label=False)
            if rec is None:
                rejects.append({**where, "reason": reason})
                continue
            recs.append(rec)
            if reason is not None:
                rejects.append({**where, "reason": f"{reason} (label dropped, text kept)", "kept": "text"})
        _unique_ids(recs, f"live-{f.stem}")
        live[f.stem] = recs
    return live, rejects


def live_windows(params: Params) -> tuple[dict[str, list[dict]], list[dict]]:
    """Every live window stage 7 tests: the generator's (written by curate to `paths.live`) and the user's
    (`curate.source.live_path`, read by `load_live` with labels optional, validated against the training labels
    in `paths.curated/labels.json`); rejects with file and line."""
    folder = Path(params.paths.live)
    windows = {f.stem: read_jsonl(f) for f in sorted(folder.glob("*.jsonl"))}
    labels = read_json(Path(params.paths.curated) / "labels.json")
    user, rejects = load_live(params.curate.source, labels)
    clash = sorted(set(windows) & set(user))
    if clash:
        raise DataError(f"live windows {clash} exist both in {folder} and in {params.curate.source.live_path}")
    return {**windows, **user}, rejects


def is_labelled(doc: dict) -> bool:
    """Live records may carry no label (no key, or None): only labelled ones are feedback for retraining."""
    return doc.get("label") is not None


def _load_generator(gen: Generator) -> Corpus:
    from qlife.data.generator import generate_corpus

    g = generate_corpus(seed=gen.seed, n_docs=gen.n_docs, n_topics=gen.n_topics,
                        exact_dup_frac=gen.exact_dup_frac, near_dup_frac=gen.near_dup_frac,
                        live_size=gen.live_size, minority_frac=gen.minority_frac)
    return Corpus(docs=list(g.docs), label_names=list(g.label_names), live=dict(g.live),
                  duplicate_of={**g.exact_duplicates, **g.near_duplicates},
                  exact_copies=set(g.exact_duplicates), live_drift=dict(g.live_drift))


def load_corpus(source: Source, generator: Generator) -> Corpus:
    if source.kind == "generator":
        corpus = _load_generator(generator)
    else:
        corpus = _load_files(source) if source.kind == "files" else _load_hf(source)
    if source.max_docs:
        corpus.docs = corpus.docs[: source.max_docs]
    if not corpus.docs:
        raise DataError(f"no usable record in the {source.kind} source "
                        f"({len(corpus.rejects)} rejected; first: {corpus.rejects[:1]})")
    if len(corpus.label_names) < 2 or len({d['label'] for d in corpus.docs}) < 2:
        rare = (f"; labels on fewer than curate.source.min_label_docs={source.min_label_docs} records are "
                f"rejected as rare: {corpus.rare_labels}" if corpus.rare_labels else "")
        raise DataError(f"the corpus needs at least two labels to train a classifier (labels: "
                        f"{corpus.label_names}{rare})")
    return corpus
