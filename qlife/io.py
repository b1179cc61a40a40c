"""Atomic writes, JSONL helpers and record validation.

Every output goes to a temporary sibling first and is renamed into place, so a stage killed half-way
leaves the previous output intact. Records are `{"id": str, "text": str, "label": int}`; a record that
does not fit is returned as a reject with its reason instead of stopping the stage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class DataError(ValueError):
    """Input that cannot be used at all (missing, empty, no valid record)."""


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if path.exists():
                path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if is_dir:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_default) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_path(path) as tmp, tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, default=_default) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict]:
    """Strict reader for files this project wrote."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)


def _missing(value: Any) -> bool:
    """No label at all: absent/None, NaN (an empty CSV cell), pandas NA, or a blank string."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and not value.strip()


def validate_record(raw: Any, index: int, text_field: str = "text", label_field: str = "label",
                    labels: dict[str, int] | None = None, require_label: bool = True
                    ) -> tuple[dict | None, str | None]:
    """Return (record, None) or (None, reason). String labels map through `labels` when given.

    `require_label=False` (live traffic, which needs only text): a missing label (absent, null, NaN, blank)
    gives a record with no "label" key; a bad label gives (record with no "label" key, reason): the text is
    kept, the label dropped, and the caller reports the reason.
    """
    if not isinstance(raw, dict):
        return None, "not an object"
    text = raw.get(text_field)
    if not isinstance(text, str) or not text.strip():
        return None, f"no text in field '{text_field}'"
    rid = raw.get("id")
    record = {"id": str(rid) if rid is not None else f"rec-{index:07d}", "text": text.strip()}
    label = raw.get(label_field)
    if not require_label and _missing(label):
        return record, None
    if isinstance(label, str) and labels is not None and label in labels:
        label = labels[label]
    elif isinstance(label, str) and label.strip().lstrip("-").isdigit():
        label = int(label)
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if isinstance(label, bool) or not isinstance(label, int) or label < 0:
        reason = f"bad label in field '{label_field}': {label!r}"
        return (None, reason) if require_label else (record, reason)
    return {**record, "label": label}, None


def read_records_jsonl(path: str | Path, text_field: str = "text", label_field: str = "label"
                       ) -> tuple[list[dict], list[dict]]:
    """Lenient JSONL reader for user data: returns (records, rejects); undecodable lines are rejects."""
    records, rejects = [], []
    with Path(path).open("rb") as f:
        for i, raw_line in enumerate(f):
            if not raw_line.strip():
                continue
            where = {"file": str(path), "line": i + 1}
            try:
                obj = json.loads(raw_line.decode("utf-8"))
            except UnicodeDecodeError:
                rejects.append({**where, "reason": "undecodable bytes (not UTF-8)"})
                continue
            except json.JSONDecodeError as err:
                rejects.append({**where, "reason": f"invalid JSON: {err.msg}",
                                "raw": raw_line[:200].decode("utf-8", "replace")})
                continue
            rec, reason = validate_record(obj, len(records), text_field, label_field)
            if rec is None:
                rejects.append({**where, "reason": reason})
            else:
                records.append(rec)
    return records, rejects
