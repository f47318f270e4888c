"""No import cycles between app's packages: each can be read and changed knowing only the
ones below it.

Every import counts, function-local ones too (moving an import into a function hides a
cycle, it does not remove it). The units are app's subpackages (app.review, app.learning,
...) and its top-level modules (app.cli, app.db, ...); app/__init__.py is left out, being the
composition root whose factory imports every blueprint.
"""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"

# Cycles another part of issue 9 removes, named by the import that should go. Once it has
# gone, test_known_cycles_still_exist fails: delete the entry then.
KNOWN: dict[tuple[str, str], str] = {}


def _unit(module: str) -> str | None:
    """app.review.service -> app.review; app.cli -> app.cli; app itself -> None."""
    parts = module.split(".")
    if parts[0] != "app" or len(parts) == 1:
        return None
    if (APP / parts[1]).is_dir():
        return f"app.{parts[1]}"
    return f"app.{parts[1]}" if (APP / f"{parts[1]}.py").exists() else None


def import_graph() -> dict[str, dict[str, list[str]]]:
    """{importing unit: {imported unit: ["app/x/y.py:12 imports app.z", ...]}}."""
    graph: dict[str, dict[str, list[str]]] = {}
    for path in sorted(APP.rglob("*.py")):
        module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        source = _unit(module.removesuffix(".__init__"))
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
                # `from app import learning` imports the package app.learning.
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            where = f"{path.relative_to(APP.parent)}:{node.lineno} imports {names[0]}"
            for target in {_unit(name) for name in names} - {None, source}:
                graph.setdefault(source, {}).setdefault(target, []).append(where)
    return graph


def cycles(graph: dict[str, dict]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_known(graph):
    return {
        a: {b: why for b, why in targets.items() if (a, b) not in KNOWN}
        for a, targets in graph.items()
    }


def test_no_import_cycles_between_packages():
    graph = _without_known(import_graph())
    problems = []
    for component in cycles(graph):
        problems.append(" <-> ".join(component))
        for a in component:
            for b in component:
                problems += [f"    {where}" for where in graph.get(a, {}).get(b, [])]
    assert not problems, "import cycles between app's packages:\n" + "\n".join(problems)


def test_known_cycles_still_exist():
    graph = import_graph()
    for (a, b), why in KNOWN.items():
        assert b in graph.get(a, {}) and any(a in c and b in c for c in cycles(graph)), (
            f"{a} -> {b} ({why}) is no longer part of a cycle: remove it from KNOWN"
        )


def test_the_graph_sees_function_local_imports():
    graph = import_graph()
    # app.cli imports app.demo.run inside the `demo` command only.
    assert "app.demo" in graph["app.cli"]
