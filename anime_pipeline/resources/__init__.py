"""Dagster resources: thin configurable wrappers that hand the domain code its backends.

Each resource that could use a GPU names its device; the assets that use it claim that
device's pool (see `settings.pool_for`). The show file picks the backend (`backends:`),
the resource holds where it runs. Only the embedded defaults exist so far.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.settings import CPU


class ProjectResource(dg.ConfigurableResource):
    """The show files; re-read on every run so a step always sees the YAML as it is now."""

    configs_dir: str

    def load(self) -> Project:
        return Project.load(self.configs_dir)


class StorageResource(dg.ConfigurableResource):
    root: str
    library_root: str

    @property
    def paths(self) -> StoragePaths:
        return StoragePaths(Path(self.root))

    @property
    def library(self) -> Path:
        return Path(self.library_root)


class RendererResource(dg.ConfigurableResource):
    device: str = CPU

    def for_show(self, config: ShowConfig) -> PrevizRenderer:
        return PrevizRenderer()


class ReviewerResource(dg.ConfigurableResource):
    device: str = CPU

    def for_show(self, config: ShowConfig) -> HeuristicReviewer:
        return HeuristicReviewer()


class DirectorResource(dg.ConfigurableResource):
    def for_show(self, config: ShowConfig) -> LocalPlanner:
        return LocalPlanner()
