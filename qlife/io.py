"""Atomic writes, JSONL helpers and record validation.

Every output goes to a temporary sibling first and is renamed into place, so a stage killed half-way
leaves the previous output intact. Records are `{"id": str, "text": str, "label": int}`; a record that
does not fit is returned as a reject with its reason instead of stopping the stage.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class DataError(ValueError):
    """Input that cannot be used at all (missing, empty, no valid record)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def clean_temporaries(path: str | Path) -> list[str]:
    """Undo what a killed `atomic_path` left next to `path`: a directory swap cut between its two renames is
    rolled back (`.name.old` back to `name`), stray temporaries (`.name.*`) are removed. Returns what it did."""
    path = Path(path)
    done = []
    if not path.parent.is_dir():
        return done
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():
        old.rename(path)
        done.append(f"restored {path} from {old.name}")
    for stray in path.parent.glob(f".{path.name}.*"):
        shutil.rmtree(stray) if stray.is_dir() and not stray.is_symlink() else stray.unlink(missing_ok=True)
        done.append(f"removed {stray}")
    return done


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Leftovers of an earlier, killed write of the same path are cleaned first (`clean_temporaries`); the result
    gets the normal mode for new files (0666 / 0777 less the umask), not mkstemp's private 0600 / 0700."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_temporaries(path)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())
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
    """JSON a stage wrote; a missing or corrupt file is a DataError naming it and the way out."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the stage that writes it (`dvc repro`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}): restore it with `dvc checkout {path}` or rerun "
                        "the stage that writes it (`dvc repro --force <stage>`)") from None


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
    """No value at all: absent/None, NaN (an empty CSV cell), pandas NA, or a blank string."""
    if value is None or type(value).__name__ == "NAType":
        return True
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and not value.strip()


_INTEGRAL = re.compile(r"[+-]?\d+(?:\.0*)?")


def _label_value(value: Any) -> int | str | None:
    """A raw label as an int (ints, integral floats, numpy integers, "3" or "3.0" as a CSV cell gives them)
    or a stripped name; None when it is neither (bool, 1.5, NaN, a list, a blank string)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return int(f) if f.is_integer() else None
    if isinstance(value, str) and value.strip():
        s = value.strip()
        return int(s.split(".")[0]) if _INTEGRAL.fullmatch(s) else s
    return None


def _label_id(label: Any, value: int | str, labels: dict[str, int]) -> int | None:
    """The class id of a label, given the classes' names -> ids. A name maps by name; an int maps by name
    when the names are all numbers (learned from numeric labels: "0", "2", ...), else it is an id itself."""
    if isinstance(label, str) and label.strip() in labels:
        return labels[label.strip()]
    if isinstance(value, str):
        return labels.get(value)
    if str(value) in labels or all(_INTEGRAL.fullmatch(n) for n in labels):
        return labels.get(str(value))
    return value if value in set(labels.values()) else None


def validate_record(raw: Any, index: int, text_field: str = "text", label_field: str = "label",
                    labels: dict[str, int] | None = None, require_label: bool = True
                    ) -> tuple[dict | None, str | None]:
    """Return (record, None) or (None, reason). With `labels` (class name -> id; non-empty) every label maps
    to a class id or is an unknown label; without, int labels are ids as they are and names are bad labels.

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
    record = {"id": f"rec-{index:07d}" if _missing(rid) else str(rid), "text": text.strip()}
    label = raw.get(label_field)
    if not require_label and _missing(label):
        return record, None
    value = _label_value(label)
    lid, reason = None, None
    if value is None or (isinstance(value, int) and value < 0):
        reason = f"bad label in field '{label_field}': {label!r}"
    elif labels:
        lid = _label_id(label, value, labels)
        if lid is None:
            known = ", ".join(labels) if len(labels) <= 20 else f"{len(labels)} labels"
            reason = f"bad label in field '{label_field}': {label!r} (unknown label, not one of: {known})"
    elif isinstance(value, int):
        lid = value
    else:
        reason = f"bad label in field '{label_field}': {label!r}"
    if reason is not None:
        return (None, reason) if require_label else (record, reason)
    return {**record, "label": lid}, None


def read_jsonl_located(path: str | Path) -> tuple[list[tuple[dict, Any]], list[dict]]:
    """Raw JSONL rows of user data with where each comes from (`file`, `line`), plus a reject for every line
    that is not UTF-8 or not JSON (with the start of the raw line)."""
    located, rejects = [], []
    with Path(path).open("rb") as f:
        for i, raw_line in enumerate(f):
            if not raw_line.strip():
                continue
            where = {"file": str(path), "line": i + 1}
            try:
                located.append((where, json.loads(raw_line.decode("utf-8").lstrip("\ufeff"))))
            except UnicodeDecodeError:
                rejects.append({**where, "reason": "undecodable bytes (not UTF-8)"})
            except (ValueError, RecursionError) as err:
                msg = err.msg if isinstance(err, json.JSONDecodeError) else "nested too deeply"
                rejects.append({**where, "reason": f"invalid JSON: {msg}",
                                "raw": raw_line[:200].decode("utf-8", "replace")})
    return located, rejects


def read_records_jsonl(path: str | Path, text_field: str = "text", label_field: str = "label",
                       labels: dict[str, int] | None = None) -> tuple[list[dict], list[dict]]:
    """Lenient JSONL reader for user data: returns (records, rejects), each reject with its file and line;
    undecodable or invalid lines are rejects. `labels` (name -> id) maps labels as in `validate_record`."""
    located, rejects = read_jsonl_located(path)
    records = []
    for where, obj in located:
        rec, reason = validate_record(obj, len(records), text_field, label_field, labels)
        if rec is None:
            rejects.append({**where, "reason": reason})
        else:
            records.append(rec)
    return records, rejects
