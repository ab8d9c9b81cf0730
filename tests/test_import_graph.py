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


def test_no_import_cycles_between_modules():
    found = [_describe(group, cycle) for group, cycle in cycles(graph(lambda module: module)).items()]
    assert not found, "modules that import each other:\n  " + "\n  ".join(found)


def _reach(start: str) -> dict[str, Import]:
    """Every anime_pipeline module `start` imports, directly or not, with the import that reached it."""
    reached: dict[str, Import] = {}
    queue = deque([start])
    while queue:
        for edge in imports_by_module().get(queue.popleft(), ()):
            if edge.target in modules() and edge.target not in reached:
                reached[edge.target] = edge
                queue.append(edge.target)
    return reached


def _chain(reached: dict[str, Import], start: str, end: Import) -> str:
    chain = [end]
    while chain[-1].source != start:
        chain.append(reached[chain[-1].source])
    return "; ".join(str(edge) for edge in reversed(chain))


def _is_dagster(target: str) -> bool:
    return target == "dagster" or target.startswith("dagster_") or _short(subpackage(target)) in DAGSTER_LAYER


def test_the_domain_never_imports_dagster_or_the_dagster_layer():
    problems = []
    for name in (m for m in modules() if _short(subpackage(m)) in DOMAIN):
        reached = _reach(name)
        for edge in (edge for module in (name, *reached) for edge in imports_by_module().get(module, ())):
            if _is_dagster(edge.target):
                problems.append(f"{name}: {_chain(reached, name, edge)}")
                break
    assert not problems, "domain modules that pull in Dagster:\n  " + "\n  ".join(problems)


def test_the_reader_sees_lazy_relative_and_submodule_imports():
    """Guards the reader itself, on a module written for it."""
    source = """
import numpy as np
from anime_pipeline.metrics import weightfree, suite
from . import models
from .scores import Score
from anime_pipeline.imaging import Box

def lazy():
    import dagster.components
    from anime_pipeline.render.previz import PrevizRenderer
"""
    found = file_imports(source, "anime_pipeline.metrics.example", "anime_pipeline.metrics", "example.py")
    assert [(edge.target, edge.where) for edge in found] == [
        ("numpy", "example.py:2"),
        ("anime_pipeline.metrics.weightfree", "example.py:3"), ("anime_pipeline.metrics.suite", "example.py:3"),
        ("anime_pipeline.metrics.models", "example.py:4"), ("anime_pipeline.metrics.scores", "example.py:5"),
        ("anime_pipeline.imaging", "example.py:6"),
        ("dagster", "example.py:9"), ("anime_pipeline.render.previz", "example.py:10")]
    assert _is_dagster("dagster") and _is_dagster("dagster_postgres") and _is_dagster("anime_pipeline.assets.shots")
    assert not _is_dagster("anime_pipeline.render.previz")
    ab, ba, bc, cb, cd = (Import(a, b, f"{a}.py:1") for a, b in ("ab", "ba", "bc", "cb", "cd"))
    assert cycles({"a": {"b": ab}, "b": {"a": ba, "c": bc}, "c": {"b": cb, "d": cd}}) == {
        frozenset("abc"): [ab, ba]}
