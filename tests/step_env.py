"""A `StepEnv` on the embedded defaults, for driving production steps directly (no Dagster)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

from anime_pipeline.config import Project
from anime_pipeline.media.music import FileMusic, ProceduralMusic
from anime_pipeline.media.speech import EspeakSpeech
from anime_pipeline.metrics.models import ModelStore
from anime_pipeline.metrics.suite import MetricSuite
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.production.step import StepEnv, StepFailed
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer


@contextmanager
def _previz(_config, _references: Mapping[str, Path], loras=()):
    if loras:
        raise ValueError(f"the previz renderer cannot load LoRA files ({[lora.name for lora in loras]})")
    yield PrevizRenderer()


@contextmanager
def _espeak(_config):
    yield EspeakSpeech()


def _no_jellyfin(config):
    raise StepFailed(f"show {config.show.slug!r}: the embedded environment has no Jellyfin server")


def embedded_env(configs_dir: Path, storage_root: Path, models_root: Path | None = None,
                 log=lambda _: None) -> StepEnv:
    models = models_root or storage_root.parent / "models"
    suite = MetricSuite(ModelStore(root=models, torch_home=models / "torch"))
    project = Project.load(configs_dir)

    @contextmanager
    def music(config):
        yield FileMusic(project.music_dir) if config.backends.music == "file" else ProceduralMusic()

    return StepEnv(paths=StoragePaths(storage_root), library=storage_root / "library",
                   project=project, metrics=suite, metric_backends={},
                   open_renderer=_previz, reviewer=lambda _config: HeuristicReviewer(),
                   director=lambda _config: LocalPlanner(), open_speech=_espeak, open_music=music,
                   jellyfin=_no_jellyfin, log=log)
