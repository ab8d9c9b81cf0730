"""The package's import graph, read statically from the source (nothing is imported): no cycles
between subpackages or between modules, and the domain never pulls in Dagster.

Every import statement counts, also those inside functions: a lazy import hides a dependency
from import time, not from the design. A node of the package graph is a subpackage
(`anime_pipeline.render`) or a root module (`anime_pipeline.imaging`).
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "anime_pipeline"

# Plain Python that knows nothing of Dagster. The Dagster layer (assets, resources, sensors,
# definitions, runner, partitions, status, cli) is the only place allowed to import it.
DOMAIN = ("config", "render", "metrics", "media", "review", "planning", "training", "publish", "services",
          "production", "imaging", "storage", "paths", "prompts", "manifest", "drawings")
DAGSTER_LAYER = ("assets", "resources", "sensors", "definitions", "runner", "status", "cli", "dagster_compat")

@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted (or an outside top-level name, e.g. "dagster")
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str:
    """The module a dotted name lives in: `a.b.C` → `a.b` when `a.b.C` is no module."""
    while name not in modules() and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")[:len(package.split(".")) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    # `from pkg import sub` depends on pkg.sub itself, not (only) on pkg's __init__
    submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules()]
    return submodules or [module]


def file_imports(source: str, name: str, package: str, where: str) -> list[Import]:
    """Every import in one module's source, at any depth (functions, conditionals, TYPE_CHECKING)."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        for target in _targets(node, package):
            inside = target == "anime_pipeline" or target.startswith("anime_pipeline.")
            found.append(Import(name, _resolve(target) if inside else target.split(".")[0], f"{where}:{node.lineno}"))
    return found


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found += file_imports(path.read_text(), name, package, str(path.relative_to(PACKAGE.parent)))
    return tuple(found)


@cache
def imports_by_module() -> dict[str, tuple[Import, ...]]:
    by_module: dict[str, list[Import]] = {}
    for edge in imports():
        by_module.setdefault(edge.source, []).append(edge)
    return {name: tuple(edges) for name, edges in by_module.items()}


def subpackage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def graph(level) -> dict[str, dict[str, Import]]:
    """node → {imported node: one import that makes the edge}, inside anime_pipeline only."""
    edges: dict[str, dict[str, Import]] = {}
    for edge in imports():
        if edge.target in modules() and level(edge.source) != level(edge.target):
            edges.setdefault(level(edge.source), {}).setdefault(level(edge.target), edge)
    return edges


def _reachable(edges: dict[str, dict[str, Import]], start: str) -> dict[str, tuple[str, Import]]:
    """node → (the node it was first reached from, that import), breadth first: shortest paths."""
    parents: dict[str, tuple[str, Import]] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target, edge in sorted(edges.get(node, {}).items()):
            if target not in parents:
                parents[target] = node, edge
                queue.append(target)
    return parents


def cycles(edges: dict[str, dict[str, Import]]) -> dict[frozenset[str], list[Import]]:
    """Each group of nodes that import each other (a strongly connected component), with a
    shortest cycle through its first node as an example."""
    reach = {node: _reachable(edges, node) for node in edges}
    found: dict[frozenset[str], list[Import]] = {}
    for start in sorted(edges):
        if start not in reach[start] or any(start in group for group in found):
            continue
        group = frozenset(node for node in reach[start] if start in reach.get(node, {}))
        path, node = [], start
        while not path or node != start:
            node, edge = reach[start][node]
            path.append(edge)
        found[group] = path[::-1]
    return found


def _short(name: str) -> str:
    return name.removeprefix("anime_pipeline.")


def _describe(group: frozenset[str], cycle: list[Import]) -> str:
    return f"{', '.join(sorted(map(_short, group)))}, e.g.\n    " + "\n    ".join(str(edge) for edge in cycle)


def package_cycles() -> dict[frozenset[str], list[Import]]:
    return {frozenset(map(_short, group)): cycle for group, cycle in cycles(graph(subpackage)).items()}


def test_the_listed_packages_exist():
    names = {_short(subpackage(name)) for name in modules()}
    assert not set(DOMAIN + DAGSTER_LAYER) - names, "a listed package was renamed or removed: update the lists"


def test_no_import_cycles_between_subpackages():
    found = [_describe(nodes, cycle) for nodes, cycle in package_cycles().items()]
    assert not found, "subpackages that import each other:\n  " + "\n  ".join(found)
