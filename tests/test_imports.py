"""No import cycles anywhere in `qlife/` (DESIGN.md §2), imports inside functions included.

The graph is read from the source, not from `sys.modules`: a lazy import inside a function is an edge like any
other, so a cycle cannot hide behind one. Edges: `import a.b.c` and `from a.b.c import x` import `a.b.c` and the
packages above it (their `__init__` runs first); `from a.b import c` where `c` is a submodule imports `a.b.c`;
relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "qlife"


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name -> file of every module of `package` (a package is its `__init__.py`)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """Modules of `known` that module `name` imports anywhere in its file -> the first line that does."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]  # `from qlife import tracking`
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
                mod = ".".join(parts[:i])
                if mod in known and mod != name:
                    out.setdefault(mod, node.lineno)
    return out


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, dict[str, int]]:
    known = modules(root, package)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(component: list[str], graph: dict[str, dict[str, int]], known: dict[str, Path],
             root: Path = ROOT) -> str:
    edges = [f"  {a} -> {b} ({known[a].relative_to(root)}:{line})"
             for a in component for b, line in sorted(graph[a].items()) if b in component]
    return " <-> ".join(component) + "\n" + "\n".join(edges)


def test_no_module_of_qlife_imports_one_that_imports_it_back():
    known = modules()
    graph = import_graph()
    found = cycles(graph)
    # the graph is read: qlife.quantum.qubo (QUBO models) stands on the errors module alone
    assert {m for m in graph["qlife.quantum.qubo"] if m.startswith("qlife.quantum.")} == {"qlife.quantum.errors"}
    assert not found, "import cycles in qlife/ (imports inside functions included):\n" + "\n".join(
        describe(c, graph, known) for c in found)


def test_the_graph_sees_lazy_submodule_and_relative_imports(tmp_path):
    """A cycle held together by an import inside a function, by `from pkg import submodule` or by a relative
    import is found, and the message names the lines."""
    pkg = tmp_path / "demo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from demo.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n    return g\n")
    (pkg / "c.py").write_text("import os\n\n\ndef g():\n    import demo.a\n")
    (pkg / "d.py").write_text("from demo import c\n")  # imports into the cycle, not part of it
    graph = import_graph(tmp_path, "demo")
    assert graph["demo.a"] == {"demo": 1, "demo.sub": 1, "demo.sub.b": 1}
    assert graph["demo.sub.b"] == {"demo": 2, "demo.c": 2}
    assert cycles(graph) == [["demo.a", "demo.c", "demo.sub.b"]]
    text = describe(cycles(graph)[0], graph, modules(tmp_path, "demo"), tmp_path)
    assert "demo.c -> demo.a" in text and "demo/c.py:5" in text
