"""The show file schema: show → style, world, characters, episodes → scenes → shots.

Plain pydantic v2 models, strict about unknown keys so that a typo is an error, not a
silently ignored setting. Cross-references (characters named in shots, unique slugs) are
checked in `loader.py`, which knows the file and reports the exact path of a bad field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

MOTION_PRESETS = ("establishing", "wide", "medium", "close-up", "extreme_close-up", "action")
ShotType = Literal["establishing", "wide", "medium", "close-up", "extreme_close-up", "action"]
Transition = Literal["dissolve", "fade", "wipe"]


def _check_slug(value: str) -> str:
    if not re.match(SLUG_PATTERN, value):
        raise ValueError(
            f"{value!r} is not a valid slug: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit (slugs become folder names and must not contain "
            "'/', '..' or spaces)"
        )
    return value


def _check_color(value: str) -> str:
    if not HEX_COLOR.match(value):
        raise ValueError(f"{value!r} is not a colour: write it as #rrggbb")
    return value.lower()


Slug = Annotated[str, AfterValidator(_check_slug)]
Color = Annotated[str, AfterValidator(_check_color)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Style(StrictModel):
    checkpoint: str = "animagine-xl-3.1.safetensors"
    sampler: str = "euler_ancestral"
    scheduler: str = "normal"
    steps: int = Field(28, ge=1, le=150)
    cfg: float = Field(7.0, gt=0, le=30)
    resolution: tuple[int, int] = (512, 768)
    style_tags: list[str] = Field(default_factory=lambda: ["anime", "cel shading"])
    negative_prompt: str = "lowres, bad anatomy, bad hands, blurry, watermark, text"

    @field_validator("resolution")
    @classmethod
    def _resolution_multiple_of_8(cls, value: tuple[int, int]) -> tuple[int, int]:
        width, height = value
        if not (64 <= width <= 4096 and 64 <= height <= 4096) or width % 8 or height % 8:
            raise ValueError(f"{list(value)} must be [width, height], each 64-4096 and a multiple of 8")
        return value


class Video(StrictModel):
    width: int = Field(640, ge=64, le=3840)
    height: int = Field(360, ge=64, le=2160)
    fps: int = Field(24, ge=4, le=60)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"{value} must be even (H.264 with yuv420p needs even sizes)")
        return value


class Show(StrictModel):
    slug: Slug
    title: str = Field(min_length=1)
    year: int = Field(ge=1900, le=2200)
    storyline: str = ""
    studio: str = "anime-pipeline"
    genres: list[str] = Field(default_factory=lambda: ["Animation"])
    style: Style = Style()
    video: Video = Video()


class World(StrictModel):
    art_direction: str = ""
    palette: list[Color] = Field(default_factory=list)


class KeyColors(StrictModel):
    """The colours that identify a character; `skin` is fur or body colour for non-humans."""

    hair: Color
    skin: Color
    eyes: Color
    outfit: Color
    accent: Color | None = None


class Appearance(StrictModel):
    species: str = "human"
    key_colors: KeyColors
    key_features: list[str] = Field(default_factory=list)
    common_errors: list[str] = Field(default_factory=list)
    height: float = Field(1.0, ge=0.4, le=1.6, description="relative body height, 1.0 = average adult")

    @property
    def is_human(self) -> bool:
        return self.species.strip().lower() == "human"


class Variations(StrictModel):
    outfits: list[str] = Field(default_factory=lambda: ["default outfit"])
    expressions: list[str] = Field(default_factory=lambda: ["neutral", "smiling"])
    poses: list[str] = Field(default_factory=lambda: ["standing"])


class Character(StrictModel):
    slug: Slug
    name: str = Field(min_length=1)
    design_prompt: str = Field(min_length=1)
    appearance: Appearance
    reference_images: list[str] = Field(default_factory=list)
    dataset_target: int = Field(12, ge=1, le=1000)
    variations: Variations = Variations()


class DialogueLine(StrictModel):
    speaker: Slug
    line: str = Field(min_length=1)


class Shot(StrictModel):
    slug: Slug
    type: ShotType
    characters: list[Slug] = Field(default_factory=list)
    prompt: str = Field(min_length=1)
    motion_prompt: str = ""
    duration: float = Field(gt=0.5, le=30, description="seconds")
    dialogue: list[DialogueLine] = Field(default_factory=list)
    transition: Transition = Field("dissolve", description="transition from the previous shot into this one")
    continuity: bool = Field(False, description="start from the previous shot's last frame")
    seed: int | None = Field(None, ge=0, lt=2**63)


class Scene(StrictModel):
    slug: Slug
    title: str = ""
    location: str = ""
    time_of_day: str = ""
    mood: str = ""
    music: str | None = Field(None, description="audio file for the music bed, relative to the show file")
    shots: list[Shot] = Field(min_length=1)


class Episode(StrictModel):
    slug: Slug
    number: int = Field(ge=1, le=999)
    title: str = Field(min_length=1)
    synopsis: str = ""
    aired: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    scenes: list[Scene] = Field(min_length=1)


class ReviewThresholds(StrictModel):
    auto_reject_below: float = Field(0.4, ge=0, le=1)
    auto_approve_at: float = Field(0.8, ge=0, le=1)


class Quality(StrictModel):
    """Gate thresholds; the defaults are SPEC §3's."""

    identity: float = Field(0.70, ge=0, le=1)
    aesthetic: float = Field(5.5, ge=0, le=10)
    style_adherence: float = Field(0.85, ge=0, le=1)
    temporal_lpips: float = Field(0.15, ge=0, le=1)
    motion_smoothness: float = Field(0.95, ge=0, le=1)
    temporal_flickering: float = Field(0.90, ge=0, le=1, description="VBench flicker score floor; a flashing clip fails")
    subject_consistency: float = Field(0.90, ge=0, le=1)
    scene_continuity: float = Field(0.85, ge=0, le=1)
    phase_pass_rate: float = Field(0.80, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.97, gt=0, le=1, description="SSIM above which two images are duplicates")
    min_motion: float = Field(0.002, ge=0, le=1, description="mean frame difference below which a clip is a still")
    max_attempts: int = Field(3, ge=1, le=5, description="shot renders tried while a blocking gate fails")
    review: ReviewThresholds = ReviewThresholds()


