"""The show file schema: show → style, world, characters, episodes → scenes → shots.

Plain pydantic v2 models, strict about unknown keys so that a typo is an error, not a
silently ignored setting, and strict about types so that YAML's guesses never coerce (`steps:
true` is an error, not 1). Every text and list has an upper bound: a show file may come from
anyone, and each value ends up in prompts, manifests and terminals. Cross-references (characters
named in shots, unique slugs, files, dialogue that fits its shot) are checked in `checks.py`.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# language[-region][+variant], as espeak_SetVoiceByName takes it: "en", "en-us+f3", "ja".
ESPEAK_VOICE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*(\+[A-Za-z0-9_]{1,24})?")

MAX_NAME_CHARS = 200  # names, titles, tags, model and file names
MAX_PROMPT_CHARS = 2_000
MAX_TEXT_CHARS = 10_000  # storyline, synopsis, art direction
MAX_LINE_CHARS = 1_000  # one line of dialogue
MAX_TAGS = 64
MAX_CHARACTERS = 64
MAX_EPISODES = 200
MAX_SCENES_PER_EPISODE = 100
MAX_SHOTS_PER_SCENE = 200
MAX_SHOTS = 3_000  # per show file, checked in checks.py
MAX_LINES_PER_SHOT = 32
MAX_CAST = 16  # characters in one shot
MAX_OVERRIDES = 64

MOTION_PRESETS = ("establishing", "wide", "medium", "close-up", "extreme_close-up", "action")
ShotType = Literal["establishing", "wide", "medium", "close-up", "extreme_close-up", "action"]
Look = Literal["drawn", "photoreal"]
Transition = Literal["dissolve", "fade", "wipe"]
SpeechBackendName = Literal["espeak", "openai_tts"]
MusicBackendName = Literal["procedural", "ace_step", "file"]
PublisherName = Literal["filesystem", "jellyfin"]
TrainerBackend = Literal["previz", "comfyui", "kohya"]

# SPEC §7 gives the IP-Adapter weight (0.7) but no LoRA weight; 0.8 is the usual strength for a
# character LoRA next to IP-Adapter (full strength tends to fight it and bake in the training
# images' backgrounds).
DEFAULT_LORA_WEIGHT = 0.8


def _check_slug(value: str) -> str:
    if not SLUG.fullmatch(value):
        raise ValueError(
            "not a valid slug: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter "
            "or digit, and nothing else — no line break either (slugs become folder names and must "
            "not contain '/', '..' or spaces)"
        )
    return value


def _check_color(value: str) -> str:
    if not HEX_COLOR.fullmatch(value):
        raise ValueError("not a colour: write it as #rrggbb")
    return value.lower()


def _check_template_name(value: str) -> str:
    if not TEMPLATE_NAME.fullmatch(value):
        raise ValueError("not a template name: the name of a file in workflows/ without its extension "
                         "(letters, digits, '-', '_'; no '/', '.' or '..')")
    return value


def _check_date(value: str) -> str:
    try:
        if ISO_DATE.fullmatch(value):
            dt.date.fromisoformat(value)
            return value
    except ValueError:
        raise ValueError("not a date of the calendar: write an existing day as YYYY-MM-DD") from None
    raise ValueError("not a date: write it as YYYY-MM-DD")


Slug = Annotated[str, AfterValidator(_check_slug)]
Color = Annotated[str, AfterValidator(_check_color)]
TemplateName = Annotated[str, AfterValidator(_check_template_name)]
IsoDate = Annotated[str, AfterValidator(_check_date)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Label = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
OptionalPrompt = Annotated[str, Field(max_length=MAX_PROMPT_CHARS)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Tags = Annotated[list[Name], Field(max_length=MAX_TAGS)]
RelativePath = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Overrides = Annotated[dict[Name, Any], Field(max_length=MAX_OVERRIDES)]


class StrictModel(BaseModel):
    # strict: YAML's implicit types never coerce (a bool is no number, a number no text);
    # allow_inf_nan: `.nan` and `.inf` are no thresholds or durations.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Style(StrictModel):
    checkpoint: Name = "animagine-xl-3.1.safetensors"
    sampler: Name = "euler_ancestral"
    scheduler: Name = "normal"
    steps: int = Field(28, ge=1, le=150)
    cfg: float = Field(7.0, gt=0, le=30)
    resolution: tuple[int, int] = Field((512, 768), strict=False)  # a YAML list; its items stay strict
    style_tags: Tags = Field(default_factory=lambda: ["anime", "cel shading"])
    negative_prompt: OptionalPrompt = "lowres, bad anatomy, bad hands, blurry, watermark, text"
    look: Look = Field("drawn", description="drawn (anime, cartoon) or photoreal: which identity model judges "
                                            "rendered frames — CCIP for drawn styles, ArcFace for photoreal ones")

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
    title: Name
    year: int = Field(ge=1900, le=2200)
    storyline: Text = ""
    studio: Name = "anime-pipeline"
    genres: Tags = Field(default_factory=lambda: ["Animation"])
    style: Style = Style()
    video: Video = Video()


class World(StrictModel):
    art_direction: Text = ""
    palette: list[Color] = Field(default_factory=list, max_length=MAX_TAGS)


class KeyColors(StrictModel):
    """The colours that identify a character; `skin` is fur or body colour for non-humans."""

    hair: Color
    skin: Color
    eyes: Color
    outfit: Color
    accent: Color | None = None


class Appearance(StrictModel):
    species: Name = "human"
    key_colors: KeyColors
    key_features: Tags = Field(default_factory=list)
    common_errors: Tags = Field(default_factory=list)
    height: float = Field(1.0, ge=0.4, le=1.6, description="relative body height, 1.0 = average adult")

    @property
    def is_human(self) -> bool:
        return self.species.strip().lower() == "human"


class Variations(StrictModel):
    outfits: Tags = Field(default_factory=lambda: ["default outfit"], min_length=1)
    expressions: Tags = Field(default_factory=lambda: ["neutral", "smiling"], min_length=1)
    poses: Tags = Field(default_factory=lambda: ["standing"], min_length=1)


class CharacterLora(StrictModel):
    """How shots load the character's LoRA (LoraLoader strengths)."""

    weight: float = Field(DEFAULT_LORA_WEIGHT, ge=0, le=2, description="strength_model")
    clip_weight: float | None = Field(None, ge=0, le=2, description="strength_clip; unset: the same as weight")


