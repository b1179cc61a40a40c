"""What a stage reads, found rather than declared: its code (the import closure of `stages/<name>.py`, imports
inside functions included), the files it opens, the params it touches. `tests/contract/test_dvc_contract.py`
holds these against `dvc.yaml`, so a stage cannot start reading something DVC does not see.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from qlife.params import CircuitBackend, QuboSampler

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("qlife", "stages")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    """Every project module a file imports, anywhere in it (lazy imports inside functions included)."""
    names: set[str] = set()
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join([*base, mod]) if mod else ".".join(base)
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)  # `from qlife import tracking`
    return names


# DVC steps that are not lifecycle stages: their entry module
ENTRIES = {"hyperparameters": "qlife/hyperparameters.py"}


def code_closure(stage: str, skip: frozenset[str] = frozenset()) -> set[str]:
    """Repo-relative paths of every project module `stages/<stage>.py` (or a step's entry) can execute; the
    modules in `skip` (repo-relative) and what only they import are left out."""
    todo, seen = [ROOT / ENTRIES.get(stage, f"stages/{stage}.py")], set()
    while todo:
        path = todo.pop()
        if path in seen or str(path.relative_to(ROOT)) in skip:
            continue
        seen.add(path)
        for name in _imports(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
                f = _module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    todo.append(f)
    return {str(p.relative_to(ROOT)) for p in seen}


# ----------------------------------------------------------------------------- dvc.yaml

_VAR = re.compile(r"\$\{([^}]+)\}")


def _lookup(params: dict, dotted: str) -> Any:
    node = params
    for key in dotted.split("."):
        node = node[key]
    return node


def dvc_stages(dvc_yaml: dict, params: dict) -> dict[str, dict[str, list[str]]]:
    """Per stage: deps, outs (metrics and plots included) and params, with ${...} interpolated from params."""
    def interp(s: str) -> str:
        return _VAR.sub(lambda m: str(_lookup(params, m.group(1))), s)

    def names(items: list) -> list[str]:
        return [interp(next(iter(i)) if isinstance(i, dict) else i) for i in items or []]

    out = {}
    for name, st in dvc_yaml["stages"].items():
        outs = names(st.get("outs")) + names(st.get("metrics")) + names(st.get("plots"))
        declared = []
        for p in st.get("params") or []:
            declared += list(p.values())[0] if isinstance(p, dict) else [p]
        out[name] = {"deps": names(st.get("deps")), "outs": outs, "params": declared}
    return out


def covered(path: str, declared: list[str]) -> bool:
    """A path is covered by a declared path equal to it or a folder above it."""
    p = Path(path)
    return any(p == Path(d) or Path(d) in p.parents for d in declared)


def param_covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def missing(stage: str, reads: dict[str, set[str]], declared: dict[str, list[str]]) -> list[str]:
    """What the stage read that dvc.yaml does not declare: code, files, params."""
    gaps = [f"code {c}" for c in sorted(reads.get("code", ())) if not covered(c, declared["deps"])]
    gaps += [f"file {f}" for f in sorted(reads.get("files", ()))
             if not covered(f, declared["deps"]) and not covered(f, declared["outs"])]
    gaps += [f"param {k}" for k in sorted(reads.get("params", ())) if not param_covered(k, declared["params"])]
    return gaps


# ----------------------------------------------------------------------------- recording a run

# the members of the CircuitBackend / QuboSampler unions (Annotated[Union[...], ...])
BACKEND_SPECS = tuple(c for u in (CircuitBackend, QuboSampler) for c in get_args(get_args(u)[0]))


class ParamsRecorder:
    """Wraps a frozen params model; every leaf read is recorded as its dotted key."""

    def __init__(self, model: BaseModel, log: set[str], prefix: str = ""):
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_log", log)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        model, log, prefix = self._model, self._log, self._prefix
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel) and not isinstance(value, BACKEND_SPECS):
            return ParamsRecorder(value, log, key + ".")
        # a backend spec is handed to the backend layer whole: a read of the whole key
        if callable(value):  # model_dump() and friends read the whole section
            log.add(prefix[:-1] or "(all)")
            return value
        log.add(key)
        return value

    def __setattr__(self, name, value):
        raise AttributeError("params are frozen")


@contextmanager
def recording_opens(root: Path) -> Iterator[dict[str, set[str]]]:
    """Files under `root` opened for reading while the block runs (audit hook: builtins.open, os.open)."""
    log: dict[str, set[str]] = {"read": set(), "written": set()}
    state = {"on": True}
    root = root.resolve()

    def hook(event: str, args: tuple) -> None:
        if not state["on"] or event != "open" or not isinstance(args[0], (str, Path)):
            return
        path, mode, flags = args[0], args[1], args[2]
        try:
            p = Path(path).resolve()
            rel = p.relative_to(root)
        except (ValueError, OSError):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & 3)
        if not writing and not p.exists():
            # not a read of a file under root: e.g. shutil.rmtree's os.open(name, dir_fd=...) of a temporary
            # folder's entries, whose relative names the hook would otherwise resolve against the cwd
            return
        log["written" if writing else "read"].add(str(rel))

    _HOOK_STATE.append(state)
    if not _HOOK_INSTALLED:
        sys.addaudithook(_dispatch)
        _HOOK_INSTALLED.append(True)
    _HOOKS.append(hook)
    try:
        yield log
    finally:
        state["on"] = False
        _HOOKS.remove(hook)


_HOOKS: list = []
_HOOK_STATE: list = []
_HOOK_INSTALLED: list = []


def _dispatch(event: str, args: tuple) -> None:  # audit hooks cannot be removed: one dispatcher for all
    if event == "open":
        for h in list(_HOOKS):
            h(event, args)