class DatasetPolicy(StrictModel):
    """How the replenishment sensor tops up each character's dataset (SPEC §5): batches of `batch_size`
    candidates while approved < dataset_target, each held back by the guards below (the defaults are SPEC §5's).
    Not part of any artifact's code version: changing a guard never makes an asset stale."""

    batch_size: int = Field(3, ge=1, le=12, description="candidates per batch")
    cooldown_seconds: float = Field(60, ge=0, le=86_400, description="per character, after its last batch")
    daily_batch_limit: int = Field(10, ge=1, le=1000, description="batches per character in any 24 hours")
    max_consecutive_rejects: int = Field(
        5, ge=1, le=1000, description="stop after this many rejected candidates in a row, until a person "
                                      "resets it (`anime-pipeline replenish reset`) or an approval arrives")
    max_awaiting_review: int = Field(3, ge=1, le=1000, description="no new batch while this many await a person")
    max_batches_in_flight: int = Field(2, ge=1, le=100, description="replenishment runs not finished, project-wide")


class Backends(StrictModel):
    """Which implementation serves each role. Where a service runs (URL, GPU) is the deployment's
    business: it comes from the environment (README, "Where things run"), not from the show file."""

    renderer: Literal["previz", "comfyui"] = "previz"
    comfyui_workflows: dict[Literal["still", "clip"], str] = Field(
        default_factory=dict, description="template names in workflows/ (defaults: txt2img_sdxl, i2v_wan22)")
    comfyui_overrides: dict[Literal["still", "clip"], dict[str, Any]] = Field(
        default_factory=dict, description="per role (still, clip): template parameter values for this deployment, e.g. model files")
    reviewer: Literal["heuristic", "ollama"] = "heuristic"
    reviewer_model: str = Field("gemma3", min_length=1, description="Ollama vision model for reviewer: ollama")
    director: Literal["local", "ollama", "echo_brain"] = "local"
    director_model: str = Field("gemma3", min_length=1, description="Ollama model for director: ollama / fallback")
    trainer: Literal["previz"] = "previz"
    publisher: Literal["filesystem"] = "filesystem"


class ShowConfig(StrictModel):
    show: Show
    world: World = World()
    characters: list[Character] = Field(min_length=1)
    episodes: list[Episode] = Field(min_length=1)
    quality: Quality = Quality()
    dataset: DatasetPolicy = DatasetPolicy()
    backends: Backends = Backends()

    def character(self, slug: str) -> Character:
        for character in self.characters:
            if character.slug == slug:
                return character
        raise KeyError(f"show {self.show.slug!r} has no character {slug!r}")