class EspeakVoice(StrictModel):
    voice: str = Field("en", max_length=MAX_NAME_CHARS,
                       description="espeak-ng voice: language plus an optional variant, e.g. en+f3")
    pitch: int = Field(50, ge=0, le=100, description="base pitch, 50 = normal")
    rate: int = Field(170, ge=80, le=450, description="words per minute, 175 = normal")

    @field_validator("voice")
    @classmethod
    def _voice_shape(cls, value: str) -> str:
        if not ESPEAK_VOICE.fullmatch(value):
            raise ValueError(f"{value!r} is not an espeak-ng voice: write language[+variant], e.g. 'en+f3' or 'ja'")
        return value


class OpenAIVoice(StrictModel):
    voice: Name = Field(description="the server's voice name, e.g. af_heart (Kokoro)")
    speed: float = Field(1.0, ge=0.25, le=4.0)


class CharacterVoice(StrictModel):
    """`voice:` on a character: one entry per speech backend; a backend without one derives a
    distinct voice from the character's slug."""

    espeak: EspeakVoice | None = None
    openai_tts: OpenAIVoice | None = None


class Character(StrictModel):
    slug: Slug
    name: Name
    design_prompt: Prompt
    appearance: Appearance
    reference_images: list[RelativePath] = Field(
        default_factory=list, max_length=MAX_TAGS, description="image files, relative to the show file's folder")
    dataset_target: int = Field(12, ge=1, le=1000)
    variations: Variations = Variations()
    lora: CharacterLora = CharacterLora()
    voice: CharacterVoice | None = Field(None, description="how each speech backend speaks for the character")


