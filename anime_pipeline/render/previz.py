"""The embedded default renderer: deterministic CPU "previz" drawings of the cast.

It stands in for ComfyUI when no GPU exists, so a newcomer gets real, watchable files on
the first run, always labelled previz. Each character is drawn from its appearance data
(key colours, species, height, key features) with numpy and Pillow only.

Identity is later measured by comparing colour histograms of the face box with the
character's references, so the face box is the drawn head, tightly, and the head is
painted in the character's own skin, hair and eye colours.

Speed: a clip draws its background and character sprites once, then each frame is a copy
of the background, a few alpha pastes and one resampled crop for the camera.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from anime_pipeline.config.schema import Character
from anime_pipeline.render.base import Box, ClipRequest, ClipResult, StillRequest, StillResult

RGB = tuple[int, int, int]
Point = tuple[float, float]
FBox = tuple[float, float, float, float]

ROLES = ("hair", "skin", "eyes", "outfit", "accent")
SUPERSAMPLE = 2
DEFAULT_BACKGROUND = ("#2b3350", "#4a5a8a", "#e9b872", "#f6e3b4", "#9cc3e4")
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
INK: RGB = (46, 32, 44)
MOUTH: RGB = (128, 40, 52)
TONGUE: RGB = (232, 120, 124)
BLUSH: RGB = (255, 110, 135)


# -- colours and hashing ---------------------------------------------------------------

def _rgb(value: str) -> RGB:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError(f"{value!r} is not a colour: write it as #rrggbb")
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def _hex(color: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(color: RGB, factor: float) -> RGB:
    """factor < 1 darkens towards black, > 1 lightens towards white."""
    return _mix(color, BLACK, 1 - factor) if factor < 1 else _mix(color, WHITE, factor - 1)


def _luma(color: RGB) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


def _unit_hash(*parts: object) -> float:
    """A stable float in [0, 1): Python's hash() is salted per process, so it can't be used."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Independent deterministic streams, so adding draws to one never shifts another."""
    return np.random.default_rng([seed % 2**63, int(_unit_hash(stream) * 2**32)])


# -- what to draw: looks, poses, expressions --------------------------------------------

_FEATURE_PATTERNS = {
    "ears": r"\bears?\b",
    "tail": r"\btail\b",
    "hat": r"\b(cap|hat|beret)\b",
    "bag": r"\b(satchel|bag|backpack)\b",
    "glasses": r"\b(glasses|spectacles)\b",
    "scarf": r"\bscarf\b",
    "horns": r"\bhorns?\b",
    "bob": r"\bbob\b",
    "long_hair": r"\blong hair\b",
    "ponytail": r"\bponytail\b",
}


@dataclass(frozen=True)
class _Look:
    slug: str
    human: bool
    height: float
    colors: dict[str, RGB]
    features: frozenset[str]
    not_drawn: tuple[str, ...]

    @property
    def hair_style(self) -> str:
        for style in ("ponytail", "long_hair", "bob"):
            if style in self.features:
                return style
        return "short"

    def has(self, feature: str) -> bool:
        return feature in self.features


