"""Adversarial clips for the temporal and identity gates, drawn with the previz look.

Every clip is built from PrevizRenderer stills (a character on the sample show's backdrop) that
are cropped, moved, faded, flashed or broken on purpose, and carries the decision each measure
must reach on it (`Clip.expect`: True = passes, False = fails; a measure not listed has no
stated expectation on that clip and is only reported). The decisions come from what the clip
*is* (a still, a steady pan, a flash), never from a measured value.

`measure` runs a clip through the gates' real measures (`MetricSuite.shot_measures`, and the
scene's identity-aware subject consistency) and `RULES` holds each gate's one rule: a threshold
and a direction, the same for every clip.

Shared by the adversarial test (tests/metrics/test_adversarial.py) and the margins script
(benchmarks/gate_margins.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from anime_pipeline.config.loader import load_show
from anime_pipeline.config.schema import Character, ShowConfig
from anime_pipeline.drawings import find_face
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.metrics.suite import (
    Anchor,
    Appearance,
    MetricSuite,
    PaletteIdentity,
)
from anime_pipeline.render.base import (
    REFERENCE_EXPRESSIONS,
    REFERENCE_POSES,
    ClipRequest,
    StillRequest,
)
from anime_pipeline.render.previz import PrevizRenderer

SHOW = Path(__file__).resolve().parents[2] / "project_configs" / "lantern_post.yaml"
FPS = 24
FRAMES = 48
SQUARE, WIDE = (256, 256), (360, 640)  # (height, width)
SHEET = (384, 256)  # a reference panel: the sample style's resolution halved, as character_reference renders it
NOISE_SIGMA = 0.01 * 255  # "1 % noise": Gaussian, per pixel and channel, new every frame
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Clip:
    """Frames (H × W × 3 uint8) at `fps`, the face box of `character` per frame (None where it
    is out of view) and the decision each measure must reach."""

    name: str
    frames: list[np.ndarray]
    expect: dict[str, bool]
    character: str = "mio"
    face_boxes: list[Box | None] = field(default_factory=list)
    fps: int = FPS


@cache
def show() -> ShowConfig:
    return load_show(SHOW)


def _character(slug: str = "mio") -> Character:
    return show().character(slug)


def _still(size: tuple[int, int], framing: str = "medium", slugs: tuple[str, ...] = ("mio",), seed: int = 3,
           overrides: tuple[tuple[str, str, str], ...] = (), pose: str = "front",
           expression: str = "neutral") -> tuple[np.ndarray, dict[str, Box]]:
    """A previz still of `size` (h, w) and its face boxes; overrides = (slug, role, #rrggbb)."""
    palette: dict[str, dict[str, str]] = {}
    for slug, role, colour in overrides:
        palette.setdefault(slug, {})[role] = colour
    request = StillRequest(characters=tuple(_character(s) for s in slugs), prompt="", negative_prompt="",
                           seed=seed, width=size[1], height=size[0], framing=framing, pose=pose,
                           expression=expression, background=tuple(show().world.palette), palette_overrides=palette)
    result = PrevizRenderer().render_still(request)
    return result.image, dict(result.face_boxes)


@cache
def anchor(slug: str = "mio") -> Anchor:
    """The character's identity anchor as character_embedding makes it from its reference sheet:
    the normalised means over previz stills of every pose (full body) and expression (portrait),
    each face found by the drawn-face finder."""
    stills = [_still(SHEET, "full_body", (slug,), pose=pose) for pose in REFERENCE_POSES]
    stills += [_still(SHEET, "portrait", (slug,), expression=expression) for expression in REFERENCE_EXPRESSIONS]
    colours = _character(slug).appearance.key_colors
    found = [(image, box) for image, _ in stills if (box := find_face(image, colours.skin, colours.eyes))]
    return Anchor(wf.anchor([wf.palette_signature(image, box) for image, box in found]),
                  signature=wf.anchor([wf.character_signature(image, box) for image, box in found]))


def _noisy(frames: list[np.ndarray], sigma: float, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def _shifted_box(box: Box | None, dy: float, dx: float, size: tuple[int, int]) -> Box | None:
    if box is None:
        return None
    x0, y0, x1, y1 = (round(v) for v in (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy))
    if x1 <= 0 or y1 <= 0 or x0 >= size[1] or y0 >= size[0]:
        return None
    return max(x0, 0), max(y0, 0), min(x1, size[1]), min(y1, size[0])


def _pan(size: tuple[int, int], speed: int, n: int = FRAMES) -> tuple[list[np.ndarray], list[Box | None]]:
    """A camera pan of `speed` px a frame to the right across a wide still of both characters."""
    canvas, boxes = _still((size[0], size[1] + speed * (n - 1)), framing="wide", slugs=("mio", "hoshi"))
    frames = [np.ascontiguousarray(canvas[:, t * speed:t * speed + size[1]]) for t in range(n)]
    return frames, [_shifted_box(boxes.get("mio"), 0, -t * speed, size) for t in range(n)]


def _zoom(size: tuple[int, int], rate: float = 0.004, n: int = FRAMES) -> tuple[list[np.ndarray], list[Box | None]]:
    """A slow push-in: frame t shows the central 1/(1 + rate·t) of the still, resized back."""
    still, boxes = _still(size)
    image = Image.fromarray(still)
    height, width = size
    frames, faces = [], []
    for t in range(n):
        scale = 1.0 + rate * t
        half_w, half_h = width / (2 * scale), height / (2 * scale)
        window = (width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h)
        frames.append(np.asarray(image.resize((width, height), Image.Resampling.BICUBIC, box=window)))
        x0, y0, x1, y1 = boxes["mio"]
        faces.append(tuple(round(v) for v in ((x0 - window[0]) * scale, (y0 - window[1]) * scale,
                                              (x1 - window[0]) * scale, (y1 - window[1]) * scale)))
    return frames, faces


def _layers(size: tuple[int, int], overrides: tuple[tuple[str, str, str], ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, Box]:
    """(backdrop, character drawing, its coverage 0–1, face box): the same still drawn with and
    without the character; where they differ is the character."""
    backdrop, _ = _still(size, slugs=())
    drawn, boxes = _still(size, overrides=overrides)
    coverage = (np.abs(drawn.astype(int) - backdrop).sum(axis=-1) > 0).astype(np.float32)
    return backdrop, drawn, coverage, boxes["mio"]


def _drift(size: tuple[int, int], speed: float, n: int = FRAMES) -> tuple[list[np.ndarray], list[Box | None]]:
    """The character drifting `speed` px a frame to the right (sub-pixel: resampled) in front
    of a backdrop that stays put."""
    backdrop, drawn, coverage, face = _layers(size)
    layer = np.concatenate([drawn.astype(np.float32) * coverage[..., None], coverage[..., None]], axis=-1)
    frames = []
    for t in range(n):
        moved = ndimage.shift(layer, (0, speed * t, 0), order=1, mode="constant")
        alpha = moved[..., 3:]
        frames.append(np.clip(backdrop * (1 - alpha) + moved[..., :3], 0, 255).round().astype(np.uint8))
    return frames, [_shifted_box(face, 0, speed * t, size) for t in range(n)]


def _fade(frames: list[np.ndarray]) -> list[np.ndarray]:
    n = len(frames)
    return [(f.astype(np.float32) * (1 - t / (n - 1))).round().astype(np.uint8) for t, f in enumerate(frames)]


def _white(frame: np.ndarray) -> np.ndarray:
    return np.full_like(frame, 255)


# The measures a clip's expectations name (`Clip.expect` keys)
FLOOR, STABILITY, FLICKER, TIMING, SMOOTHNESS, IDENTITY, SUBJECT = (
    "motion_floor", "temporal_stability", "temporal_flickering", "frame_timing", "motion_smoothness", "identity",
    "subject_consistency")
STEADY = {FLOOR: True, STABILITY: True, FLICKER: True, TIMING: True, SMOOTHNESS: True}  # any good moving clip


def _still_clip() -> Clip:
    still, boxes = _still(SQUARE)
    return Clip("still", [still] * FRAMES, {FLOOR: False, STABILITY: True, FLICKER: True, TIMING: True,
                                            IDENTITY: True, SUBJECT: True}, face_boxes=[boxes["mio"]] * FRAMES)


def _noisy_still() -> Clip:
    still, boxes = _still(SQUARE)
    return Clip("noisy still (1 % noise)", _noisy([still] * FRAMES, NOISE_SIGMA),
                {FLOOR: False, FLICKER: True, TIMING: True, IDENTITY: True, SUBJECT: True},
                face_boxes=[boxes["mio"]] * FRAMES)


def _one_pixel_loop() -> Clip:
    still, boxes = _still(SQUARE)
    shifted = np.ascontiguousarray(np.roll(still, 1, axis=1))
    return Clip("1-px loop", [still if t % 2 == 0 else shifted for t in range(FRAMES)],
                {FLOOR: False, FLICKER: True, IDENTITY: True}, face_boxes=[boxes["mio"]] * FRAMES)


def _two_frame_loop() -> Clip:
    first, boxes = _still(SQUARE, expression="neutral")
    second, _ = _still(SQUARE, expression="happy")
    return Clip("2-frame loop (two drawings)", [first if t % 2 == 0 else second for t in range(FRAMES)],
                {FLOOR: False}, face_boxes=[boxes["mio"]] * FRAMES)


def _pan_clip(size: tuple[int, int], speed: int) -> Callable[[], Clip]:
    def build() -> Clip:
        frames, faces = _pan(size, speed)
        return Clip(f"pan {speed} px/frame at {size[0]}x{size[1]}", frames, dict(STEADY), face_boxes=faces)
    return build


def _zoom_clip() -> Clip:
    frames, faces = _zoom(WIDE)
    return Clip("zoom (push-in 0.4 %/frame) at 360x640", frames, {**STEADY, IDENTITY: True, SUBJECT: True},
                face_boxes=faces)


def _drift_clip() -> Clip:
    frames, faces = _drift(WIDE, 0.5)
    return Clip("slow drift 0.5 px/frame at 360x640", frames, {**STEADY, IDENTITY: True, SUBJECT: True},
                face_boxes=faces)


def _single_flash() -> Clip:
    frames, faces = _pan(SQUARE, 4)
    frames[FRAMES // 2] = _white(frames[FRAMES // 2])
    return Clip("single white flash in a 4 px/frame pan", frames,
                {FLOOR: True, STABILITY: False, FLICKER: False, SMOOTHNESS: False}, face_boxes=faces)


def _alternating_flash() -> Clip:
    still, boxes = _still(SQUARE)
    return Clip("alternating flash on a still", [still if t % 2 == 0 else _white(still) for t in range(FRAMES)],
                {FLOOR: False, STABILITY: False, FLICKER: False, SMOOTHNESS: False}, face_boxes=[boxes["mio"]] * FRAMES)


def _dropped_frame() -> Clip:
    frames, faces = _pan(SQUARE, 4, FRAMES + 1)
    drop = FRAMES // 2
    return Clip("dropped frame in a 4 px/frame pan", frames[:drop] + frames[drop + 1:],
                {FLOOR: True, STABILITY: True, FLICKER: True, TIMING: False}, face_boxes=faces[:drop] + faces[drop + 1:])


def _duplicated_frame() -> Clip:
    frames, faces = _pan(SQUARE, 4, FRAMES - 1)
    held = FRAMES // 2
    return Clip("duplicated frame in a 4 px/frame pan", frames[:held + 1] + frames[held:],
                {FLOOR: True, STABILITY: True, FLICKER: True, TIMING: False}, face_boxes=faces[:held + 1] + faces[held:])


def _jump_cut() -> Clip:
    first, faces = _pan(SQUARE, 4, FRAMES // 2)
    other, _ = _still((SQUARE[0], SQUARE[1] + 4 * FRAMES), framing="close-up", slugs=("hoshi",), seed=11)
    second = [np.ascontiguousarray(other[:, t * 4:t * 4 + SQUARE[1]]) for t in range(FRAMES - FRAMES // 2)]
    return Clip("jump cut inside a 4 px/frame pan", first + second, {FLOOR: True, STABILITY: False},
                face_boxes=faces + [None] * len(second))


def _fade_to_black() -> Clip:
    still, boxes = _still(SQUARE)
    return Clip("fade to black of a still", _fade([still] * FRAMES), {FLOOR: False}, face_boxes=[boxes["mio"]] * FRAMES)


def _random_noise() -> Clip:
    rng = np.random.default_rng(5)
    return Clip("random noise", [rng.integers(0, 256, (*SQUARE, 3), dtype=np.uint8) for _ in range(FRAMES)],
                {FLOOR: False, STABILITY: False, SMOOTHNESS: False}, face_boxes=[None] * FRAMES)


def _colour_swap() -> Clip:
    """Halfway through, the character is drawn in the other character's hair, outfit and accent
    colours (skin and eyes stay, so the drawing is still found by them: identity must judge)."""
    other = _character("hoshi").appearance.key_colors
    swapped = tuple(("mio", role, getattr(other, role)) for role in ("hair", "outfit", "accent"))
    backdrop, drawn, coverage, face = _layers(WIDE)
    _, drawn_swapped, coverage_swapped, _ = _layers(WIDE, swapped)
    half = FRAMES // 2
    frames = []
    for t in range(FRAMES):
        layer, alpha = (drawn, coverage) if t < half else (drawn_swapped, coverage_swapped)
        frames.append(np.where(alpha[..., None] > 0, layer, backdrop).astype(np.uint8))
    return Clip("character colours swapped halfway", frames, {IDENTITY: False, SUBJECT: False},
                face_boxes=[face] * FRAMES)


def _previz(shot_type: str, slugs: tuple[str, ...], character: str, name: str) -> Callable[[], Clip]:
    """The previz renderer's own shot of the sample show: what the demo's gates see."""
    def build() -> Clip:
        request = ClipRequest(characters=tuple(_character(s) for s in slugs), shot_type=shot_type, prompt="",
                              motion_prompt="", negative_prompt="", seed=1, width=WIDE[1], height=WIDE[0], fps=FPS,
                              n_frames=FRAMES, background=tuple(show().world.palette))
        result = PrevizRenderer().render_clip(request)
        return Clip(name, result.frames, {**STEADY, IDENTITY: True, SUBJECT: True}, character=character,
                    face_boxes=[b.get(character) for b in result.face_boxes])
    return build


_previz_shot = _previz("medium", ("mio",), "mio", "previz medium shot (the demo's renderer)")


BUILDERS: tuple[Callable[[], Clip], ...] = (
    _still_clip, _noisy_still, _one_pixel_loop, _two_frame_loop,
    *(_pan_clip(size, speed) for size in (SQUARE, WIDE) for speed in (1, 4, 16)),
    _zoom_clip, _drift_clip, _single_flash, _alternating_flash, _dropped_frame, _duplicated_frame, _jump_cut,
    _fade_to_black, _random_noise, _colour_swap, _previz_shot,
    _previz("establishing", ("mio", "hoshi"), "hoshi", "previz establishing shot, the fox's small face"),
    _previz("action", ("mio", "hoshi"), "hoshi", "previz action shot (run cycle, camera shake), the fox"),
)


@cache
def all_clips() -> tuple[Clip, ...]:
    """Every adversarial clip, built once per process (about a second of drawing)."""
    return tuple(build() for build in BUILDERS)


@dataclass(frozen=True)
class Rule:
    """A gate's one rule: value ≥ threshold (`at_least`) or value ≤ threshold."""

    threshold: float
    at_least: bool

    def passes(self, value: float) -> bool:
        return value >= self.threshold if self.at_least else value <= self.threshold

    def margin(self, value: float) -> float:
        """How far past the threshold (> 0 passes), in the measure's own units."""
        return value - self.threshold if self.at_least else self.threshold - value


def rules() -> dict[str, Rule]:
    """Each measure's gate rule with the sample show's thresholds (`quality:`, the shot gates' own)."""
    quality = show().quality
    return {FLOOR: Rule(quality.min_moving_share, True), STABILITY: Rule(quality.temporal_lpips, False),
            FLICKER: Rule(quality.temporal_flickering, True), TIMING: Rule(quality.frame_timing, False),
            SMOOTHNESS: Rule(quality.motion_smoothness, True), IDENTITY: Rule(quality.identity.palette, True),
            SUBJECT: Rule(quality.subject_consistency, True)}


def measure(clip: Clip, suite: MetricSuite) -> dict[str, float]:
    """Each measure's gate value on a clip, as the shot gates (and the scene's subject
    consistency) compute it with `suite` (weight-free without installed weights)."""
    sheet = anchor(clip.character)
    boxes = [{clip.character: b} if b else {} for b in clip.face_boxes]
    measures = suite.shot_measures(clip.frames, clip.fps, boxes, {clip.character: sheet}, PaletteIdentity())
    colours = _character(clip.character).appearance.key_colors
    subject = suite.tracked_subject_consistency(clip.frames, {clip.character: Appearance(sheet, colours.skin, colours.eyes)},
                                                PaletteIdentity())
    return {FLOOR: measures.motion_floor.value, STABILITY: measures.temporal_stability.value,
            FLICKER: measures.temporal_flickering.value, TIMING: measures.frame_timing.value,
            SMOOTHNESS: measures.motion_smoothness.value, IDENTITY: measures.identity.value, SUBJECT: subject.value}
