"""Atomic writes, outputs published as one set, JSONL helpers and record validation.

Every output goes to a temporary sibling first and is renamed into place, so a stage killed half-way
leaves the previous output intact. Inside `publish_together(name)` (every stage run: `qlife.stage.execute`)
the renames wait until the block ends and are then done together under a journal
(`.qlife/publishing/<name>.json`, written before the first rename): a kill before the journal leaves the
whole old set, a kill after it is completed by the next reader or writer (`settle`), so no reader sees half
of two runs. Records are `{"id": str, "text": str, "label": int}`; a record that does not fit is returned
as a reject with its reason instead of stopping the stage.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DataError(ValueError):
    """Input that cannot be used at all (missing, empty, no valid record)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _rmtree_or_unlink(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def clean_temporaries(path: str | Path) -> list[str]:
    """Undo what a killed `atomic_path` left next to `path`: a directory swap cut between its two renames is
    rolled back (`.name.old` back to `name`), stray temporaries (`.name.*`) are removed. Returns what it did.
    A publish cut after its journal is completed first (`settle`): its temporaries are the new set."""
    path = Path(path)
    done: list[str] = []
    if not path.parent.is_dir():
        return done
    settle()
    old = path.with_name(f".{path.name}.old")
    if old.exists() and not path.exists():
        old.rename(path)
        done.append(f"restored {path} from {old.name}")
    pub = _BLOCKS.open[0] if _BLOCKS.open else None
    mine = {t for t, _, _ in pub.entries} | {t for _, t in pub.open_dirs} if pub else set()
    for stray in path.parent.glob(f".{path.name}.*"):
        if stray.absolute() in mine:  # another output of this publish whose name starts alike
            continue
        _rmtree_or_unlink(stray)
        done.append(f"removed {stray}")
    return done


# ----------------------------------------------------------------------------- one set of outputs

PUBLISHING = Path(".qlife") / "publishing"  # journals of publishes in progress, under the project folder (cwd)
SETTLE_TIMEOUT_S = 120.0  # how long a reader waits for a live publish (renames only: milliseconds) to finish


def _fault(event: str) -> None:
    """A point where a kill can land while outputs are written or published. With QLIFE_WRITE_EVENTS set each
    event is appended to that file; with QLIFE_KILL_AT_WRITE=N the process SIGKILLs itself at the N-th event
    (the kill test's way of landing at every moment of a stage's writes; both unset in normal runs)."""
    log, kill_at = os.environ.get("QLIFE_WRITE_EVENTS"), os.environ.get("QLIFE_KILL_AT_WRITE")
    if not (log or kill_at):
        return
    _fault.count = getattr(_fault, "count", 0) + 1
    if log:
        with open(log, "a") as f:
            f.write(f"{_fault.count}\t{event}\n")
    if kill_at and _fault.count == int(kill_at):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Publish:
    """The writes of one `publish_together` block: (temporary, final path, is_dir) in order; a temporary of
    None removes the final path."""

    name: str
    entries: list[tuple[Path | None, Path, bool]] = field(default_factory=list)
    committed: bool = False  # the journal is written: the staged set is the outputs now, never discarded
    open_dirs: list[tuple[Path, Path]] = field(default_factory=list)  # (final, temporary) of staged folders

    def staged_dir(self, path: Path) -> Path | None:
        """Where `path` is now, when it lies inside a folder this block staged (written or being written)."""
        path = path.absolute()
        for final, tmp in reversed(self.open_dirs):
            if path == final or final in path.parents:
                return tmp / path.relative_to(final)
        return None

    def in_staging(self, path: Path) -> bool:
        """`path` lies inside a folder's temporary copy: written there directly, published with the folder."""
        path = path.absolute()
        return any(tmp in path.parents for _, tmp in self.open_dirs)

    def add(self, tmp: Path | None, final: Path, is_dir: bool) -> None:
        final = final.absolute()
        for i, (old_tmp, f, _) in enumerate(self.entries):
            if f == final:  # written twice in one block: the last write wins
                if old_tmp is not None and (old_tmp.exists() or old_tmp.is_symlink()):
                    _rmtree_or_unlink(old_tmp)
                del self.entries[i]
                break
        self.entries.append((None if tmp is None else tmp.absolute(), final, is_dir))
        if is_dir and tmp is not None:
            self.open_dirs.append((final, tmp.absolute()))

    def discard(self) -> None:
        for tmp, _, _ in self.entries:
            if tmp is not None and (tmp.exists() or tmp.is_symlink()):
                _rmtree_or_unlink(tmp)

    def commit(self) -> None:
        if not self.entries:
            return
        from filelock import FileLock

        PUBLISHING.mkdir(parents=True, exist_ok=True)
        journal = PUBLISHING / f"{self.name}.json"
        with FileLock(str(journal.with_suffix(".lock"))):
            doc = {"name": self.name, "pid": os.getpid(),
                   "entries": [[None if t is None else str(t), str(f), d] for t, f, d in self.entries]}
            fd, tmp = tempfile.mkstemp(prefix=f".{journal.name}.", dir=PUBLISHING)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, journal)  # the commit point: from here on the new set is what readers get
            self.committed = True
            _fault(f"journal {self.name}")
            _roll_forward(doc["entries"])
            journal.unlink()


class _Blocks(threading.local):
    """The open publish_together block of each thread (the Prefect flow runs stages in threads)."""

    def __init__(self) -> None:
        self.open: list[_Publish] = []


_BLOCKS = _Blocks()