def _parse_features(features: Sequence[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    found: set[str] = set()
    not_drawn = []
    for text in features:
        lower = text.lower()
        hits = {name for name, pattern in _FEATURE_PATTERNS.items() if re.search(pattern, lower)}
        if "tail" in hits and re.search(r"\bglow", lower):
            hits.add("tail_glow")
        found |= hits
        if not hits:
            not_drawn.append(text)
    return frozenset(found), tuple(not_drawn)


def _resolve_look(character: Character, overrides: dict[str, dict[str, str]], outfit: str) -> _Look:
    appearance = character.appearance
    keys = appearance.key_colors
    colors = {role: _rgb(getattr(keys, role)) for role in ROLES if getattr(keys, role)}
    colors.setdefault("accent", _shade(colors["eyes"], 1.3))
    for role, value in overrides.get(character.slug, {}).items():
        if role not in ROLES:
            raise ValueError(f"palette override for {character.slug!r} names role {role!r}; roles are {ROLES}")
        colors[role] = _rgb(value)
    if outfit.strip().lower() not in ("", "default outfit"):
        # Outfits share the key colour: a small, stable shade shift keeps identity readable.
        colors["outfit"] = _shade(colors["outfit"], 1 + (_unit_hash("outfit", outfit) - 0.5) * 0.16)
    features, not_drawn = _parse_features(appearance.key_features)
    return _Look(character.slug, appearance.is_human, appearance.height, colors, features, not_drawn)


@dataclass(frozen=True)
class _Pose:
    name: str
    base: str
    turn: float = 0.0  # 0 front, 0.5 three-quarter, 1 profile; > 0 faces image left
    back: bool = False
    sitting: bool = False
    action: bool = False
    arm: float = 0.0  # how far the near hand is raised (variation for free-text poses)
    lean: float = 0.0


_POSES = {
    "front": _Pose("front", "front"),
    "three-quarter left": _Pose("three-quarter left", "three-quarter left", turn=0.5),
    "profile left": _Pose("profile left", "profile left", turn=1.0),
    "back": _Pose("back", "back", back=True),
    "three-quarter right": _Pose("three-quarter right", "three-quarter right", turn=-0.5),
    "profile right": _Pose("profile right", "profile right", turn=-1.0),
    "sitting": _Pose("sitting", "sitting", turn=0.15, sitting=True),
    "action": _Pose("action", "action", turn=0.6, action=True, lean=0.12),
}
_POSE_WORDS = (
    (r"run|leap|jump|dash|fight|chase|fly", "action"),
    (r"sit|curl|kneel|crouch|rest", "sitting"),
    (r"\bback\b|behind|away", "back"),
)


def _resolve_pose(name: str) -> _Pose:
    key = name.strip().lower()
    if key in _POSES:
        return _POSES[key]
    base = next((b for pattern, b in _POSE_WORDS if re.search(pattern, key)), "front")
    pose = _POSES[base]
    turn = pose.turn if pose.back else max(-1.0, min(1.0, pose.turn + (_unit_hash("turn", key) - 0.5) * 0.5))
    return replace(pose, name=name, turn=turn, arm=_unit_hash("arm", key) * 0.9,
                   lean=pose.lean + (_unit_hash("lean", key) - 0.5) * 0.08)


@dataclass(frozen=True)
class _Expression:
    name: str
    base: str
    brow: float = 0.0  # inner-end tilt: > 0 raised (worried), < 0 lowered (angry)
    lift: float = 0.0  # both brows raised
    mouth: str = "line"
    mouth_width: float = 1.0
    eye_scale: float = 1.0
    iris_scale: float = 1.0
    lid_inner: float = 0.0  # upper lid slant, fraction of the eye covered at the inner corner
    lid_outer: float = 0.0
    gaze: float = 0.0
    blush: bool = False
    emote: str = ""


_EXPRESSIONS = {
    "neutral": _Expression("neutral", "neutral"),
    "happy": _Expression("happy", "happy", lift=0.004, mouth="smile", eye_scale=0.92, emote="sparkle"),
    "sad": _Expression("sad", "sad", brow=0.014, mouth="frown", eye_scale=0.95, lid_outer=0.3, emote="gloom"),
    "angry": _Expression("angry", "angry", brow=-0.016, mouth="shout", lid_inner=0.35, emote="vein"),
    "surprised": _Expression("surprised", "surprised", lift=0.014, mouth="o", eye_scale=1.12, iris_scale=0.72,
                             emote="shock"),
    "embarrassed": _Expression("embarrassed", "embarrassed", brow=0.009, mouth="wavy", gaze=0.45, blush=True,
                               emote="sweat"),
}
_EXPRESSION_WORDS = (
    (r"smil|grin|laugh|cheer|joy|happ|delight", "happy"),
    (r"sad|cry|tear|gloom|sleepy|tired|lonely", "sad"),
    (r"ang|determin|fierce|mad\b|annoy|furious", "angry"),
    (r"surpris|shock|alert|startl|gasp|puzzl", "surprised"),
    (r"blush|shy|embarr|flust", "embarrassed"),
)


def _expression_base(text: str) -> str:
    return next((b for pattern, b in _EXPRESSION_WORDS if re.search(pattern, text.lower())), "neutral")


def _resolve_expression(name: str) -> _Expression:
    key = name.strip().lower()
    if key in _EXPRESSIONS:
        return _EXPRESSIONS[key]
    expression = _EXPRESSIONS[_expression_base(key)]
    return replace(expression, name=name, brow=expression.brow + (_unit_hash("brow", key) - 0.5) * 0.01,
                   mouth_width=0.8 + 0.4 * _unit_hash("mouth", key),
                   eye_scale=expression.eye_scale * (0.95 + 0.1 * _unit_hash("eyes", key)))


# -- the pen: figure units to pixels ------------------------------------------------------

class _Pen:
    """Draws in figure units: x from the centre line, y down from the top, 1 = figure height.

    `mirror` flips x so every pose is designed facing image left; `skew` leans the body
    about the hips for action poses.
    """

    def __init__(self, image: Image.Image, origin: Point, scale: float, mirror: bool, ss: int):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.ox, self.oy = origin
        self.s = scale
        self.m = -1.0 if mirror else 1.0
        self.skew = 0.0
        self.pivot = 0.57
        # Outlines thin out relative to the figure in close-ups, as in anime line art.
        self.lw = max(1, round(ss * min(0.006 * scale / ss, 3.5)))

    def pt(self, x: float, y: float) -> Point:
        return self.ox + self.m * (x + self.skew * (self.pivot - y)) * self.s, self.oy + y * self.s

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: Any, outline: RGB | None = None) -> None:
        x, y = self.pt(cx, cy)
        a, b = max(rx * self.s, 0.5), max(ry * self.s, 0.5)
        self.draw.ellipse((x - a, y - b, x + a, y + b), fill=fill, outline=outline, width=self.lw)

    def polygon(self, points: Sequence[Point], fill: Any, outline: RGB | None = None) -> None:
        self.draw.polygon([self.pt(*p) for p in points], fill=fill, outline=outline, width=self.lw)

    def line(self, points: Sequence[Point], fill: RGB, width: float) -> None:
        self.draw.line([self.pt(*p) for p in points], fill=fill, width=max(1, round(width * self.s)), joint="curve")

    def stroke(self, points: Sequence[Point], fill: RGB, width: float, outline: RGB) -> None:
        """A round-capped limb with a dark rim: a wider dark stroke under the coloured one."""
        for color, w in ((outline, width + 2 * self.lw / self.s), (fill, width)):
            self.line(points, color, w)
            for x, y in (points[0], points[-1]):
                self.ellipse(x, y, w / 2, w / 2, color)

    def glow(self, cx: float, cy: float, radius: float, color: RGB) -> None:
        x, y = self.pt(cx, cy)
        r = radius * self.s
        size = int(r * 5) + 4
        layer = Image.new("RGBA", (size, size), color + (0,))
        c = size / 2
        ImageDraw.Draw(layer).ellipse((c - r, c - r, c + r, c + r), fill=color + (210,))
        layer = layer.filter(ImageFilter.GaussianBlur(r * 0.7))
        self.image.alpha_composite(layer, (int(x - c), int(y - c)))

    def bounds(self, points: Sequence[Point]) -> FBox:
        xs, ys = zip(*(self.pt(*p) for p in points))
        return min(xs), min(ys), max(xs), max(ys)


def _outline(color: RGB) -> RGB:
    return _mix(_shade(color, 0.42), INK, 0.35)


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> list[Point]:
    """Points on an ellipse from angle `start` to `end` (radians, 0 = right, pi/2 = down)."""
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(start, end, n)]


def _bezier(p0: Point, p1: Point, p2: Point, n: int) -> list[Point]:
    return [((1 - s) ** 2 * p0[0] + 2 * (1 - s) * s * p1[0] + s * s * p2[0],
             (1 - s) ** 2 * p0[1] + 2 * (1 - s) * s * p1[1] + s * s * p2[1]) for s in np.linspace(0, 1, n)]


def _brush(path: list[Point], width: float, start: float = 0.0) -> list[Point]:
    """A tapered, fluffy outline around a path (tails, ponytails); `start` trims the base."""
    left, right = [], []
    n = len(path)
    for i, (x, y) in enumerate(path):
        s = i / (n - 1)
        if s < start:
            continue
        nx, ny = path[min(i + 1, n - 1)][0] - path[max(i - 1, 0)][0], path[min(i + 1, n - 1)][1] - path[max(i - 1, 0)][1]
        norm = math.hypot(nx, ny) or 1.0
        w = width * math.sin(math.pi * (0.12 + 0.88 * s)) ** 0.6
        left.append((x - ny / norm * w, y + nx / norm * w))
        right.append((x + ny / norm * w, y - nx / norm * w))
    return left + right[::-1]


def _polar(origin: Point, angle: float, length: float) -> Point:
    """A point `length` away at `angle` from straight down (positive angles swing towards +x)."""
    return origin[0] + math.sin(angle) * length, origin[1] + math.cos(angle) * length


# -- faces --------------------------------------------------------------------------------

