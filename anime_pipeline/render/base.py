"""The renderer interface shared by every backend: the embedded previz drawings
(`render.previz`) and ComfyUI (`render.comfyui`).

Requests carry everything that determines the output, so a recorded request (in a
manifest) reproduces the render. Clips stream (`ClipStream`): a renderer yields one frame at a
time, so the encoder and the shot gates take each frame as it comes and a clip never has to fit
in memory (README, "Memory").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from anime_pipeline.config.schema import Character
from anime_pipeline.imaging import Box

REFERENCE_POSES = (
    "front", "three-quarter left", "profile left", "back",
    "three-quarter right", "profile right", "sitting", "action",
)
REFERENCE_EXPRESSIONS = ("neutral", "happy", "sad", "angry", "surprised", "embarrassed")


@dataclass(frozen=True)
class StillRequest:
    """One image: a reference-sheet panel, a dataset candidate or a keyframe."""

    characters: tuple[Character, ...]
    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    framing: str = "full_body"  # a motion preset name, or "full_body" / "portrait"
    pose: str = "front"
    expression: str = "neutral"
    outfit: str = "default outfit"
    background: tuple[str, ...] = ()  # world palette, #rrggbb
    steps: int = 28
    palette_overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> role -> #rrggbb
    # Steering (the dataset learner's levers): None = the show style's cfg; exposure in stops (×2 on pixel
    # values per stop) and contrast (×, around mid-grey) develop the rendered image, whatever the backend.
    cfg: float | None = None
    exposure: float = 0.0
    contrast: float = 1.0


@dataclass(frozen=True)
class ClipRequest:
    """One shot: frames animated per the shot type's motion preset."""

    characters: tuple[Character, ...]
    shot_type: str
    prompt: str
    motion_prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    fps: int
    n_frames: int
    background: tuple[str, ...] = ()
    steps: int = 28
    first_frame: np.ndarray | None = None  # continuity: start from the previous shot's last frame
    palette_overrides: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class StillResult:
    image: np.ndarray  # H x W x 3 uint8 RGB
    face_boxes: dict[str, Box]  # character slug -> face box
    params: dict[str, Any]  # what the backend actually used, for the manifest


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray  # H x W x 3 uint8 RGB
    face_boxes: dict[str, Box]  # character slug -> face box


@dataclass
class ClipStream:
    """A clip as its renderer makes it: what it used (`params`, known before the first frame) and
    its `n_frames` frames, yielded one at a time. Iterate `frames` once."""

    params: dict[str, Any]
    n_frames: int
    frames: Iterator[RenderedFrame]


@dataclass
class ClipResult:
    """A whole clip in memory: for short clips only (tests, benchmarks of the metrics alone)."""

    frames: list[np.ndarray]
    face_boxes: list[dict[str, Box]]  # per frame
    params: dict[str, Any]

    @classmethod
    def collect(cls, stream: ClipStream) -> ClipResult:
        frames = list(stream.frames)
        return cls([f.image for f in frames], [f.face_boxes for f in frames], stream.params)


class CardTurns(Protocol):
    """The GPU a renderer's server renders on, taken for each render and lent out between them, while the
    caller scores and writes what came back (another step's render starts meanwhile)."""

    def reclaim(self) -> None: ...  # wait for the card again (no-op while held)

    def release(self) -> None: ...  # lend it out until the next reclaim (idempotent)


class KeptCard:
    """A card held for the renderer's whole session (a step's static pool, a card that also scores)."""

    def reclaim(self) -> None:
        pass

    def release(self) -> None:
        pass


class Renderer(Protocol):
    backend: str  # e.g. "previz (embedded, CPU)"
    device: str  # e.g. "cpu" or "cuda:0"
    version: str

    def render_still(self, request: StillRequest) -> StillResult: ...

    def stream_clip(self, request: ClipRequest) -> ClipStream: ...


class CollectsClips:
    """`render_clip`, the whole clip in memory, for renderers that stream: for short clips only
    (tests, reproductions compared frame by frame, metric benchmarks)."""

    def render_clip(self, request: ClipRequest) -> ClipResult:
        return ClipResult.collect(self.stream_clip(request))  # type: ignore[attr-defined]