def _roll_forward(entries: list) -> None:
    """Move every staged temporary onto its final path, in order; idempotent, so a publish cut anywhere is
    completed by running it again (a temporary already moved is skipped)."""
    for tmp, final, is_dir in entries:
        final = Path(final)
        old = final.with_name(f".{final.name}.old")
        if tmp is None:
            if final.exists() or final.is_symlink():
                _rmtree_or_unlink(final)
        elif Path(tmp).exists():
            if is_dir:
                if final.exists():
                    if old.exists():
                        shutil.rmtree(old)
                    final.rename(old)
                    _fault(f"swap-out {final}")
                final.parent.mkdir(parents=True, exist_ok=True)
                Path(tmp).rename(final)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            _fault(f"publish {final}")
        if is_dir and old.exists():
            shutil.rmtree(old)


def settle(timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Complete every publish that a killed process left half done (its journal is there and nobody holds its
    lock); wait for one in progress. Readers and writers call this first; a publish that cannot be completed
    or that does not finish in time is a DataError naming the step and the way out."""
    if not PUBLISHING.is_dir():
        return
    from filelock import FileLock, Timeout

    for journal in sorted(PUBLISHING.glob("*.json")):
        name = journal.stem
        if _BLOCKS.open and _BLOCKS.open[0].name == name:
            continue
        try:
            with FileLock(str(journal.with_suffix(".lock")), timeout=timeout_s):
                if not journal.exists():
                    continue  # its publisher finished meanwhile
                entries = json.loads(journal.read_text())["entries"]
                _roll_forward(entries)
                journal.unlink()
        except Timeout:
            raise DataError(f"the outputs of {name} are being published by another process for over "
                            f"{timeout_s:.0f} s ({journal}): wait for it, or stop it and rerun") from None
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"the outputs of {name} were cut while being published and cannot be completed "
                            f"({err}): rerun it (`dvc repro --force {name}`), which rewrites the whole set; "
                            f"then remove {journal}") from None


@contextmanager
def publish_together(name: str) -> Iterator[None]:
    """Every `atomic_path` write (write_json, write_jsonl, save_npz, folders...) and `discard` inside the block
    is staged and published as one set when the block ends; an exception discards the staged set. Inside, a
    path in a folder the block already staged reads and writes the staged copy (`current`). A block inside
    another joins it."""
    if _BLOCKS.open:
        yield
        return
    settle()
    pub = _Publish(name)
    _BLOCKS.open.append(pub)
    try:
        yield
    except BaseException:
        _BLOCKS.open.clear()
        pub.discard()
        raise
    _BLOCKS.open.clear()
    with _stop_signals_held():  # a stop signal waits for the renames (milliseconds)
        try:
            pub.commit()
        except BaseException:
            if not pub.committed:  # after the journal, an error leaves it for `settle` to complete
                pub.discard()
            raise


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGTERM / SIGINT / SIGHUP arriving inside the block are raised again when it ends, to whatever handlers
    were installed (MLflow's run closing, the default exit). Python runs handlers in the main thread only: a
    block in another thread (a Prefect worker) is not interrupted by them anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    stops = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]
    previous = {s: signal.signal(s, lambda sig, frame: got.append(sig)) for s in stops}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for sig in got[:1]:
            signal.raise_signal(sig)


def current(path: str | Path) -> Path:
    """Where to read `path` now: inside a publish_together block, the staged copy of a file or folder written
    in it (not yet published); else `path` itself, after completing any cut publish (`settle`)."""
    path = Path(path)
    if _BLOCKS.open:
        pub = _BLOCKS.open[0]
        for tmp, final, _ in reversed(pub.entries):
            if final == path.absolute():
                return path if tmp is None else tmp
        inside = pub.staged_dir(path)
        return inside if inside is not None else path
    settle()
    return path


def discard(path: str | Path) -> None:
    """Remove an output (a stale file a stage no longer writes): at publish time inside a block, now outside."""
    path = Path(path)
    if _BLOCKS.open and _BLOCKS.open[0].staged_dir(path) is None and not _BLOCKS.open[0].in_staging(path):
        _BLOCKS.open[0].add(None, path, False)
    elif current(path).exists():
        _rmtree_or_unlink(current(path))


@contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds (inside
    `publish_together`: when that block ends, with the rest of the set).

    Leftovers of an earlier, killed write of the same path are cleaned first (`clean_temporaries`); the result
    gets the normal mode for new files (0666 / 0777 less the umask), not mkstemp's private 0600 / 0700."""
    path = Path(path)
    pub = _BLOCKS.open[0] if _BLOCKS.open else None
    if pub is not None and pub.in_staging(path):
        pub = None  # inside a folder's temporary copy: written there, published with the folder
    elif pub is not None and pub.staged_dir(path) is not None:
        path = pub.staged_dir(path)  # inside a folder staged in this block: write there, it publishes with it
        pub = None
    path.parent.mkdir(parents=True, exist_ok=True)
    if pub is None or path.absolute() not in {f for _, f, _ in pub.entries}:
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
        if pub is not None and is_dir:
            pub.open_dirs.append((path.absolute(), tmp.absolute()))
        yield tmp
        _fault(f"staged {path}")
        if pub is not None:
            if is_dir:
                pub.open_dirs.remove((path.absolute(), tmp.absolute()))
            pub.add(tmp, path, is_dir)
        elif is_dir:
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if path.exists():
                path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if pub is not None and is_dir and (path.absolute(), tmp.absolute()) in pub.open_dirs:
            pub.open_dirs.remove((path.absolute(), tmp.absolute()))
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
    step = path.stem if path.parent.name in ("metrics", "reports") else "<the step that writes it>"
    try:
        return json.loads(current(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path} not found: run the stage that writes it (`dvc repro`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}): rerun the step that writes it "
                        f"(`dvc repro --force {step}`)") from None


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
    with current(path).open() as f:
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
