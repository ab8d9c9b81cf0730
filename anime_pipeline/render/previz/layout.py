"""Framing and layout: where each character stands and how tall it is drawn, per framing
(establishing … extreme close-up), keeping relative heights on shared framings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anime_pipeline.render.previz.looks import Look, Pose
from anime_pipeline.render.previz.pen import Point


@dataclass(frozen=True)
class Framing:
    """How a framing places the cast: which part of the figure fills which rows of the frame."""

    shared: bool  # one scale for the whole cast (heights compare) or each character framed alone
    span: tuple[str, str]  # landmarks mapped onto `rows`
    rows: tuple[float, float]  # fractions of the frame height
    width: str  # which part of the figure must fit its slot: full, upper or head
    backdrop: str


FRAMINGS = {
    "establishing": Framing(True, ("top", "feet"), (0.52, 0.86), "full", "town"),
    "wide": Framing(True, ("top", "feet"), (0.14, 0.9), "full", "hill"),
    "action": Framing(True, ("top", "feet"), (0.26, 0.9), "full", "hill"),
    "full_body": Framing(True, ("top", "feet"), (0.07, 0.95), "full", "hill"),
    "medium": Framing(False, ("top", "waist"), (0.1, 1.0), "upper", "bokeh"),
    "portrait": Framing(False, ("top", "chest"), (0.1, 1.0), "upper", "bokeh"),
    "close-up": Framing(False, ("top", "shoulders"), (0.14, 1.0), "head", "bokeh"),
    "extreme_close-up": Framing(False, ("brow", "chin"), (0.16, 1.02), "head", "bokeh"),
}
_LANDMARKS = {
    True: {"top": -0.01, "brow": 0.115, "chin": 0.263, "shoulders": 0.36, "chest": 0.44, "waist": 0.55, "feet": 1.0},
    False: {"top": 0.0, "brow": 0.23, "chin": 0.49, "shoulders": 0.56, "chest": 0.64, "waist": 0.8, "feet": 1.0},
}


def _extent(look: Look, pose: Pose, part: str) -> tuple[float, float]:
    """How far the figure reaches left and right of its centre line (figure units), for the part
    that shows (full, upper or head): runners' legs and a fox's tail need room."""
    if look.human:
        half = {"full": 0.3 if pose.action else 0.2, "upper": 0.16, "head": 0.15}[part]
        return half, half
    if pose.action:
        left, right = {"full": (0.44, 0.6), "upper": (0.44, 0.6), "head": (0.27, 0.27)}[part]
    else:  # the tail curls up on the right: its tip belongs in the picture
        left, right = {"full": (0.28, 0.36 if pose.back else 0.52), "upper": (0.3, 0.5), "head": (0.27, 0.27)}[part]
    return (right, left) if pose.turn < 0 else (left, right)


def _landmark(look: Look, pose: Pose, name: str) -> float:
    lift = 0.17 if look.human and pose.sitting and name != "feet" else 0.0
    return _LANDMARKS[look.human][name] + lift


@dataclass(frozen=True)
class Placement:
    """Where one character is drawn."""

    origin: Point  # frame px of the figure's top-centre
    scale: float  # figure height in px


def place_cast(looks: Sequence[Look], poses: Sequence[Pose], framing: Framing, width: int, height: int,
               rng: np.random.Generator) -> list[Placement]:
    if not looks:
        return []
    if framing.shared:
        return _place_shared(looks, poses, framing, width, height, rng)
    slot = width / len(looks)
    placements = []
    for i, (look, pose) in enumerate(zip(looks, poses)):
        top, bottom = (_landmark(look, pose, name) for name in framing.span)
        scale = (framing.rows[1] - framing.rows[0]) * height / (bottom - top)
        scale = min(scale, 0.96 * slot / (2 * max(_extent(look, pose, framing.width))))
        x = (i + 0.5) * slot + rng.uniform(-0.02, 0.02) * slot
        placements.append(Placement((x, framing.rows[0] * height - top * scale), scale))
    return placements


def _place_shared(looks: Sequence[Look], poses: Sequence[Pose], framing: Framing, width: int, height: int,
                  rng: np.random.Generator) -> list[Placement]:
    """Everyone on one ground line at one scale, side by side, the group centred with a seeded nudge."""
    tallest = max(max(look.height for look in looks), 1.0)
    extents = [tuple(e * look.height for e in _extent(look, pose, framing.width)) for look, pose in zip(looks, poses)]
    centres = [0.0]
    for (_, right), (left, _) in zip(extents, extents[1:]):
        centres.append(centres[-1] + (right + left) * 1.1)
    low, high = -extents[0][0], centres[-1] + extents[-1][1]
    unit = min((framing.rows[1] - framing.rows[0]) * height / tallest, 0.92 * width / (high - low))
    middle = width / 2 + rng.uniform(-0.03, 0.03) * width
    ground = framing.rows[1] * height
    return [Placement((middle + (x - (low + high) / 2) * unit, ground - look.height * unit), look.height * unit)
            for x, look in zip(centres, looks)]


def framing_for(name: str) -> Framing:
    if name not in FRAMINGS:
        raise ValueError(f"unknown framing {name!r}; previz draws {sorted(FRAMINGS)}")
    return FRAMINGS[name]
