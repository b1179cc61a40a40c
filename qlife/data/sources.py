"""Corpus sources: the built-in generator, local files (JSONL/CSV/Parquet), Hugging Face datasets.

`load_corpus(source, generator)` returns a `Corpus`: valid records, rejects (with reasons), label names, and
for the generator its live windows and the planted duplicate / drift ground truth. `load_live(source, labels)`
reads user live windows (`source.live_path`, labels optional): stage 7 reads them directly, so a new window
makes only monitor stale, not curation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlife.io import DataError, validate_record
from qlife.params import Generator, Source

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


def read_rows(path: Path) -> tuple[list[Any], list[dict]]:
    """Raw rows of one file, plus rejects for lines that cannot be decoded at all."""
    if path.suffix in (".csv", ".parquet"):
        import pandas as pd

        df = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        return df.to_dict("records"), []
    rows, rejects = [], []
    with path.open("rb") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line.decode("utf-8")))
            except UnicodeDecodeError:
                rejects.append({"file": str(path), "line": i + 1, "reason": "undecodable bytes (not UTF-8)"})
            except json.JSONDecodeError as err:
                rejects.append({"file": str(path), "line": i + 1, "reason": f"invalid JSON: {err.msg}"})
    return rows, rejects


def validate_rows(rows: list[Any], text_field: str, label_field: str, where: str,
                  label_names: list[str] | None = None) -> tuple[list[dict], list[dict], list[str]]:
    """Validate raw rows; string labels become ids in sorted order of their names."""
    if label_names is None:  # names only when no label is numeric; mixed kinds make strings rejects
        values = [r.get(label_field) for r in rows if isinstance(r, dict)]
        numeric = any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        names = {v for v in values if isinstance(v, str) and not v.strip().isdigit()}
        label_names = [] if numeric else sorted(names)
    mapping = {n: i for i, n in enumerate(label_names)}
    records, rejects = [], []
    for i, row in enumerate(rows):
        rec, reason = validate_record(row, i, text_field, label_field, mapping)
        if rec is None:
            rejects.append({"file": where, "row": i, "reason": reason})
        else:
            records.append(rec)
    if not label_names:
        label_names = [str(i) for i in range(max((r["label"] for r in records), default=-1) + 1)]
    return records, rejects, label_names


def _unique_ids(records: list[dict], prefix: str) -> None:
    seen: set[str] = set()
    for i, r in enumerate(records):
        if r["id"] in seen or r["id"].startswith("rec-"):
            r["id"] = f"{prefix}-{i:07d}"
        seen.add(r["id"])


def _load_files(source: Source) -> Corpus:
    rows, rejects = [], []
    for f in _files(Path(source.path)):
        r, rej = read_rows(f)
        rows += r
        rejects += rej
    docs, rej, names = validate_rows(rows, source.text_field, source.label_field, str(source.path))
    _unique_ids(docs, "doc")
    return Corpus(docs=docs, label_names=names, rejects=rejects + rej)


def _load_hf(source: Source) -> Corpus:
    import datasets

    kwargs = {"data_files": source.data_files} if source.data_files else {}
    ds = datasets.load_dataset(source.name, source.config, split=source.split, revision=source.revision, **kwargs)
    feature = ds.features.get(source.label_field)
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    docs, rejects, names = validate_rows(list(ds), source.text_field, source.label_field, source.name, names)
    _unique_ids(docs, "doc")
    return Corpus(docs=docs, label_names=names, rejects=rejects)


def load_live(source: Source, label_names: list[str]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Live windows, one per file; unlabelled production traffic is the normal case, so records need only text.

    A missing label (absent, null, empty cell) gives a record with no "label" key; a known label is kept
    (feedback for retraining); an unknown or bad label is dropped, the text kept and scored, and the reason
    reported as a reject with `"kept": "text"`. Every reject names its file and line (JSONL: the line; CSV:
    row + 2, after the header; Parquet: `row`, 0-based).
    """
    if not source.live_path or not has_data_files(Path(source.live_path)):  # placeholder folder: no window
        return {}, []
    mapping = {n: i for i, n in enumerate(label_names)}
    live, rejects = {}, []
    for f in _files(Path(source.live_path)):
        if f.name == LIVE_MANIFEST:  # curate's list of generated windows, not a window
            continue
        located: list[tuple[dict, Any]] = []  # (where, raw row)
        if f.suffix in (".csv", ".parquet"):
            rows, rej = read_rows(f)
            rejects += rej
            located = [({"file": str(f), "line": i + 2} if f.suffix == ".csv" else {"file": str(f), "row": i}, row)
                       for i, row in enumerate(rows)]
        else:
            with f.open("rb") as fh:
                for i, line in enumerate(fh):
                    if not line.strip():
                        continue
                    where = {"file": str(f), "line": i + 1}
                    try:
                        located.append((where, json.loads(line.decode("utf-8"))))
                    except UnicodeDecodeError:
                        rejects.append({**where, "reason": "undecodable bytes (not UTF-8)"})
                    except json.JSONDecodeError as err:
                        rejects.append({**where, "reason": f"invalid JSON: {err.msg}"})
        recs = []
        for where, row in located:
            rec, reason = validate_record(row, len(recs), source.text_field, source.label_field, mapping,
                                          require_label=False)
            if rec is not None and label_names and rec.get("label", -1) >= len(label_names):
                reason = f"unknown label in field '{source.label_field}': {rec.pop('label')!r}"
            if rec is None:
                rejects.append({**where, "reason": reason})
                continue
            recs.append(rec)
            if reason is not None:
                rejects.append({**where, "reason": f"{reason} (label dropped, text kept)", "kept": "text"})
        _unique_ids(recs, f"live-{f.stem}")
        live[f.stem] = recs
    return live, rejects


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
        raise DataError("the corpus needs at least two labels to train a classifier")
    return corpus
