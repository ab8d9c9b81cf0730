"""The production steps as plain Python: one module per artifact, each with its step, manifest model and gates.

`STEPS` lists them in graph order; `refs` gives the show entities each level's steps run for.
"""

from __future__ import annotations

from collections.abc import Mapping

from anime_pipeline.config.project import Project
from anime_pipeline.production.approved_dataset import ApprovedDataset
from anime_pipeline.production.character_embedding import CharacterEmbedding
from anime_pipeline.production.character_lora import CharacterLora
from anime_pipeline.production.character_reference import CharacterReference
from anime_pipeline.production.episode_video import EpisodeVideo
from anime_pipeline.production.jellyfin_publish import JellyfinPublish
from anime_pipeline.production.scene_video import SceneVideo
from anime_pipeline.production.shot_clip import ShotClip
from anime_pipeline.production.step import Level, Step

__all__ = ["BY_ARTIFACT", "CHARACTER_ARTIFACTS", "STEPS", "ApprovedDataset", "CharacterEmbedding", "CharacterLora",
           "CharacterReference", "EpisodeVideo", "JellyfinPublish", "SceneVideo", "ShotClip", "refs"]

STEPS: tuple[Step, ...] = (CharacterReference(), CharacterEmbedding(), ApprovedDataset(), CharacterLora(),
                           ShotClip(), SceneVideo(), EpisodeVideo(), JellyfinPublish())
BY_ARTIFACT: dict[str, Step] = {step.artifact: step for step in STEPS}
CHARACTER_ARTIFACTS = tuple(s.artifact for s in STEPS if s.level == "character")


def refs(project: Project, level: Level) -> Mapping[str, object]:
    """Every entity of a level across the project's shows, by key."""
    return {"character": project.characters, "shot": project.shots, "scene": project.scenes,
            "episode": project.episodes}[level]