class DialogueLine(StrictModel):
    speaker: Slug
    line: str = Field(min_length=1, max_length=MAX_LINE_CHARS)


class Shot(StrictModel):
    slug: Slug
    type: ShotType
    characters: list[Slug] = Field(default_factory=list, max_length=MAX_CAST)
    prompt: Prompt
    motion_prompt: OptionalPrompt = ""
    duration: float = Field(gt=0.5, le=30, description="seconds")
    dialogue: list[DialogueLine] = Field(default_factory=list, max_length=MAX_LINES_PER_SHOT)
    transition: Transition = Field("dissolve", description="transition from the previous shot into this one")
    continuity: bool = Field(False, description="start from the previous shot's last frame")
    seed: int | None = Field(None, ge=0, lt=2**63)


class Scene(StrictModel):
    slug: Slug
    title: Label = ""
    location: Label = ""
    time_of_day: Label = ""
    mood: Label = ""
    music: RelativePath | None = Field(None, description="audio file for the music bed, relative to the music folder")
    shots: list[Shot] = Field(min_length=1, max_length=MAX_SHOTS_PER_SCENE)


class Episode(StrictModel):
    slug: Slug
    number: int = Field(ge=1, le=999)
    title: Name
    synopsis: Text = ""
    aired: IsoDate | None = None
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES_PER_EPISODE)


class ReviewThresholds(StrictModel):
    auto_reject_below: float = Field(0.4, ge=0, le=1)
    auto_approve_at: float = Field(0.8, ge=0, le=1)


IdentityBackendName = Literal["palette", "arcface", "ccip"]


class IdentityThresholds(StrictModel):
    """One "same character" decision, whichever backend measures identity: similarity ≥ the
    backend's threshold. Each backend has its own scale, so each has its own number."""

    palette: float = Field(0.70, ge=0, le=1, description=(
        "weight-free head palette signature, cosine to the anchor: SPEC §3's identity threshold; its margins on the "
        "adversarial clips are in README, Gate calibration"))
    arcface: float = Field(0.36, ge=0, le=1, description=(
        "InsightFace ArcFace cosine (photoreal styles): deepface's ArcFace verification threshold, euclidean_l2 "
        "1.13 on unit embeddings = cosine 1 - 1.13²/2; same-person ArcFace cosines are about 0.3-0.5 and up"))
    ccip: float | None = Field(None, ge=0, le=1, description=(
        "CCIP similarity, 1 - its learned difference (drawn styles); unset: 1 - the model's own metrics.json "
        "threshold (0.822 for ccip-caformer-24-randaug-pruned, imgutils' ccip_same)"))

    def threshold(self, backend: IdentityBackendName, calibrated: float) -> float:
        """The show's threshold for `backend`; `calibrated` is the backend's own (the CCIP model's
        metrics.json), used where the show file sets none."""
        value = {"palette": self.palette, "arcface": self.arcface, "ccip": self.ccip}[backend]
        return calibrated if value is None else value


