"""Dagster resources: thin configurable wrappers that hand the domain code its backends.

Each resource that could use a GPU names its device; the assets that use it claim that
device's pool (see `settings.pool_for`). The show file picks the backend (`backends:`),
the resource holds where it runs.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.planning.story import StoryPlanner
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.review.vision import OllamaVisionReviewer
from anime_pipeline.services.echo_brain import Director, EchoBrainClient
from anime_pipeline.services.ollama import OllamaClient
from anime_pipeline.settings import CPU


class NotConfigured(dg.Failure):
    def __init__(self, show: str, field: str, value: str, variable: str):
        super().__init__(f"show {show!r} sets backends.{field}: {value}, but {variable} is not set: "
                         f"set it to the service's URL, or use the embedded default")


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


class OllamaResource(dg.ConfigurableResource):
    """An Ollama server (vision review, director fallback); empty URL = not configured."""

    base_url: str = ""
    device: str = CPU
    keep_alive: str = "5m"
    timeout: float = 120.0

    def client(self) -> OllamaClient | None:
        return OllamaClient(self.base_url, timeout=self.timeout, keep_alive=self.keep_alive) if self.base_url else None


class EchoBrainResource(dg.ConfigurableResource):
    """The Echo Brain director service; empty URL = not configured."""

    base_url: str = ""
    timeout: float = 10.0

    def client(self) -> EchoBrainClient | None:
        return EchoBrainClient(self.base_url, timeout=self.timeout) if self.base_url else None


class RendererResource(dg.ConfigurableResource):
    device: str = CPU

    def for_show(self, config: ShowConfig) -> PrevizRenderer:
        return PrevizRenderer()


class ReviewerResource(dg.ConfigurableResource):
    ollama: OllamaResource

    def for_show(self, config: ShowConfig) -> HeuristicReviewer | OllamaVisionReviewer:
        backends = config.backends
        if backends.reviewer == "heuristic":
            return HeuristicReviewer()
        client = self.ollama.client()
        if client is None:
            raise NotConfigured(config.show.slug, "reviewer", "ollama", "ANIME_PIPELINE_OLLAMA_URL")
        client.ensure_model(backends.reviewer_model)
        return OllamaVisionReviewer(client, backends.reviewer_model)


class DirectorResource(dg.ConfigurableResource):
    ollama: OllamaResource
    echo_brain: EchoBrainResource

    def for_show(self, config: ShowConfig) -> LocalPlanner | Director:
        backends = config.backends
        if backends.director == "local":
            return LocalPlanner()
        echo = self.echo_brain.client() if backends.director == "echo_brain" else None
        ollama = self.ollama.client()
        if backends.director == "echo_brain" and echo is None:
            raise NotConfigured(config.show.slug, "director", "echo_brain", "ANIME_PIPELINE_ECHO_BRAIN_URL")
        if backends.director == "ollama" and ollama is None:
            raise NotConfigured(config.show.slug, "director", "ollama", "ANIME_PIPELINE_OLLAMA_URL")
        return Director(echo, ollama, backends.director_model, LocalPlanner())

    def story_planner(self, config: ShowConfig) -> StoryPlanner:
        """Scene planning follows the same backend choice as prompt refinement."""
        backends = config.backends
        echo = self.echo_brain.client() if backends.director == "echo_brain" else None
        ollama = self.ollama.client() if backends.director != "local" else None
        return StoryPlanner(echo, ollama, backends.director_model)
