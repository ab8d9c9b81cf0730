"""All shows of a project folder, and the partition keys the production graph uses for them.

Partition keys mirror the storage layout: `show/character`, `show/episode`,
`show/episode/scene`, `show/episode/scene/shot`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from anime_pipeline.config.errors import ConfigError, ConfigProblem
from anime_pipeline.config.loader import check_files, show_files
from anime_pipeline.config.schema import AUDIO_BACKENDS, Character, Episode, Scene, Shot, ShowConfig
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


def dagster_name(slug: str) -> str:
    """A slug as a Dagster group/job name component (letters, digits and '_' only)."""
    return slug.replace("-", "_")


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
        shows: dict[str, ShowConfig] = {}
        files: dict[str, Path] = {}
        for check in checks:
            slug = check.config.show.slug
            if slug in shows:
                raise ConfigError(check.path, [ConfigProblem("show.slug", f"show slug {slug!r} is already used by {files[slug]}")])
            clash = next((other for other in shows if dagster_name(other) == dagster_name(slug)), None)
            if clash is not None:
                raise ConfigError(check.path, [ConfigProblem(
                    "show.slug", f"show slug {slug!r} and {clash!r} ({files[clash]}) differ only in '-' vs '_'; "
                                 "Dagster group and job names could not tell them apart")])
            shows[slug], files[slug] = check.config, check.path
        return cls(shows, files, music)

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

    def digest(self) -> str:
        """A hash of every show as parsed: changes exactly when an entity or a setting changes."""
        return sha256_json({slug: cfg.model_dump(mode="json") for slug, cfg in sorted(self.shows.items())})


def show_settings(cfg: ShowConfig) -> dict:
    """The show-wide settings every artifact of the show depends on (the audio and publication
    backends only matter to scenes and episodes: their specs add them)."""
    return {"style": cfg.show.style.model_dump(mode="json"), "video": cfg.show.video.model_dump(mode="json"),
            "world": cfg.world.model_dump(mode="json"), "quality": cfg.quality.model_dump(mode="json"),
            "backends": cfg.backends.model_dump(mode="json", exclude=set(AUDIO_BACKENDS))}


def _design(character: Character) -> dict:
    """What a character looks like: everything but its voice, which only the dialogue hears."""
    return character.model_dump(mode="json", exclude={"voice"})


def _audio_settings(cfg: ShowConfig) -> dict:
    return {"audio_backends": cfg.backends.model_dump(mode="json", include=set(AUDIO_BACKENDS)),
            "audio": cfg.audio.model_dump(mode="json")}


def character_spec(ref: CharacterRef) -> dict:
    """The character's entry, but how shots load its LoRA (`lora:`), which only character_lora and
    the shots read, and its voice, which only the dialogue hears; and the show's settings."""
    character = ref.character.model_dump(mode="json", exclude={"lora", "voice"})
    return {"character": character, **show_settings(ref.config)}


def shot_spec(ref: ShotRef) -> dict:
    """The shot, the scene context its prompt is refined with, its characters' designs."""
    scene = ref.scene.model_dump(mode="json", include={"slug", "location", "time_of_day", "mood"})
    return {"shot": ref.shot.model_dump(mode="json"), "scene": scene,
            "characters": [_design(c) for c in ref.characters()],
            "previous": ref.previous_key if ref.shot.continuity else None, **show_settings(ref.config)}


def _voices(cfg: ShowConfig, speakers: set[str]) -> dict:
    """What decides the speakers' voices: every voice the show file gives (a derived voice avoids
    them all) and the cast up to the last speaker (voices are derived in show order)."""
    slugs = [c.slug for c in cfg.characters]
    last = max((slugs.index(slug) for slug in speakers), default=-1)
    return {"given": {c.slug: c.voice.model_dump(mode="json") for c in cfg.characters if c.voice},
            "order": slugs[:last + 1]}


def scene_spec(ref: SceneRef) -> dict:
    """The scene's whole entry in the show file (its shots included), its speakers' names and what
    decides their voices, and the audio settings."""
    speakers = {line.speaker for shot in ref.scene.shots for line in shot.dialogue}
    return {"scene": ref.scene.model_dump(mode="json"),
            "speakers": {slug: ref.config.character(slug).name for slug in sorted(speakers)},
            "voices": _voices(ref.config, speakers), **show_settings(ref.config), **_audio_settings(ref.config)}


def episode_spec(ref: EpisodeRef) -> dict:
    """The episode's whole entry (scenes and shots included), the show's library metadata and the
    loudness target its gate judges."""
    show = ref.config.show.model_dump(mode="json", exclude={"style", "video"})
    return {"episode": ref.episode.model_dump(mode="json"), "show": show, **show_settings(ref.config),
            "loudness": ref.config.audio.loudness.model_dump(mode="json")}


def publication_spec(ref: EpisodeRef) -> dict:
    """The episode's spec and where it is published."""
    jellyfin = ref.config.jellyfin.model_dump(mode="json") if ref.config.jellyfin else None
    return {**episode_spec(ref), "publisher": ref.config.backends.publisher, "jellyfin": jellyfin}
