"""Shared fixtures: the sample show (with overrides), isolated storage and Dagster homes, and produced worlds.

Rendering is the slow part of the suite, so the sample show's characters are rendered once per
test run (`characters_world`, shared by the two xdist workers) and its whole episode once
(`demo_world`); a test that needs
them gets its own copy (`characters`, `produced`), so no test sees another's changes and the
order of tests never matters.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

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


def _once_per_run(tmp_path_factory, name: str, build: Callable[[Path], World]) -> World:
    """A world built once per test run, however many xdist workers share it: the first to ask builds it
    under a lock in the run's own folder, the others wait for it and reuse it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers (each has its own basetemp in it)
    root = base / f"once-{name}"
    with FileLock(f"{root}.lock"):
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)
            build(root)
            (root / ".built").touch()
    return World(root)


def _episode(characters: World, root: Path) -> World:
    made = characters.copy_to(root)
    with made.instance() as instance:
        runner = made.run(instance)
        assert runner.ok, "\n".join(runner.lines)
    return made


@pytest.fixture(scope="session")
def characters_world(tmp_path_factory) -> World:
    """The sample show's characters (and Phase 1) produced once per run: copy it, never change it."""
    return _once_per_run(tmp_path_factory, "characters", lambda root: _produce(root, characters_only=True))


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory, characters_world: World) -> World:
    """The whole sample episode produced once per run (what `anime-pipeline demo` does)."""
    return _once_per_run(tmp_path_factory, "demo", lambda root: _episode(characters_world, root))


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


# The modules that take longest (`pytest --durations=0`, summed per module), started first: a module runs on one
# worker (`--dist loadfile`), so a long one left for the end keeps the run going on one core while the others idle.
# xdist would reorder modules by their number of tests instead: `--no-loadscope-reorder` in pyproject.toml.
LONG_MODULES = ("deploy/test_celery_faults.py", "services/test_pipeline_with_comfyui.py", "test_scoring.py",
                "test_pipeline.py", "production/test_scene_video.py", "production/test_shot_clip_retries.py",
                "test_cli_dev.py", "production/test_identity_rules.py", "metrics/test_adversarial.py",
                "sensors/test_dataset_replenishment.py", "test_dagster_compat.py", "studio/test_app.py",
                "services/test_pipeline_with_services.py", "production/test_character_lora.py", "test_launcher.py",
                "test_recovery.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONG_MODULES) if path.endswith(f"tests/{name}")), len(LONG_MODULES))

    items.sort(key=rank)  # stable: the order within a module, and of the other modules, is kept