def _eye(pen: _Pen, x: float, y: float, rx: float, ry: float, look: _Look, ex: _Expression,
         lid: float, inner: float, skin: RGB) -> None:
    """One anime eye; `lid` closes it (0 open, 1 shut), `inner` is the side of the nose (+1/-1)."""
    eye = look.colors["eyes"]
    ry *= ex.eye_scale
    cover_in = lid + (1 - lid) * ex.lid_inner
    cover_out = lid + (1 - lid) * ex.lid_outer
    if min(cover_in, cover_out) >= 0.95:
        pen.line([(x - rx, y + ry * 0.15), (x, y + ry * 0.5), (x + rx, y + ry * 0.15)], INK, ry * 0.22)
        return
    pen.ellipse(x, y, rx, ry, (252, 252, 255))
    ix, iy = x + ex.gaze * rx * 0.35 * -inner, y + ry * 0.08
    irx, iry = rx * 0.84 * ex.iris_scale, ry * 0.86 * ex.iris_scale
    pen.ellipse(ix, iy, irx, iry, eye, _shade(eye, 0.45))
    pen.ellipse(ix, iy + iry * 0.45, irx * 0.72, iry * 0.42, _mix(eye, WHITE, 0.35))
    pen.ellipse(ix, iy - iry * 0.08, irx * 0.45, iry * 0.5, _shade(eye, 0.3))
    pen.ellipse(ix - irx * 0.35, iy - iry * 0.42, irx * 0.32, irx * 0.32, WHITE)
    pen.ellipse(ix + irx * 0.38, iy + iry * 0.38, irx * 0.15, irx * 0.15, WHITE)
    xi, xo = x + inner * rx * 1.1, x - inner * rx * 1.1
    yi, yo = y - ry + 2 * ry * cover_in, y - ry + 2 * ry * cover_out
    top = y - ry * 1.35
    if max(cover_in, cover_out) > 0:
        pen.polygon([(xi, top), (xo, top), (xo, yo), (xi, yi)], skin)
    arch = ry * 0.25 * (1 - max(cover_in, cover_out))
    pen.line([(xi, yi), ((xi + xo) / 2, (yi + yo) / 2 - arch), (xo, yo), (xo - inner * rx * 0.25, yo - ry * 0.2)],
             INK, ry * 0.26)
    if max(cover_in, cover_out) < 0.6:
        pen.line([(x - rx * 0.55, y + ry * 0.98), (x + rx * 0.55, y + ry * 0.98)], _shade(skin, 0.55), ry * 0.08)


def _brows(pen: _Pen, centers: Sequence[tuple[float, float]], y: float, size: float, ex: _Expression,
           color: RGB) -> None:
    """`centers` are (x, inner side) per eye; brows tilt by expression."""
    y -= ex.lift
    for x, inner in centers:
        xi, xo = x + inner * size * 0.35, x - inner * size * 0.9
        pen.line([(xi, y - ex.brow), ((xi + xo) / 2, y - ex.brow / 2 - size * 0.12), (xo, y + size * 0.05)],
                 color, size * 0.22)


def _mouth(pen: _Pen, x: float, y: float, w: float, ex: _Expression, skin: RGB) -> None:
    w *= ex.mouth_width
    line = _shade(skin, 0.4)
    if ex.mouth == "smile":
        pen.polygon([(x - w * 0.7, y - w * 0.1)] + _ellipse_points(x, y - w * 0.1, w * 0.7, w * 0.65, 0, math.pi)[::-1]
                    + [(x + w * 0.7, y - w * 0.1)], MOUTH, _outline(MOUTH))
        pen.ellipse(x, y + w * 0.32, w * 0.35, w * 0.18, TONGUE)
    elif ex.mouth == "frown":
        pen.line([(x - w * 0.55, y + w * 0.2), (x, y - w * 0.12), (x + w * 0.55, y + w * 0.2)], line, w * 0.16)
    elif ex.mouth == "shout":
        pen.polygon([(x - w * 0.7, y - w * 0.15), (x + w * 0.7, y - w * 0.15), (x + w * 0.4, y + w * 0.5),
                     (x - w * 0.4, y + w * 0.5)], MOUTH, _outline(MOUTH))
        pen.polygon([(x - w * 0.6, y - w * 0.1), (x + w * 0.6, y - w * 0.1), (x + w * 0.55, y + w * 0.05),
                     (x - w * 0.55, y + w * 0.05)], WHITE)
    elif ex.mouth == "o":
        pen.ellipse(x, y + w * 0.1, w * 0.28, w * 0.38, MOUTH, _outline(MOUTH))
    elif ex.mouth == "wavy":
        pen.line([(x - w * 0.6 + i * w * 0.3, y + (0.1 if i % 2 else -0.05) * w) for i in range(5)], line, w * 0.13)
    else:
        pen.line([(x - w * 0.5, y), (x, y + w * 0.14), (x + w * 0.5, y)], line, w * 0.15)


def _emote(pen: _Pen, kind: str, x: float, y: float, size: float) -> None:
    """Manga symbols beside the head: they make expressions readable even from behind."""
    if kind == "sparkle":
        for dx, dy, k in ((0, 0, 1.0), (size * 1.1, size * 0.9, 0.6), (-size * 0.2, size * 1.5, 0.45)):
            r = size * 0.55 * k
            star = [(x + dx + r * math.cos(a) * (1 if i % 2 == 0 else 0.3), y + dy + r * math.sin(a) * (1 if i % 2 == 0 else 0.3))
                    for i, a in enumerate(np.linspace(0, 2 * math.pi, 9)[:-1] - math.pi / 2)]
            pen.polygon(star, (255, 232, 120), (200, 150, 40))
    elif kind == "vein":
        g, reach = size * 0.2, size * 0.7
        for sx in (-1, 1):
            for sy in (-1, 1):
                pen.line([(x + sx * g, y + sy * reach), (x + sx * g, y + sy * g), (x + sx * reach, y + sy * g)],
                         (226, 48, 70), size * 0.22)
    elif kind == "shock":
        for angle in (-0.5, 0.0, 0.5):
            pen.line([_polar((x, y + size), math.pi - angle, size * 0.8), _polar((x, y + size), math.pi - angle, size * 1.6)],
                     INK, size * 0.16)
    elif kind == "gloom":
        for i in range(3):
            cx = x + (i - 1) * size * 0.5
            pen.line([(cx + (0.08 if j % 2 else -0.08) * size, y + j * size * 0.35) for j in range(5)],
                     (110, 125, 175), size * 0.1)
    elif kind == "sweat":
        pen.polygon([(x, y)] + _ellipse_points(x, y + size * 0.9, size * 0.35, size * 0.4, -0.3, math.pi + 0.3),
                    (175, 220, 250), (70, 120, 170))


# -- humans -------------------------------------------------------------------------------

