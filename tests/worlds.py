"""The shared test world: the sample show (with overrides), isolated storage and Dagster homes, and the
runner over them. Fixtures over these live in tests/conftest.py."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_OVERRIDES = {"concurrency": {"pools": {"default_limit": 1}}}
SAMPLE = REPO / "project_configs" / "lantern_post.yaml"
SAMPLE_SHOW = "lantern-post"
EPISODE = "lantern-post/ep01"


def merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides` applied key by key (nested mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def write_show(configs_dir: Path, overrides: dict | None = None, slug: str | None = None) -> Path:
    """The sample show, with `overrides` merged in (and another slug, for a second show), as a show file."""
    data = merged(yaml.safe_load(SAMPLE.read_text()), overrides or {})
    if slug:
        data["show"]["slug"] = slug
    configs_dir.mkdir(parents=True, exist_ok=True)
    path = configs_dir / f"{data['show']['slug'].replace('-', '_')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def empty_store(root: Path):
    """A model store with no weights: every metric runs its weight-free fallback."""
    from anime_pipeline.metrics.models import ModelStore

    return ModelStore(root=root / "models", torch_home=root / "models" / "torch")


@dataclass(frozen=True)
class World:
    """A project folder, its storage root and its embedded Dagster home, under one root."""

    root: Path

    @property
    def configs(self) -> Path:
        return self.root / "project_configs"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    def settings(self, **changes: Any):
        from anime_pipeline.settings import Settings

        base = Settings(configs_dir=self.configs, storage_root=self.storage, library_root=self.storage / "library",
                        renderer_gpu="cpu", reviewer_gpu="cpu", models=empty_store(self.root))
        return replace(base, **changes)

    @contextmanager
    def instance(self) -> Iterator[Any]:
        import dagster as dg

        self.home.mkdir(parents=True, exist_ok=True)
        with dg.instance_for_test(temp_dir=str(self.home), overrides=EMBEDDED_OVERRIDES) as instance:
            yield instance

    def copy_to(self, root: Path) -> World:
        shutil.copytree(self.root, root, symlinks=True, dirs_exist_ok=True)
        return World(root)

    def run(self, instance, episodes: list[str] | None = None, approve_as: str | None = "test",
            characters_only: bool = False, **settings: Any):
        """The demo's runner over this world; returns the runner (its outcomes and report lines)."""
        from anime_pipeline.config import Project
        from anime_pipeline.definitions import build_definitions
        from anime_pipeline.paths import StoragePaths
        from anime_pipeline.runner import Runner, plan_for

        project = Project.load(self.configs)
        lines: list[str] = []
        runner = Runner(build_definitions(self.settings(**settings), project), instance, StoragePaths(self.storage),
                        report=lines.append)
        runner.lines = lines
        stages = plan_for(project, episodes)
        if characters_only:
            stages = [s for s in stages if s.label.startswith("character ") or s.label.startswith("phase1_stills ")]
        runner.ok = runner.run_plan(stages, project, approve_as=approve_as)
        return runner
