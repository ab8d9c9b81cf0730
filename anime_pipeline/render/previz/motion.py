"""Camera and motion presets per shot type: pans, zooms, sways, shake, breathing, blinks
and run cycles, bounded so long shots stay framed."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from anime_pipeline.render.previz.looks import POSES, Pose
from anime_pipeline.render.previz.pen import FBox, Point


@dataclass(frozen=True)
class Motion:
    """How a shot type moves: camera, cast and blinks."""

    description: str
    pan: float = 0.0  # camera travel, fraction of the width per second
    drift: float = 0.0  # a slow sideways sway of the camera, mean speed in widths per second
    zoom: float = 0.0  # zoom-in per second
    bob: float = 0.0  # breathing amplitude, fraction of the height
    travel: float = 0.0  # the cast runs across frame, fraction of the width per second
    shake: float = 0.0  # camera shake, px at most
    blink: tuple[float, ...] = (0.5, 1.0, 0.5)  # lid per frame of one blink; slower when eyes are big


# Speeds are tuned so a 24 fps clip clears the "not a still" floor (mean frame difference ≥ 0.002)
# while staying smooth: about a pixel of movement a frame at 640×360.
MOTIONS = {
    "establishing": Motion("slow pan across the scene; lanterns drift; blinks", pan=0.035),
    "wide": Motion("slow zoom-in with a gentle sideways drift; lanterns drift; blinks", drift=0.025, zoom=0.055),
    "medium": Motion("subtle breathing bob and blinks; the camera eases in and sways a little", drift=0.014,
                     zoom=0.025, bob=0.008),
    "close-up": Motion("slow push-in, breathing, blinks", drift=0.01, zoom=0.035, bob=0.006,
                       blink=(0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25)),
    "extreme_close-up": Motion("very slow zoom, slow blink", drift=0.004, zoom=0.02,
                               blink=(0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 0.875, 0.75, 0.625, 0.5,
                                      0.375, 0.25, 0.125)),
    "action": Motion("cast runs across frame with a run cycle; small camera shake", travel=0.15, shake=1.5),
}
MAX_ZOOM, MAX_PAN, MAX_TRAVEL = 0.15, 0.35, 0.45  # totals per clip, so long shots stay framed
DRIFT_PERIOD = 8.0  # seconds; a sway rather than a pan, so long shots never drift off their layout
RUN_CYCLE = 2.0  # strides per second
DRAWN_LIDS = (0.0, 0.5, 1.0)  # other lid positions are cross-fades of these
CONTINUITY_FRAMES = 6


def plan_blinks(rng: np.random.Generator, n_frames: int, fps: int, stages: tuple[float, ...]) -> list[float]:
    """Lid per frame. Blinks finish before the last frames: a clip's last frame may start the next
    shot (continuity), and there the cast should be found with open eyes."""
    lids = [0.0] * n_frames
    t = rng.uniform(0.3, 1.2)
    while (start := int(t * fps)) + len(stages) < n_frames - 1:
        lids[start:start + len(stages)] = stages
        t += rng.uniform(2.2, 4.0)
    return lids


def clip_poses(shot_type: str, count: int, direction: int) -> list[Pose]:
    """Runners face where they run; in two-shots the outer characters turn towards each other."""
    if shot_type == "action":
        pose = POSES["action"]
        return [pose if direction < 0 else replace(pose, turn=-pose.turn)] * count
    if count == 1 or shot_type == "establishing":
        return [POSES["front"]] * count
    return [POSES["three-quarter right"]] + [POSES["front"]] * (count - 2) + [POSES["three-quarter left"]]


@dataclass(frozen=True)
class Camera:
    """Where the frame looks into the (slightly larger) canvas at time t."""

    frame: tuple[int, int]
    margin: tuple[int, int]
    direction: int
    pan: float  # px over the clip
    drift: float  # px amplitude
    drift_phase: float
    zoom: float  # total zoom-in over the clip
    shake: float

    @classmethod
    def plan(cls, motion: Motion, frame: tuple[int, int], duration: float, direction: int) -> Camera:
        width = frame[0]
        pan = min(motion.pan * duration, MAX_PAN) * width
        drift = motion.drift * width * DRIFT_PERIOD / 4  # amplitude whose mean speed is `motion.drift`
        margin = (math.ceil(pan / 2 + drift + motion.shake) + 1, math.ceil(motion.shake) + 1)
        # The sway passes its fastest point mid-clip, so short clips always see it move.
        return cls(frame, margin, direction, pan, drift, -math.pi * duration / DRIFT_PERIOD,
                   min(motion.zoom * duration, MAX_ZOOM), motion.shake)

    def box(self, t: float, progress: float, focus: Point, rng: np.random.Generator) -> FBox:
        """`progress` runs -0.5 .. 0.5 over the clip, so moves are centred on the layout."""
        width, height = self.frame
        x0 = self.margin[0] + self.direction * progress * self.pan
        x0 += self.direction * self.drift * math.sin(2 * math.pi * t / DRIFT_PERIOD + self.drift_phase)
        y0 = float(self.margin[1])
        z = 1 + self.zoom * (progress + 0.5)
        fx = min(max(focus[0], x0), x0 + width)  # zoom about the cast, keeping the frame inside the canvas
        fy = min(max(focus[1], y0), y0 + height)
        x0, y0 = fx - (fx - x0) / z, fy - (fy - y0) / z
        if self.shake:
            x0 += rng.uniform(-self.shake, self.shake)
            y0 += rng.uniform(-self.shake, self.shake)
        return x0, y0, x0 + width / z, y0 + height / z
