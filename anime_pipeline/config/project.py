"""All shows of a project folder, and the partition keys the production graph uses for them.

Partition keys mirror the storage layout: `show/character`, `show/episode`,
`show/episode/scene`, `show/episode/scene/shot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from anime_pipeline.config.loader import check_files, show_files
from anime_pipeline.config.schema import Character, Episode, Scene, Shot, ShowConfig
from anime_pipeline.storage import sha256_json


@dataclass(frozen=True)
class ShotRef:
    config: ShowConfig
    episode: Episode
    scene: Scene
    shot: Shot
    index: int
    previous_key: str | None

    @property
    def key(self) -> str:
        return f"{self.config.show.slug}/{self.episode.slug}/{self.scene.slug}/{self.shot.slug}"

    @property
    def scene_key(self) -> str:
        return f"{self.config.show.slug}/{self.episode.slug}/{self.scene.slug}"

    def characters(self) -> list[Character]:
        return [self.config.character(slug) for slug in self.shot.characters]


@dataclass(frozen=True)
class SceneRef:
    config: ShowConfig
    episode: Episode
    scene: Scene

    @property
    def key(self) -> str:
        return f"{self.config.show.slug}/{self.episode.slug}/{self.scene.slug}"

    @property
    def shot_keys(self) -> list[str]:
        return [f"{self.key}/{shot.slug}" for shot in self.scene.shots]


@dataclass(frozen=True)
class EpisodeRef:
    config: ShowConfig
    episode: Episode

    @property
    def key(self) -> str:
        return f"{self.config.show.slug}/{self.episode.slug}"

    @property
    def scene_keys(self) -> list[str]:
        return [f"{self.key}/{scene.slug}" for scene in self.episode.scenes]


@dataclass(frozen=True)
class CharacterRef:
    config: ShowConfig
    character: Character

    @property
    def key(self) -> str:
        return f"{self.config.show.slug}/{self.character.slug}"


class Project:
    """Every show in a folder, validated together (show slugs must be unique across files).

    Scenes' music files live in `music_dir` (by default `<config_dir>/music`), each named by a
    path relative to it; the loader has checked that none leads outside."""

    def __init__(self, shows: dict[str, ShowConfig], files: dict[str, Path], music_dir: Path):
        self.shows = shows
        self.files = files
        self.music_dir = music_dir

    @classmethod
    def load(cls, config_dir: Path | str, music_dir: Path | str | None = None) -> Project:
        """Raise the first bad file's ConfigError; `check_files` reports every file."""
        music = Path(music_dir) if music_dir is not None else Path(config_dir) / "music"
        checks = check_files(show_files(config_dir), music)
        for check in checks:
            if check.error is not None:
                raise check.error
        return cls({c.config.show.slug: c.config for c in checks}, {c.config.show.slug: c.path for c in checks}, music)

    def music_file(self, scene: Scene) -> Path | None:
        """The scene's music bed, inside the music folder; None when the scene has none."""
        return self.music_dir / scene.music if scene.music is not None else None

    @cached_property
    def characters(self) -> dict[str, CharacterRef]:
        return {ref.key: ref for cfg in self.shows.values() for ref in (CharacterRef(cfg, c) for c in cfg.characters)}

    @cached_property
    def episodes(self) -> dict[str, EpisodeRef]:
        return {ref.key: ref for cfg in self.shows.values() for ref in (EpisodeRef(cfg, e) for e in cfg.episodes)}

    @cached_property
    def scenes(self) -> dict[str, SceneRef]:
        return {
            ref.key: ref
            for cfg in self.shows.values()
            for episode in cfg.episodes
            for ref in (SceneRef(cfg, episode, scene) for scene in episode.scenes)
        }

    @cached_property
    def shots(self) -> dict[str, ShotRef]:
        refs: dict[str, ShotRef] = {}
        for cfg in self.shows.values():
            previous: str | None = None
            for episode in cfg.episodes:
                index = 0
                for scene in episode.scenes:
                    for shot in scene.shots:
                        ref = ShotRef(cfg, episode, scene, shot, index, previous)
                        refs[ref.key] = ref
                        previous = ref.key
                        index += 1
                previous = None  # continuity chains never cross episodes
        return refs

    def fingerprints(self) -> dict[str, dict[str, str]]:
        """A content hash of each partition's own spec, by level — the data versions of the config."""
        return {
            "character": {k: sha256_json(_character_spec(r)) for k, r in self.characters.items()},
            "shot": {k: sha256_json(_shot_spec(r)) for k, r in self.shots.items()},
            "scene": {k: sha256_json(_scene_spec(r)) for k, r in self.scenes.items()},
            "episode": {k: sha256_json(_episode_spec(r)) for k, r in self.episodes.items()},
        }


def _style(cfg: ShowConfig) -> dict:
    return {"style": cfg.show.style.model_dump(), "video": cfg.show.video.model_dump(),
            "world": cfg.world.model_dump(), "quality": cfg.quality.model_dump(), "backends": cfg.backends.model_dump()}


def _character_spec(ref: CharacterRef) -> dict:
    return {"character": ref.character.model_dump(), **_style(ref.config)}


def _shot_spec(ref: ShotRef) -> dict:
    return {"shot": ref.shot.model_dump(), "previous": ref.previous_key if ref.shot.continuity else None,
            **_style(ref.config)}


def _scene_spec(ref: SceneRef) -> dict:
    scene = ref.scene.model_dump()
    scene["shots"] = [{"slug": s.slug, "transition": s.transition, "duration": s.duration,
                       "dialogue": [{**d.model_dump(), "name": ref.config.character(d.speaker).name} for d in s.dialogue]}
                      for s in ref.scene.shots]
    return {"scene": scene, "video": ref.config.show.video.model_dump(), "quality": ref.config.quality.model_dump()}


def _episode_spec(ref: EpisodeRef) -> dict:
    episode = ref.episode.model_dump(exclude={"scenes"})
    return {"episode": episode, "scenes": [s.slug for s in ref.episode.scenes],
            "show": ref.config.show.model_dump(exclude={"style", "video"})}