def _draw_human(pen: _Pen, look: _Look, pose: _Pose, ex: _Expression, lid: float, phase: float) -> FBox:
    c = look.colors
    t = abs(pose.turn)
    dy = 0.17 if pose.sitting else 0.0
    pen.ellipse(0, 0.985, 0.16, 0.02, (0, 0, 0, 60))
    if pose.sitting:
        pen.polygon([(-0.12, 0.77), (0.12, 0.77), (0.12, 1.0), (-0.12, 1.0)], (150, 112, 78), (80, 56, 40))
    hx, hy = 0.0, 0.135 + dy
    pen.skew = pose.lean
    if not pose.back:
        _back_hair(pen, look, t, hx, hy)
    if look.has("tail"):
        pen.polygon(_brush(_bezier((0.05, 0.55 + dy), (0.3, 0.6 + dy), (0.24, 0.32 + dy), 14), 0.035),
                    c["hair"], _outline(c["hair"]))
    arms = _arm_paths(pose, phase, dy, t)
    if t > 0.2 and not pose.back:
        _arm(pen, look, arms[0])
    _legs(pen, look, pose, phase, dy, t)
    _torso(pen, look, pose, dy, t)
    for arm in arms if (t <= 0.2 or pose.back) else arms[1:]:
        _arm(pen, look, arm)
    if look.has("scarf"):
        _scarf(pen, c["accent"], dy, pose.back)
    pen.stroke([(hx - t * 0.01, 0.24 + dy), (hx - t * 0.01, 0.29 + dy)], _shade(c["skin"], 0.88), 0.042,
               _outline(c["skin"]))
    if pose.back:
        return _human_head_back(pen, look, ex, hx, hy)
    return _human_head(pen, look, pose, ex, lid, hx, hy, t)


def _back_hair(pen: _Pen, look: _Look, t: float, hx: float, hy: float) -> None:
    hair = _shade(look.colors["hair"], 0.85)
    line = _outline(look.colors["hair"])
    style, bx = look.hair_style, hx + t * 0.03
    if style == "long_hair":
        pen.polygon(_ellipse_points(bx, hy, 0.135, 0.14, math.pi, 2 * math.pi) + [(bx + 0.15, 0.48 + hy - 0.135), (bx + 0.05, 0.5 + hy - 0.135),
                    (bx - 0.05, 0.49 + hy - 0.135), (bx - 0.15, 0.47 + hy - 0.135)], hair, line)
    elif style == "ponytail":
        pen.polygon(_brush(_bezier((bx + 0.06, hy - 0.1), (bx + 0.24, hy - 0.06), (bx + 0.16, hy + 0.27), 14), 0.06, 0.05),
                    hair, line)
        pen.ellipse(bx + 0.09, hy - 0.1, 0.022, 0.022, look.colors["accent"], _outline(look.colors["accent"]))
    elif style == "bob":
        pen.polygon(_ellipse_points(bx, hy, 0.13, 0.135, math.pi, 2 * math.pi)
                    + [(bx + 0.145, hy + 0.13), (bx + 0.08, hy + 0.12), (bx - 0.08, hy + 0.12), (bx - 0.145, hy + 0.13)],
                    hair, line)
    else:
        pen.ellipse(bx, hy - 0.005, 0.128, 0.125, hair, line)


def _human_head(pen: _Pen, look: _Look, pose: _Pose, ex: _Expression, lid: float, hx: float, hy: float,
                t: float) -> FBox:
    c = look.colors
    skin, rx, ry = c["skin"], 0.118, 0.128
    face = []
    for a in np.linspace(0, 2 * math.pi, 48, endpoint=False):
        x, y = rx * math.sin(a), -ry * math.cos(a)
        if y > 0:  # a softer, pointed anime chin that turns with the head
            x = x * (1 - 0.28 * (y / ry) ** 1.5) - t * 0.3 * rx * (y / ry) ** 2
        face.append((hx + x, hy + y))
    if t > 0.85:
        face = [(x - (0.012 if abs(y - hy - 0.05) < 0.02 and x < hx else 0.0), y) for x, y in face]
    if look.has("ears"):
        _animal_ears(pen, look, hx + t * 0.02, hy - ry * 0.55, 0.62, inner=True)
    pen.polygon(face, skin, _outline(skin))
    fx = hx - t * rx * 0.48  # the face's centre line turns towards where the character looks
    eyes = _eye_layout(fx, t, 0.05, 0.025)
    for x, inner, k in eyes:
        _eye(pen, x, hy + 0.025, 0.025 * k, 0.033, look, ex, lid, inner, skin)
    if ex.blush:
        for x, _, k in eyes:
            pen.ellipse(x + 0.004, hy + 0.068, 0.022 * k, 0.01, _mix(skin, BLUSH, 0.45))
    _brows(pen, [(x, inner) for x, inner, _ in eyes], hy - 0.022, 0.035, ex, _shade(c["hair"], 0.7))
    nose_x = fx - t * 0.02
    pen.line([(nose_x, hy + 0.058), (nose_x - 0.004, hy + 0.064)], _shade(skin, 0.7), 0.005)
    _mouth(pen, fx - t * 0.012, hy + 0.094, 0.03, ex, skin)
    _front_hair(pen, look, hx, hy, rx, ry, t)
    if look.has("glasses"):
        for x, _, k in eyes:
            pen.ellipse(x, hy + 0.025, 0.036 * k, 0.034, None, INK)
        if len(eyes) == 2:
            pen.line([(eyes[0][0] + 0.036 * eyes[0][2], hy + 0.02), (eyes[1][0] - 0.036 * eyes[1][2], hy + 0.02)], INK, 0.004)
    if look.has("horns"):
        _horns(pen, look, hx + t * 0.02, hy - ry * 0.75)
    if look.has("hat"):
        _cap(pen, look, hx, hy, rx, ry, t)
    _emote(pen, ex.emote, hx + rx * 1.45, hy - ry * 0.9, 0.045)
    return pen.bounds([(hx - rx * 1.1, hy - ry * 0.9), (hx + rx * 1.1, hy + ry)])


def _eye_layout(fx: float, t: float, spread: float, rx: float) -> list[tuple[float, float, float]]:
    """(x, inner side, width factor) per visible eye: the far eye narrows, then hides in profile."""
    if t > 0.85:
        return [(fx + spread * 0.2, 1.0, 0.75)]
    d = spread * (1 - 0.25 * t)
    return [(fx - d, 1.0, 1 - 0.45 * t), (fx + d, -1.0, 1.0)]


