"""The pipeline's folder tree is its import graph: stage packages import only the stages below
them, and no module imports itself round a circle — imports inside functions included, since a
late import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

#: Lowest first. A stage imports only stages before it (settings and its helpers sit between the
#: model registry, which validates embedder names, and the store, which the settings choose). The
#: errors' base is below everything that raises one; the front ends' contract is over the answer.
LAYERS = ["errors", "text", "net", "ingest", "embed", "dsn", "inputs", "settings", "store", "build", "retrieve",
          "answer", "contract", "service", "eval", "bench", "app"]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (ROOT / "rag").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The rag modules ``name`` imports anywhere in its code; ``from pkg import mod`` is ``pkg.mod``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_stages_import_only_the_stages_below_them() -> None:
    wrong = sorted(f"{a} imports {b}" for a, targets in _graph().items() for b in targets
                   if _stage(a) and _stage(b) and _stage(a) != _stage(b)
                   and LAYERS.index(_stage(b)) > LAYERS.index(_stage(a)))
    assert wrong == []
    assert {_stage(m) for m in _graph()} - {None} == set(LAYERS)  # a new stage is placed, not forgotten


def test_no_module_imports_itself_round_a_circle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []
