"""Shared fixtures: the sample show (with overrides), isolated storage and Dagster homes, and produced worlds.

Rendering is the slow part of the suite, so the sample show's characters are rendered once per
test session (`characters_world`) and its whole episode once (`demo_world`); a test that needs
them gets its own copy (`characters`, `produced`), so no test sees another's changes and the
order of tests never matters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.worlds import SAMPLE, World, empty_store, write_show


@pytest.fixture
def sample_text() -> str:
    return SAMPLE.read_text()


@pytest.fixture
def world(tmp_path: Path) -> World:
    """An empty world with the sample show."""
    fresh = World(tmp_path / "world")
    write_show(fresh.configs)
    return fresh


@pytest.fixture
def show_factory(tmp_path: Path) -> Callable[..., World]:
    """`make(overrides, slug=None, into=None)`: a world whose project holds the sample show with overrides
    (call again with `into=` the same world and another slug for a second show)."""
    def make(overrides: dict | None = None, slug: str | None = None, into: World | None = None) -> World:
        target = into or World(tmp_path / f"world-{len(list(tmp_path.glob('world-*')))}")
        write_show(target.configs, overrides, slug)
        return target
    return make


@pytest.fixture
def configs_dir(world: World) -> Path:
    return world.configs


@pytest.fixture
def settings(world: World):
    return world.settings()


@pytest.fixture
def instance(world: World):
    with world.instance() as inst:
        yield inst


def _produce(root: Path, characters_only: bool) -> World:
    made = World(root)
    write_show(made.configs)
    with made.instance() as instance:
        runner = made.run(instance, characters_only=characters_only)
        assert runner.ok, "\n".join(runner.lines)
    return made


@pytest.fixture(scope="session")
def characters_world(tmp_path_factory) -> World:
    """The sample show's characters (and Phase 1) produced once per session: copy it, never change it."""
    return _produce(tmp_path_factory.mktemp("characters"), characters_only=True)


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory, characters_world: World) -> World:
    """The whole sample episode produced once per session (what `anime-pipeline demo` does)."""
    made = characters_world.copy_to(tmp_path_factory.mktemp("demo"))
    with made.instance() as instance:
        runner = made.run(instance)
        assert runner.ok, "\n".join(runner.lines)
    return made


@pytest.fixture
def characters(tmp_path: Path, characters_world: World) -> World:
    """This test's own copy of the produced characters."""
    return characters_world.copy_to(tmp_path / "characters")


@pytest.fixture
def produced(tmp_path: Path, demo_world: World) -> World:
    """This test's own copy of the produced sample episode."""
    return demo_world.copy_to(tmp_path / "produced")


@pytest.fixture
def weight_free(tmp_path: Path):
    """The metric suite as a machine without model weights runs it."""
    from anime_pipeline.metrics.suite import MetricSuite

    return MetricSuite(empty_store(tmp_path))