def _front_hair(pen: _Pen, look: _Look, hx: float, hy: float, rx: float, ry: float, t: float) -> None:
    hair, line = look.colors["hair"], _outline(look.colors["hair"])
    bx = hx + t * 0.03
    style = look.hair_style
    fringe_y = hy - 0.035
    tips = np.linspace(-rx * 1.02, rx * 1.02, 7)
    fringe = []
    for i, x in enumerate(tips):
        x += -t * 0.02 * (1 - abs(x) / rx)
        fringe.append((bx + x, fringe_y + (0.012 if i % 2 else -0.018) + (0.008 if 0 < i < 6 else 0.02)))
    cap = _ellipse_points(bx, hy - 0.004, rx * 1.1, ry * 1.08, math.pi * 1.02, math.pi * 1.98, 20)
    pen.polygon(cap + fringe[::-1], hair, line)
    lock_end = {"short": 0.06, "ponytail": 0.07, "bob": 0.13, "long_hair": 0.2}[style]
    for side in (-1, 1):
        if t > 0.85 and side < 0:
            continue
        sx = bx + side * rx * 1.06
        pen.polygon([(sx, hy - 0.05), (sx - side * 0.04, hy - 0.02), (sx - side * 0.025, hy + lock_end),
                     (sx + side * 0.005, hy + lock_end - 0.02)], hair, line)
    pen.line(_ellipse_points(bx, hy - 0.004, rx * 0.85, ry * 0.82, math.pi * 1.2, math.pi * 1.45, 6),
             _mix(hair, WHITE, 0.35), 0.012)


def _human_head_back(pen: _Pen, look: _Look, ex: _Expression, hx: float, hy: float) -> FBox:
    hair, line = look.colors["hair"], _outline(look.colors["hair"])
    rx, ry = 0.128, 0.138
    if look.has("ears"):
        _animal_ears(pen, look, hx, hy - ry * 0.5, 0.62, inner=False)
    style = look.hair_style
    bottom = {"short": 0.09, "ponytail": 0.09, "bob": 0.13, "long_hair": 0.36}[style]
    width = 0.15 if style != "short" else 0.132
    pen.polygon(_ellipse_points(hx, hy, rx, ry, math.pi, 2 * math.pi, 20)
                + [(hx + width, hy + bottom), (hx, hy + bottom + 0.01), (hx - width, hy + bottom)], hair, line)
    if style == "ponytail":
        pen.polygon(_brush(_bezier((hx, hy - 0.06), (hx + 0.05, hy + 0.15), (hx - 0.01, hy + 0.32), 12), 0.05, 0.05),
                    hair, line)
        pen.ellipse(hx, hy - 0.05, 0.022, 0.022, look.colors["accent"], _outline(look.colors["accent"]))
    pen.line(_ellipse_points(hx, hy, rx * 0.8, ry * 0.8, math.pi * 1.25, math.pi * 1.6, 6), _mix(hair, WHITE, 0.35), 0.012)
    if look.has("horns"):
        _horns(pen, look, hx, hy - ry * 0.75)
    if look.has("hat"):
        _cap(pen, look, hx, hy, 0.118, 0.128, 0.0, back=True)
    _emote(pen, ex.emote, hx + rx * 1.45, hy - ry * 0.9, 0.045)
    return pen.bounds([(hx - rx * 1.05, hy - ry * 0.85), (hx + rx * 1.05, hy + ry)])


def _cap(pen: _Pen, look: _Look, hx: float, hy: float, rx: float, ry: float, t: float, back: bool = False) -> None:
    outfit, accent = look.colors["outfit"], look.colors["accent"]
    base = hy - ry * 0.62
    crown = _ellipse_points(hx + t * 0.02, base, rx * 1.08, ry * 0.62, math.pi, 2 * math.pi, 18)
    pen.polygon(crown, outfit, _outline(outfit))
    pen.line([(hx - rx * 1.04 + t * 0.02, base - 0.006), (hx + rx * 1.04 + t * 0.02, base - 0.006)], accent, 0.012)
    if not back:
        pen.ellipse(hx - t * 0.06, base + 0.004, rx * (0.78 + 0.2 * t), 0.016, _shade(outfit, 0.7), _outline(outfit))
        pen.ellipse(hx - t * 0.05, base - ry * 0.28, 0.014, 0.014, accent, _outline(accent))


def _horns(pen: _Pen, look: _Look, x: float, y: float) -> None:
    horn = _mix(look.colors["accent"], WHITE, 0.45)
    for side in (-1, 1):
        pen.polygon([(x + side * 0.04, y + 0.02), (x + side * 0.08, y + 0.01), (x + side * 0.09, y - 0.07)],
                    horn, _outline(horn))


def _arm_paths(pose: _Pose, phase: float, dy: float, t: float) -> list[list[Point]]:
    """Far arm first. Angles are from straight down, positive towards +x (away from the facing side)."""
    w = 1 - 0.35 * t
    shoulders = [(-0.082 * w - t * 0.01, 0.305 + dy), (0.082 * w - t * 0.01, 0.305 + dy)]
    if pose.action:
        swing = 0.9 * math.sin(2 * math.pi * phase)
        angles = [(-swing - 0.1, -swing - 1.5), (swing - 0.1, swing - 1.5)]
    elif pose.sitting:
        angles = [(-0.1, -0.5), (0.1, 0.5)]
    else:
        angles = [(-0.18, -0.1), (0.18 - pose.arm * 0.5, 0.1 - pose.arm * 2.6)]
    paths = []
    for shoulder, (upper, fore) in zip(shoulders, angles):
        elbow = _polar(shoulder, upper, 0.11)
        paths.append([shoulder, elbow, _polar(elbow, fore, 0.1)])
    return paths


def _arm(pen: _Pen, look: _Look, path: list[Point]) -> None:
    sleeve = _shade(look.colors["outfit"], 0.92)
    pen.stroke(path, sleeve, 0.042, _outline(sleeve))
    (x0, y0), (x1, y1) = path[-2], path[-1]
    pen.ellipse(x1 + (x1 - x0) * 0.25, y1 + (y1 - y0) * 0.25, 0.021, 0.021, look.colors["skin"],
                _outline(look.colors["skin"]))
    pen.line([(x1 - 0.015, y1 - 0.01), (x1 + 0.015, y1 - 0.01)], look.colors["accent"], 0.008)


def _legs(pen: _Pen, look: _Look, pose: _Pose, phase: float, dy: float, t: float) -> None:
    skin, outfit = look.colors["skin"], look.colors["outfit"]
    boot = _mix(outfit, (50, 36, 32), 0.6)
    hips = 0.57 + dy
    w = 1 - 0.4 * t
    if pose.sitting:
        legs = [[(x * w, hips), (x * 1.3 * w, hips + 0.06), (x * 1.3 * w, 0.965)] for x in (-0.035, 0.035)]
    elif pose.action:
        swing = 0.7 * math.sin(2 * math.pi * phase)
        legs = []
        for x, b in ((-0.03, -swing), (0.03, swing)):
            knee = _polar((x * w, hips), b, 0.19)
            legs.append([(x * w, hips), knee, _polar(knee, b + 0.3 + 0.9 * max(0.0, b), 0.2)])
    else:
        legs = [[(x * w, hips), (x * 1.08 * w, 0.77), (x * 1.1 * w, 0.965)] for x in (-0.035, 0.035)]
    for leg in legs:
        pen.stroke(leg, skin, 0.036, _outline(skin))
        (x0, y0), (x1, y1) = leg[-2], leg[-1]
        k = 0.09 / max(math.hypot(x1 - x0, y1 - y0), 1e-6)
        pen.stroke([(x1 - (x1 - x0) * k, y1 - (y1 - y0) * k), (x1, y1)], boot, 0.044, _outline(boot))
        pen.ellipse(x1 - 0.012 * min(t * 2, 1), y1 + 0.005, 0.03, 0.014, boot, _outline(boot))
    skirt = _shade(outfit, 0.78)
    top, bottom = hips - 0.03, hips + (0.07 if pose.sitting else 0.1)
    pen.polygon([(-0.082 * w, top), (0.082 * w, top), (0.1 * w, bottom), (-0.1 * w, bottom)], skirt, _outline(skirt))


def _torso(pen: _Pen, look: _Look, pose: _Pose, dy: float, t: float) -> None:
    outfit, accent = look.colors["outfit"], look.colors["accent"]
    w, cx = 1 - 0.35 * t, -t * 0.01
    half = [(0.06, 0.285), (0.09, 0.305), (0.086, 0.36), (0.07, 0.46), (0.088, 0.585)]
    points = [(cx - x * w, y + dy) for x, y in half] + [(cx + x * w, y + dy) for x, y in reversed(half)]
    pen.polygon(points, outfit, _outline(outfit))
    pen.line([(cx - 0.086 * w, 0.565 + dy), (cx + 0.086 * w, 0.565 + dy)], accent, 0.01)
    if look.has("bag"):
        _satchel(pen, look, dy, w, pose.back)
    if pose.back:
        pen.line([(cx, 0.33 + dy), (cx, 0.55 + dy)], _shade(outfit, 0.6), 0.005)
        return
    mid = cx - t * 0.035
    pen.polygon([(mid - 0.032 * w, 0.285 + dy), (mid + 0.032 * w, 0.285 + dy), (mid, 0.345 + dy)], (244, 242, 236),
                _outline((244, 242, 236)))
    pen.line([(mid - 0.04 * w, 0.29 + dy), (mid, 0.35 + dy), (mid + 0.04 * w, 0.29 + dy)], accent, 0.008)
    for y in (0.38, 0.43, 0.49):
        pen.ellipse(mid + 0.014, y + dy, 0.009, 0.009, accent, _outline(accent))


def _satchel(pen: _Pen, look: _Look, dy: float, w: float, back: bool) -> None:
    leather = _mix(look.colors["accent"], (112, 70, 42), 0.55)
    side = 1 if back else -1  # seen from behind, the strap crosses the other way
    pen.line([(-side * 0.07 * w, 0.295 + dy), (side * 0.08 * w, 0.52 + dy)], _shade(leather, 0.8), 0.016)
    x = side * 0.11 * w
    pen.polygon([(x - 0.05, 0.49 + dy), (x + 0.05, 0.49 + dy), (x + 0.052, 0.585 + dy), (x - 0.052, 0.585 + dy)],
                leather, _outline(leather))
    pen.polygon([(x - 0.05, 0.49 + dy), (x + 0.05, 0.49 + dy), (x + 0.045, 0.53 + dy), (x - 0.045, 0.53 + dy)],
                _shade(leather, 0.85), _outline(leather))
    pen.ellipse(x, 0.53 + dy, 0.01, 0.008, look.colors["accent"], _outline(look.colors["accent"]))


def _scarf(pen: _Pen, color: RGB, dy: float, back: bool) -> None:
    pen.polygon([(-0.055, 0.272 + dy), (0.055, 0.272 + dy), (0.06, 0.305 + dy), (-0.06, 0.305 + dy)], color,
                _outline(color))
    tail_x = -0.03 if back else 0.03
    pen.polygon([(tail_x - 0.015, 0.3 + dy), (tail_x + 0.015, 0.3 + dy), (tail_x + 0.03, 0.39 + dy),
                 (tail_x + 0.002, 0.385 + dy)], color, _outline(color))


# -- animals ------------------------------------------------------------------------------

_ANIMAL_HEAD = [(0.0, -0.125), (0.07, -0.117), (0.12, -0.09), (0.15, -0.05), (0.165, 0.0), (0.205, 0.055),
                (0.15, 0.06), (0.165, 0.088), (0.1, 0.1), (0.045, 0.125), (0.0, 0.135)]


def _draw_animal(pen: _Pen, look: _Look, pose: _Pose, ex: _Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    pen.ellipse(0.0, 0.985, 0.2, 0.022, (0, 0, 0, 60))
    if pose.action:
        return _animal_leap(pen, look, ex, lid, phase)
    t = 0.0 if pose.back else abs(pose.turn)
    tail_front = pose.back or pose.sitting
    if not tail_front:
        _animal_tail(pen, look, (0.1, 0.74), (0.44, 0.76), (0.33, 0.34))
    if pose.sitting:
        for side in (-1, 1):
            pen.ellipse(side * 0.12, 0.87, 0.08, 0.1, fur, _outline(fur))
        pen.ellipse(0.0, 0.72, 0.15, 0.25, fur, _outline(fur))
        legs = [(x, 0.68, 0.975) for x in (-0.05 - t * 0.04, 0.05 - t * 0.04)]
    else:
        for side in (-1, 1):
            pen.stroke([(side * 0.11, 0.72), (side * 0.12, 0.96)], _shade(fur, 0.9), 0.055, _outline(fur))
        pen.ellipse(t * 0.03, 0.6, 0.125 * (1 + 0.2 * t), 0.19, fur, _outline(fur))
        legs = [(x, 0.66, 0.965) for x in (-0.055 - t * 0.05, 0.055 - t * 0.05)]
    if not pose.back:
        _chest_fluff(pen, fur, -t * 0.04, 0.49 + (0.03 if pose.sitting else 0.0))
    for x, top, bottom in legs:
        pen.stroke([(x, top), (x, bottom - 0.015)], fur, 0.05, _outline(fur))
        pen.ellipse(x - t * 0.01, bottom - 0.008, 0.032, 0.018, _mix(fur, WHITE, 0.5), _outline(fur))
    if pose.sitting and not pose.back:
        _animal_tail(pen, look, (0.14, 0.93), (0.12, 1.07), (-0.17, 0.95))
    elif pose.back:
        _animal_tail(pen, look, (0.0, 0.76), (0.22, 0.64), (0.08, 0.38))
    _collar(pen, look, -t * 0.02, 0.375)
    return _animal_head(pen, look, ex, lid, 0.0, 0.235, t, pose.back)


def _chest_fluff(pen: _Pen, fur: RGB, x: float, y: float) -> None:
    light = _mix(fur, WHITE, 0.55)
    pen.polygon([(x - 0.075, y - 0.06), (x + 0.075, y - 0.06), (x + 0.06, y + 0.05), (x + 0.02, y + 0.03),
                 (x, y + 0.09), (x - 0.02, y + 0.03), (x - 0.06, y + 0.05)], light, _outline(fur))


def _collar(pen: _Pen, look: _Look, x: float, y: float) -> None:
    """Only when the outfit colour differs from the fur: a creature 'wearing' its fur needs nothing."""
    outfit, fur = look.colors["outfit"], look.colors["skin"]
    if sum(abs(a - b) for a, b in zip(outfit, fur)) < 90:
        return
    pen.ellipse(x, y, 0.11, 0.022, outfit, _outline(outfit))
    pen.ellipse(x, y + 0.03, 0.016, 0.016, look.colors["accent"], _outline(look.colors["accent"]))


def _animal_tail(pen: _Pen, look: _Look, base: Point, ctrl: Point, tip: Point) -> None:
    fur, accent = look.colors["skin"], look.colors["accent"]
    path = _bezier(base, ctrl, tip, 18)
    if look.has("tail_glow"):
        pen.glow(*path[-3], 0.05, accent)
    pen.polygon(_brush(path, 0.075), fur, _outline(fur))
    tip_color = _mix(accent, WHITE, 0.3) if look.has("tail_glow") else _mix(fur, WHITE, 0.6)
    pen.polygon(_brush(path, 0.075, start=0.72)[1:-1], tip_color, _outline(fur))


def _animal_ears(pen: _Pen, look: _Look, x: float, y: float, size: float, inner: bool) -> None:
    """Pointed ears on top of a head whose top centre is (x, y); `size` 1 = a fox's own ears."""
    fur = look.colors["skin"] if not look.human else look.colors["hair"]
    for side in (-1, 1):
        base_in, base_out, tip = (x + side * 0.045 * size, y + 0.01), (x + side * 0.135 * size, y + 0.05), \
            (x + side * 0.14 * size, y - 0.11 * size)
        pen.polygon([base_in, tip, base_out], fur, _outline(fur))
        if inner:
            pen.polygon([(base_in[0] + side * 0.015 * size, base_in[1]), (tip[0] - side * 0.01 * size, tip[1] + 0.03 * size),
                         (base_out[0] - side * 0.015 * size, base_out[1] - 0.01)], _mix(look.colors["skin"], BLUSH, 0.35))


def _animal_head(pen: _Pen, look: _Look, ex: _Expression, lid: float, hx: float, hy: float, t: float,
                 back: bool) -> FBox:
    fur = look.colors["skin"]
    outline = _outline(fur)
    _animal_ears(pen, look, hx + t * 0.03, hy - 0.125, 1.0, inner=not back)
    head = [(x * (1 - 0.15 * t), y) for x, y in _ANIMAL_HEAD]
    left = [(-x * (1 - 0.3 * t), y) for x, y in reversed(_ANIMAL_HEAD[1:-1])]
    outline_pts = [(hx + x, hy + y) for x, y in head + left]
    pen.polygon(outline_pts, fur, outline)
    box = pen.bounds([(hx - 0.19 * (1 - 0.3 * t), hy - 0.115), (hx + 0.19 * (1 - 0.15 * t), hy + 0.135)])
    if back:
        _emote(pen, ex.emote, hx + 0.22, hy - 0.12, 0.05)
        return box
    fx = hx - t * 0.075
    muzzle = _mix(fur, WHITE, 0.55)
    if t > 0.85:
        snout = [(fx - 0.02, hy + 0.0), (hx - 0.27, hy + 0.065), (hx - 0.25, hy + 0.095), (fx - 0.01, hy + 0.125)]
        pen.polygon(snout, muzzle, outline)
        nose = (hx - 0.262, hy + 0.068)
        box = (min(box[0], pen.bounds(snout)[0]), box[1], max(box[2], pen.bounds(snout)[2]), box[3])
    else:
        pen.polygon([(fx - 0.11, hy + 0.04), (fx - 0.06, hy + 0.02), (fx, hy + 0.035), (fx + 0.06, hy + 0.02),
                     (fx + 0.11, hy + 0.04), (fx + 0.1, hy + 0.09), (fx + 0.045, hy + 0.122), (fx, hy + 0.132),
                     (fx - 0.045, hy + 0.122), (fx - 0.1, hy + 0.09)], muzzle)
        nose = (fx - t * 0.04, hy + 0.07)
    pen.ellipse(*nose, 0.017, 0.012, (52, 40, 52))
    pen.ellipse(nose[0] - 0.005, nose[1] - 0.004, 0.005, 0.003, WHITE)
    eyes = _eye_layout(fx, t, 0.068, 0.03)
    for x, inner, k in eyes:
        _eye(pen, x, hy - 0.005, 0.03 * k, 0.038, look, ex, lid, inner, fur)
    if ex.blush:
        for x, _, k in eyes:
            pen.ellipse(x - inner * 0.02, hy + 0.045, 0.022 * k, 0.01, _mix(fur, BLUSH, 0.5))
    _brows(pen, [(x, inner) for x, inner, _ in eyes], hy - 0.06, 0.03, ex, _shade(fur, 0.55))
    if ex.mouth == "line":
        line = _shade(fur, 0.4)
        mx, my = nose[0], nose[1] + 0.024
        pen.line([(mx - 0.022, my), (mx - 0.011, my + 0.01), (mx, my), (mx + 0.011, my + 0.01), (mx + 0.022, my)],
                 line, 0.005)
    else:
        _mouth(pen, nose[0], nose[1] + 0.03, 0.028, ex, fur)
    _emote(pen, ex.emote, hx + 0.22, hy - 0.12, 0.05)
    return box


def _animal_leap(pen: _Pen, look: _Look, ex: _Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    reach = 0.5 + 0.5 * math.sin(2 * math.pi * phase)  # legs gather (0) and stretch (1)
    _animal_tail(pen, look, (0.2, 0.57), (0.42, 0.52 - 0.06 * reach), (0.48, 0.32))
    for x, angle in ((0.15, 0.4 + 0.8 * reach), (-0.13, -0.3 - 0.9 * reach)):
        pen.stroke([(x, 0.62), _polar((x, 0.62), angle, 0.2)], _shade(fur, 0.92), 0.05, _outline(fur))
    pen.ellipse(0.03, 0.6, 0.2, 0.095, fur, _outline(fur))
    _chest_fluff(pen, fur, -0.12, 0.58)
    for x, angle in ((0.12, 0.2 + 0.9 * reach), (-0.15, -0.5 - 0.7 * reach)):
        pen.stroke([(x, 0.63), _polar((x, 0.63), angle, 0.2)], fur, 0.05, _outline(fur))
    return _animal_head(pen, look, ex, lid, -0.15, 0.4, 0.55, back=False)


# -- sprites ------------------------------------------------------------------------------

_BOUNDS = {True: (-0.32, -0.1, 0.32, 1.02), False: (-0.46, -0.1, 0.58, 1.02)}  # figure units, generous


@dataclass
class _Sprite:
    image: Image.Image  # RGBA
    left: int  # canvas px of the image's top-left
    top: int
    face: FBox  # canvas px


def _draw_sprite(look: _Look, pose: _Pose, ex: _Expression, lid: float, phase: float, origin: Point,
                 scale: float, clip: FBox) -> _Sprite | None:
    """Draw one figure at `scale` px tall with its top-centre at canvas `origin`, keeping only `clip`."""
    bx0, by0, bx1, by1 = _BOUNDS[look.human]
    x0 = max(math.floor(origin[0] + bx0 * scale), math.floor(clip[0]))
    y0 = max(math.floor(origin[1] + by0 * scale), math.floor(clip[1]))
    x1 = min(math.ceil(origin[0] + bx1 * scale), math.ceil(clip[2]))
    y1 = min(math.ceil(origin[1] + by1 * scale), math.ceil(clip[3]))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    ss = SUPERSAMPLE
    image = Image.new("RGBA", ((x1 - x0) * ss, (y1 - y0) * ss), INK + (0,))
    pen = _Pen(image, ((origin[0] - x0) * ss, (origin[1] - y0) * ss), scale * ss, pose.turn < 0, ss)
    draw = _draw_human if look.human else _draw_animal
    fx0, fy0, fx1, fy1 = draw(pen, look, pose, ex, lid, phase)
    face = (x0 + fx0 / ss, y0 + fy0 / ss, x0 + fx1 / ss, y0 + fy1 / ss)
    return _Sprite(image.reduce(ss), x0, y0, face)


# -- framing and layout -------------------------------------------------------------------

@dataclass(frozen=True)
class _Framing:
    shared: bool  # one scale for the whole cast (heights compare) or each character framed alone
    span: tuple[str, str]  # landmarks mapped onto `rows`
    rows: tuple[float, float]  # fractions of the frame height
    width: str  # which part of the figure must fit its slot: full, upper or head
    backdrop: str


FRAMINGS = {
    "establishing": _Framing(True, ("top", "feet"), (0.6, 0.86), "full", "town"),
    "wide": _Framing(True, ("top", "feet"), (0.14, 0.9), "full", "hill"),
    "action": _Framing(True, ("top", "feet"), (0.26, 0.9), "full", "hill"),
    "full_body": _Framing(True, ("top", "feet"), (0.07, 0.95), "full", "hill"),
    "medium": _Framing(False, ("top", "waist"), (0.1, 1.0), "upper", "bokeh"),
    "portrait": _Framing(False, ("top", "chest"), (0.1, 1.0), "upper", "bokeh"),
    "close-up": _Framing(False, ("top", "shoulders"), (0.06, 1.0), "head", "bokeh"),
    "extreme_close-up": _Framing(False, ("brow", "chin"), (0.16, 1.02), "head", "bokeh"),
}
_LANDMARKS = {
    True: {"top": -0.01, "brow": 0.115, "chin": 0.263, "shoulders": 0.36, "chest": 0.44, "waist": 0.55, "feet": 1.0},
    False: {"top": 0.0, "brow": 0.17, "chin": 0.37, "shoulders": 0.47, "chest": 0.56, "waist": 0.72, "feet": 1.0},
}
_HALF_WIDTH = {  # figure units that must fit beside the centre line, by visible part
    True: {"full": 0.2, "upper": 0.16, "head": 0.15},
    False: {"full": 0.42, "upper": 0.32, "head": 0.21},
}


def _landmark(look: _Look, pose: _Pose, name: str) -> float:
    lift = 0.17 if look.human and pose.sitting and name != "feet" else 0.0
    return _LANDMARKS[look.human][name] + lift


@dataclass(frozen=True)
class _Placement:
    origin: Point  # frame px of the figure's top-centre
    scale: float  # figure height in px


def _layout(looks: Sequence[_Look], poses: Sequence[_Pose], framing: _Framing, width: int, height: int,
            rng: np.random.Generator) -> list[_Placement]:
    if framing.shared:
        return _layout_shared(looks, poses, framing, width, height, rng)
    slot = width / len(looks)
    placements = []
    for i, (look, pose) in enumerate(zip(looks, poses)):
        top, bottom = (_landmark(look, pose, name) for name in framing.span)
        scale = (framing.rows[1] - framing.rows[0]) * height / (bottom - top)
        scale = min(scale, 0.96 * slot / (2 * _HALF_WIDTH[look.human][framing.width]))
        x = (i + 0.5) * slot + rng.uniform(-0.02, 0.02) * slot
        placements.append(_Placement((x, framing.rows[0] * height - top * scale), scale))
    return placements


def _layout_shared(looks: Sequence[_Look], poses: Sequence[_Pose], framing: _Framing, width: int, height: int,
                   rng: np.random.Generator) -> list[_Placement]:
    """Everyone on one ground line at one scale, side by side, the group centred with a seeded nudge."""
    tallest = max(max(look.height for look in looks), 1.0)
    unit = (framing.rows[1] - framing.rows[0]) * height / tallest
    halves = [_HALF_WIDTH[look.human][framing.width] * look.height for look in looks]
    gaps = [(a + b) * 1.15 for a, b in zip(halves, halves[1:])]
    span = halves[0] + sum(gaps) + halves[-1]
    unit = min(unit, 0.9 * width / span)
    xs = [0.0]
    for gap in gaps:
        xs.append(xs[-1] + gap)
    shift = width / 2 - (xs[-1] + halves[-1] - halves[0]) * unit / 2 - halves[0] * unit * 0 + rng.uniform(-0.03, 0.03) * width
    left = shift - (xs[-1] * unit) / 2 + (xs[-1] * unit) / 2
    ground = framing.rows[1] * height
    return [_Placement((left + x * unit - (xs[-1] - 0) * unit / 2 + (halves[0] - halves[-1]) * unit / 2 + (xs[-1] + halves[-1] - halves[0]) * unit / 2, ground - look.height * unit), look.height * unit)
            for x, look in zip(xs, looks)]