class Quality(StrictModel):
    """Gate thresholds; the defaults are SPEC §3's, and where the spec has none, the calibrated
    values of README's Gate calibration."""

    identity: IdentityThresholds = IdentityThresholds()
    aesthetic: float = Field(5.5, ge=0, le=10)
    style_adherence: float = Field(0.85, ge=0, le=1)
    temporal_lpips: float = Field(0.15, ge=0, le=1, description="worst frame pair, after motion compensation")
    motion_smoothness: float = Field(0.95, ge=0, le=1, description="worst interpolated frame")
    temporal_flickering: float = Field(0.90, ge=0, le=1, description="VBench flicker score of the worst frame pair; a flash fails")
    frame_timing: float = Field(0.5, gt=0, le=2, description=(
        "largest |step ratio - 1| of a frame pair inside steady motion: halfway between a steady step (ratio 1) "
        "and a dropped (2) or duplicated (0) frame"))
    min_moving_share: float = Field(0.25, ge=0, le=1, description=(
        "share of frame pairs that really move (not noise, a loop, a fade or a flash) below which a clip is a "
        "still: VBench dynamic degree's 4 of 16"))
    subject_consistency: float = Field(0.90, ge=0, le=1)
    scene_continuity: float = Field(0.85, ge=0, le=1)
    phase_pass_rate: float = Field(0.80, ge=0, le=1)
    near_duplicate_similarity: float = Field(0.97, gt=0, le=1, description="SSIM above which two images are duplicates")
    max_attempts: int = Field(3, ge=1, le=5, description="shot renders tried while a blocking gate fails")
    review: ReviewThresholds = ReviewThresholds()

    @field_validator("identity", mode="before")
    @classmethod
    def _identity_per_backend(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f"one number ({value}) cannot be every identity backend's threshold, their scales differ: "
                             f"write identity: {{palette: 0.7, arcface: 0.36, ccip: 0.82}} (any of them; README, "
                             f"Gate calibration)")
        return value


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


class Ducking(StrictModel):
    """Sidechain compression of the music bed under the dialogue (ffmpeg sidechaincompress)."""

    threshold_db: float = Field(-36.0, ge=-60, le=0, description="dialogue level where ducking starts (dBFS)")
    ratio: float = Field(8.0, ge=1, le=20)
    attack_ms: float = Field(20.0, ge=0.01, le=2000)
    release_ms: float = Field(400.0, ge=0.01, le=9000)


class LoudnessTarget(StrictModel):
    """Default: −16 LUFS integrated, true peak ≤ −1 dBTP (streaming); −23 / −1 is EBU R128 broadcast."""

    integrated_lufs: float = Field(-16.0, ge=-36, le=-8)
    true_peak_dbtp: float = Field(-1.0, ge=-9, le=0)
    tolerance_lu: float = Field(1.0, gt=0, le=3, description="the loudness gate's ± window around the target")


class Audio(StrictModel):
    """The scene mix and the loudness gates of scenes and episodes."""

    music_volume: float = Field(0.3, ge=0, le=1, description="music bed level relative to dialogue at 100 %")
    music_fade: float = Field(1.0, ge=0, le=10, description="music fade-in and fade-out, seconds")
    ducking: Ducking = Ducking()
    loudness: LoudnessTarget = LoudnessTarget()
    dialogue_margin_db: float = Field(
        10.0, ge=0, le=40, description="dialogue_audible gate: speech above the ducked bed in every line, dB")
    line_gap: float = Field(0.25, ge=0, le=5, description="pause between two lines of one shot, seconds")
    music_fallback: bool = Field(
        False, description="when the music service fails, use the embedded procedural bed instead of failing")


class Jellyfin(StrictModel):
    """`publisher: jellyfin`. The URL and API key come from the environment (JELLYFIN_URL,
    JELLYFIN_API_KEY), so a show file never holds a secret."""

    server_library_path: str = Field(
        min_length=1, max_length=MAX_NAME_CHARS,
        description="the library root as the Jellyfin server sees it (its container path), e.g. /media")
    wait_seconds: float = Field(300.0, gt=0, le=3600,
                                description="how long server_lists_it waits for the episode to be listed")
    poll_seconds: float = Field(5.0, gt=0, le=300)

    @field_validator("server_library_path")
    @classmethod
    def _absolute_posix(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"{value!r} must be an absolute path on the server, without '..'")
        return str(path)


