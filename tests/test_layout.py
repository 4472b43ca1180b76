"""The package's shape: no import cycle (the import-linter contracts of pyproject.toml, run by
scripts/test.sh, keep the stages' layers pointing down)."""

from __future__ import annotations

import sys

from conftest import REPO


def _import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


def test_the_package_has_no_import_cycle():
    import grimp

    sys.path.insert(0, str(REPO))
    try:
        graph = grimp.build_graph("airflow_kedro_mlflow", cache_dir=None)
    finally:
        sys.path.remove(str(REPO))
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 50  # the whole package was read
    assert _import_cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