class Backends(StrictModel):
    """Which implementation serves each role. Where a service runs (URL, GPU) is the deployment's
    business: it comes from the environment (README, "Where things run"), not from the show file."""

    renderer: Literal["previz", "comfyui"] = "previz"
    comfyui_workflows: dict[Literal["still", "clip"], TemplateName] = Field(
        default_factory=dict, description="template names in workflows/ (defaults: txt2img_sdxl, i2v_wan22)")
    comfyui_overrides: dict[Literal["still", "clip"], Overrides] = Field(
        default_factory=dict, description="per role (still, clip): template parameter values for this deployment, e.g. model files")
    reviewer: Literal["heuristic", "ollama"] = "heuristic"
    reviewer_model: Name = Field("gemma3", description="Ollama vision model for reviewer: ollama")
    director: Literal["local", "ollama", "echo_brain"] = "local"
    director_model: Name = Field("gemma3", description="Ollama model for director: ollama / fallback")
    trainer: TrainerBackend = "previz"
    speech: SpeechBackendName = "espeak"
    speech_model: Name = Field("tts-1", description="the model an openai_tts server is asked for")
    music: MusicBackendName = Field(
        "procedural", description="file: every scene names its track (scenes[].music); a scene's track is used "
                                  "whatever the backend")
    publisher: PublisherName = "filesystem"

    @model_validator(mode="after")
    def _a_lora_needs_a_renderer_that_loads_it(self) -> Backends:
        if self.trainer != "previz" and self.renderer != "comfyui":
            raise ValueError(f"trainer: {self.trainer} trains a LoRA, and only renderer: comfyui can load one (each "
                             "epoch is judged by renders with it, and shots render with the chosen one); set "
                             "renderer: comfyui, or trainer: previz")
        return self


# The backends only the audio and the publication depend on (scene and episode specs carry them).
AUDIO_BACKENDS = frozenset({"speech", "speech_model", "music", "publisher"})


class TrainerSettings(StrictModel):
    """How a character LoRA is trained, whichever backend trains it. An epoch is kohya's: every
    image `repeats` times, in batches (ceil(images × repeats / batch_size) steps)."""

    rank: int = Field(16, ge=1, le=128, description="network dim (kohya --network_dim, ComfyUI rank)")
    alpha: float | None = Field(None, gt=0, le=1024,
                                description="network alpha; unset: the backend's own (kohya 1.0; ComfyUI's "
                                            "TrainLoraNode always uses 1.0 and refuses another value)")
    learning_rate: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(10, ge=1, le=200, description="a LoRA file is kept per epoch; identity picks one")
    repeats: int = Field(10, ge=1, le=1000, description="how often each image is seen per epoch")
    batch_size: int = Field(1, ge=1, le=64)
    seed: int = Field(42, ge=0, lt=2**32)
    optimizer: Name = Field("AdamW", description="kohya --optimizer_type (AdamW, AdamW8bit, Lion, ...); "
                                                 "ComfyUI: AdamW, Adam, SGD or RMSprop")
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    resolution: int | None = Field(None, ge=256, le=2048, description="unset: 512 for SD 1.x, 1024 for SDXL")
    validation_prompts: int = Field(4, ge=1, le=16, description="renders per epoch for the identity choice")
    train_text_encoder: bool = Field(True, description="kohya: also train the text encoder(s); ComfyUI "
                                                       "trains the diffusion model only")


class ShowConfig(StrictModel):
    show: Show
    world: World = World()
    characters: list[Character] = Field(min_length=1, max_length=MAX_CHARACTERS)
    episodes: list[Episode] = Field(min_length=1, max_length=MAX_EPISODES)
    quality: Quality = Quality()
    dataset: DatasetPolicy = DatasetPolicy()
    backends: Backends = Backends()
    training: TrainerSettings = TrainerSettings()
    audio: Audio = Audio()
    jellyfin: Jellyfin | None = Field(None, description="the server's view of the library (publisher: jellyfin)")

    def character(self, slug: str) -> Character:
        for character in self.characters:
            if character.slug == slug:
                return character
        raise KeyError(f"show {self.show.slug!r} has no character {slug!r}")
