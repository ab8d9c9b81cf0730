"""The embedded default renderer: deterministic CPU "previz" drawings of the cast.

It stands in for ComfyUI when no GPU exists, so a newcomer gets real, watchable files on
the first run, always labelled previz. Each character is drawn from its appearance data
(key colours, species, height, key features) with numpy and Pillow only.

Identity is later measured by comparing colour histograms of the face box with the
character's references, and reference faces are found by skin and eye colour. So the face
box is the visible face (fringe to chin, between the side locks), painted in flat key
colours, and eyes always show the key eye colour, even as small ovals in wide shots.

Speed: a clip draws its background and character sprites once (blinks redraw only the
face), then each frame is a copy of the background, a few alpha pastes and one resampled
crop for the camera: about 3-4 ms a 640x360 frame on two cores.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from anime_pipeline.imaging import hex_to_rgb, rgb_to_hex
from anime_pipeline.config.schema import Character
from anime_pipeline.metrics import weightfree
from anime_pipeline.render.base import Box, ClipRequest, ClipResult, StillRequest, StillResult

RGB = tuple[int, int, int]
Point = tuple[float, float]
FBox = tuple[float, float, float, float]

ROLES = ("hair", "skin", "eyes", "outfit", "accent")
SUPERSAMPLE = 2
SMALL_EYE_PX = 4.0  # eyes narrower than this radius (output px) are drawn as flat ovals
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
    return hex_to_rgb(value)


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
    turn: float = 0.0  # 0 front, 0.5 three-quarter, 1 profile; > 0 faces image left
    back: bool = False
    sitting: bool = False
    action: bool = False
    arm: float = 0.0  # how far the near hand is raised (variation for free-text poses)
    lean: float = 0.0


_POSES = {
    "front": _Pose("front"),
    "three-quarter left": _Pose("three-quarter left", turn=0.5),
    "profile left": _Pose("profile left", turn=1.0),
    "back": _Pose("back", back=True),
    "three-quarter right": _Pose("three-quarter right", turn=-0.5),
    "profile right": _Pose("profile right", turn=-1.0),
    "sitting": _Pose("sitting", turn=0.15, sitting=True),
    "action": _Pose("action", turn=0.6, action=True, lean=0.12),
}
_POSE_WORDS = (
    (r"\b(run|leap|jump|dash|fight|chas|fly)", "action"),
    (r"\b(sit|curl|kneel|crouch|rest)", "sitting"),
    (r"\b(back|behind|away)\b", "back"),
)


def _base_name(key: str, words: tuple[tuple[str, str], ...], default: str) -> str:
    """The drawn base for a name that is not one of ours: the first keyword match ("running" → action)."""
    return next((base for pattern, base in words if re.search(pattern, key)), default)


def _resolve_pose(name: str) -> _Pose:
    key = name.strip().lower()
    if key in _POSES:
        return _POSES[key]
    pose = _POSES[_base_name(key, _POSE_WORDS, "front")]
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
    (r"\b(smil|grin|laugh|cheer|joy|happ|delight)", "happy"),
    (r"\b(sad|cry|tear|gloom|sleepy|tired|lonely)", "sad"),
    (r"\b(angry|anger|determin|fierce|mad|annoy|furious)", "angry"),
    (r"\b(surpris|shock|alert|startl|gasp|puzzl)", "surprised"),
    (r"\b(blush|shy|embarr|flust)", "embarrassed"),
)


def _resolve_expression(name: str) -> _Expression:
    key = name.strip().lower()
    if key in _EXPRESSIONS:
        return _EXPRESSIONS[key]
    expression = _EXPRESSIONS[_base_name(key, _EXPRESSION_WORDS, "neutral")]
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
        self.ss = ss
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
        left, top = int(x - size / 2), int(y - size / 2)
        if left >= self.image.width or top >= self.image.height or left + size <= 0 or top + size <= 0:
            return
        k = max(1, int(r // 6))  # a glow has no detail: blur it small, then scale it up
        small = max(4, size // k)
        c, rs = small / 2, r / k
        layer = Image.new("RGBA", (small, small), color + (0,))
        ImageDraw.Draw(layer).ellipse((c - rs, c - rs, c + rs, c + rs), fill=color + (210,))
        layer = layer.filter(ImageFilter.GaussianBlur(rs * 0.7)).resize((size, size), Image.Resampling.BILINEAR)
        self.image.alpha_composite(layer, (left, top))

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
        (ax, ay), (bx, by) = path[max(i - 1, 0)], path[min(i + 1, n - 1)]
        nx, ny = bx - ax, by - ay
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
    """One anime eye; `lid` closes it (0 open, 1 shut), `inner` is the side of the nose (+1/-1).

    The iris stays mostly the flat key colour, and small eyes become plain ovals: identity and face
    finding look for that colour, and fine detail would blur into other colours."""
    eye = look.colors["eyes"]
    ry *= ex.eye_scale
    cover_in = lid + (1 - lid) * ex.lid_inner
    cover_out = lid + (1 - lid) * ex.lid_outer
    if min(cover_in, cover_out) >= 0.95:
        pen.line([(x - rx, y + ry * 0.15), (x, y + ry * 0.5), (x + rx, y + ry * 0.15)], INK, ry * 0.22)
        return
    small = rx * pen.s < SMALL_EYE_PX * pen.ss
    if small:  # a flat oval, a little smaller than the eye, so the face still reads as skin around it
        pen.ellipse(x, y + ry * 0.1, rx * 0.75, ry * 0.8, eye)
        pen.ellipse(x - rx * 0.25, y - ry * 0.2, rx * 0.25, rx * 0.25, WHITE)
    else:
        pen.ellipse(x, y, rx, ry, (252, 252, 255))
        ix, iy = x + ex.gaze * rx * 0.35 * -inner, y + ry * 0.08
        irx, iry = rx * 0.84 * ex.iris_scale, ry * 0.86 * ex.iris_scale
        pen.ellipse(ix, iy, irx, iry, eye, _shade(eye, 0.45))
        pen.ellipse(ix, iy + iry * 0.45, irx * 0.72, iry * 0.42, _mix(eye, WHITE, 0.15))
        pen.ellipse(ix, iy - iry * 0.08, irx * 0.38, iry * 0.42, _shade(eye, 0.3))
        pen.ellipse(ix - irx * 0.35, iy - iry * 0.42, irx * 0.3, irx * 0.3, WHITE)
        pen.ellipse(ix + irx * 0.38, iy + iry * 0.38, irx * 0.14, irx * 0.14, WHITE)
    xi, xo = x + inner * rx * 1.1, x - inner * rx * 1.1
    yi, yo = y - ry + 2 * ry * cover_in, y - ry + 2 * ry * cover_out
    top = y - ry * 1.35
    if max(cover_in, cover_out) > 0:
        pen.polygon([(xi, top), (xo, top), (xo, yo), (xi, yi)], skin)
    arch = ry * 0.25 * (1 - max(cover_in, cover_out))
    pen.line([(xi, yi), ((xi + xo) / 2, (yi + yo) / 2 - arch), (xo, yo), (xo - inner * rx * 0.25, yo - ry * 0.2)],
             INK, ry * (0.14 if small else 0.26))
    if max(cover_in, cover_out) < 0.6 and not small:
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
            star = [(x + dx + r * reach * math.cos(a), y + dy + r * reach * math.sin(a))
                    for a, reach in zip(np.linspace(0, 2 * math.pi, 9)[:-1] - math.pi / 2, (1, 0.3) * 4)]
            pen.polygon(star, (255, 232, 120), (200, 150, 40))
    elif kind == "vein":
        g, reach = size * 0.2, size * 0.7
        for sx in (-1, 1):
            for sy in (-1, 1):
                pen.line([(x + sx * g, y + sy * reach), (x + sx * g, y + sy * g), (x + sx * reach, y + sy * g)],
                         (226, 48, 70), size * 0.22)
    elif kind == "shock":
        for angle in (-0.5, 0.0, 0.5):
            centre = (x, y + size)
            pen.line([_polar(centre, math.pi - angle, size * 0.8), _polar(centre, math.pi - angle, size * 1.6)],
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
    return _human_head(pen, look, ex, lid, hx, hy, t)


def _back_hair(pen: _Pen, look: _Look, t: float, hx: float, hy: float) -> None:
    hair = _shade(look.colors["hair"], 0.85)
    line = _outline(look.colors["hair"])
    style, bx = look.hair_style, hx + t * 0.03
    if style == "long_hair":
        ends = [(bx + 0.15, hy + 0.345), (bx + 0.05, hy + 0.365), (bx - 0.05, hy + 0.355), (bx - 0.15, hy + 0.335)]
        pen.polygon(_ellipse_points(bx, hy, 0.135, 0.14, math.pi, 2 * math.pi) + ends, hair, line)
    elif style == "ponytail":
        tail = _bezier((bx + 0.06, hy - 0.1), (bx + 0.24, hy - 0.06), (bx + 0.16, hy + 0.27), 14)
        pen.polygon(_brush(tail, 0.06, 0.05), hair, line)
        pen.ellipse(bx + 0.09, hy - 0.1, 0.022, 0.022, look.colors["accent"], _outline(look.colors["accent"]))
    elif style == "bob":
        pen.polygon(_ellipse_points(bx, hy, 0.13, 0.135, math.pi, 2 * math.pi)
                    + [(bx + 0.145, hy + 0.13), (bx + 0.08, hy + 0.12), (bx - 0.08, hy + 0.12),
                       (bx - 0.145, hy + 0.13)], hair, line)
    else:
        pen.ellipse(bx, hy - 0.005, 0.128, 0.125, hair, line)


def _human_head(pen: _Pen, look: _Look, ex: _Expression, lid: float, hx: float, hy: float, t: float) -> FBox:
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
    eyes = _eye_layout(fx, t, 0.05)
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
        (x0, _, k0), (x1, _, k1) = eyes
        pen.line([(x0 + 0.036 * k0, hy + 0.02), (x1 - 0.036 * k1, hy + 0.02)], INK, 0.004)
    if look.has("horns"):
        _horns(pen, look, hx + t * 0.02, hy - ry * 0.75)
    if look.has("hat"):
        _cap(pen, look, hx, hy, rx, ry, t)
    _emote(pen, ex.emote, hx + rx * 1.45, hy - ry * 0.9, 0.045)
    # The face box is the visible face, between the side locks, from the fringe to the chin: what a
    # face finder outlines.
    xs, ys = zip(*face)
    bx = hx + t * 0.03
    left = min(xs) if t > 0.85 else max(min(xs), bx - 0.09)
    return pen.bounds([(left, hy - 0.045), (min(max(xs), bx + 0.09), max(ys))])


def _eye_layout(fx: float, t: float, spread: float) -> list[tuple[float, float, float]]:
    """(x, inner side, width factor) per eye. The far eye narrows as the head turns; in profile a
    sliver of it stays, anime style (and face finders look for two eyes)."""
    if t > 0.85:
        return [(fx - spread * 0.35, 1.0, 0.55), (fx + spread * 0.4, -1.0, 0.75)]
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
    # The crown stays over the skull as the head turns (only the fringe and locks move), so a
    # profile is not bald at the front.
    cap = _ellipse_points(hx + t * 0.008, hy - 0.004, rx * 1.1, ry * 1.08, math.pi * 1.02, math.pi * 1.98, 20)
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
    shine = _ellipse_points(hx, hy, rx * 0.8, ry * 0.8, math.pi * 1.25, math.pi * 1.6, 6)
    pen.line(shine, _mix(hair, WHITE, 0.35), 0.012)
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
            legs.append([(x * w, hips), knee, _polar(knee, b + 0.25 + 0.6 * max(0.0, b), 0.2)])
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

# Half a fox head (x >= 0) in head units around its centre, scaled up for chibi cuteness.
_ANIMAL_HEAD = [(0.0, -0.125), (0.07, -0.117), (0.12, -0.09), (0.15, -0.05), (0.165, 0.0), (0.205, 0.055),
                (0.15, 0.06), (0.165, 0.088), (0.1, 0.1), (0.045, 0.125), (0.0, 0.135)]
HEAD_SCALE = 1.3
HEAD_Y = 0.31  # the animal head's centre, figure units


def _draw_animal(pen: _Pen, look: _Look, pose: _Pose, ex: _Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    pen.ellipse(0.0, 0.985, 0.22, 0.022, (0, 0, 0, 60))
    if pose.action:
        return _animal_leap(pen, look, ex, lid, phase)
    t = 0.0 if pose.back else abs(pose.turn)
    if pose.sitting and not pose.back:  # curled up the side: the tip shows even in a portrait
        _animal_tail(pen, look, (0.16, 0.93), (0.48, 0.92), (0.34, 0.46))
    elif not pose.back:
        _animal_tail(pen, look, (0.12, 0.8), (0.5, 0.82), (0.36, 0.42))
    front_legs = (-0.06 - t * 0.05, 0.06 - t * 0.05)
    if pose.sitting:
        for side in (-1, 1):
            pen.ellipse(side * 0.14, 0.88, 0.095, 0.1, _shade(fur, 0.93), _outline(fur))
        pen.ellipse(0.0, 0.74, 0.18, 0.26, fur, _outline(fur))
    else:  # stubby legs under a round body: the body hides where they join
        for side in (-1, 1):
            pen.stroke([(side * 0.13, 0.78), (side * 0.135, 0.955)], _shade(fur, 0.9), 0.07, _outline(fur))
        if not pose.back:
            _paws(pen, fur, front_legs, 0.75, t)
        pen.ellipse(t * 0.03, 0.665, 0.165 * (1 + 0.15 * t), 0.2, fur, _outline(fur))
    if pose.back:
        _animal_tail(pen, look, (0.0, 0.84), (0.25, 0.7), (0.1, 0.42))
    else:
        _chest_fluff(pen, fur, -t * 0.05, 0.45)
    if pose.sitting and not pose.back:
        _paws(pen, fur, front_legs, 0.72, t)
    _collar(pen, look, -t * 0.02, 0.49)
    return _animal_head(pen, look, ex, lid, 0.0, HEAD_Y, t, pose.back)


def _paws(pen: _Pen, fur: RGB, xs: Sequence[float], top: float, t: float) -> None:
    for x in xs:
        pen.stroke([(x, top), (x, 0.94)], fur, 0.065, _outline(fur))
        pen.ellipse(x - t * 0.012, 0.955, 0.04, 0.022, _mix(fur, WHITE, 0.5), _outline(fur))


def _chest_fluff(pen: _Pen, fur: RGB, x: float, y: float) -> None:
    """A fluffy bib; its top hides under the chin."""
    pen.polygon([(x - 0.1, y), (x + 0.1, y), (x + 0.09, y + 0.06), (x + 0.05, y + 0.1), (x + 0.025, y + 0.085),
                 (x, y + 0.12), (x - 0.025, y + 0.085), (x - 0.05, y + 0.1), (x - 0.09, y + 0.06)],
                _mix(fur, WHITE, 0.55), _outline(fur))


def _collar(pen: _Pen, look: _Look, x: float, y: float) -> None:
    """Only when the outfit colour differs from the fur: a creature 'wearing' its fur needs nothing."""
    outfit, fur = look.colors["outfit"], look.colors["skin"]
    if sum(abs(a - b) for a, b in zip(outfit, fur)) < 90:
        return
    pen.ellipse(x, y, 0.13, 0.025, outfit, _outline(outfit))
    pen.ellipse(x, y + 0.035, 0.018, 0.018, look.colors["accent"], _outline(look.colors["accent"]))


def _animal_tail(pen: _Pen, look: _Look, base: Point, ctrl: Point, tip: Point) -> None:
    fur, accent = look.colors["skin"], look.colors["accent"]
    path = _bezier(base, ctrl, tip, 18)
    glowing = look.has("tail_glow")
    if glowing:
        pen.glow(*path[-3], 0.07, accent)
    pen.polygon(_brush(path, 0.09), fur, _outline(fur))
    tip_color = accent if glowing else _mix(fur, WHITE, 0.6)
    pen.polygon(_brush(path, 0.09, start=0.7)[1:-1], tip_color, _outline(accent if glowing else fur))


def _animal_ears(pen: _Pen, look: _Look, x: float, y: float, size: float, inner: bool) -> None:
    """Pointed ears on top of a head whose top centre is (x, y); `size` 1 = a fox's own ears."""
    fur = look.colors["skin"] if not look.human else look.colors["hair"]
    for side in (-1, 1):
        base_in, base_out = (x + side * 0.045 * size, y + 0.01 * size), (x + side * 0.135 * size, y + 0.05 * size)
        tip = (x + side * 0.14 * size, y - 0.11 * size)
        pen.polygon([base_in, tip, base_out], fur, _outline(fur))
        if inner:
            inside = [(base_in[0] + side * 0.015 * size, base_in[1]),
                      (tip[0] - side * 0.01 * size, tip[1] + 0.03 * size),
                      (base_out[0] - side * 0.015 * size, base_out[1] - 0.01 * size)]
            pen.polygon(inside, _mix(look.colors["skin"], BLUSH, 0.35))


def _animal_head(pen: _Pen, look: _Look, ex: _Expression, lid: float, hx: float, hy: float, t: float,
                 back: bool) -> FBox:
    fur = look.colors["skin"]
    outline = _outline(fur)

    u = HEAD_SCALE  # one head unit, in figure units

    def at(x: float, y: float) -> Point:
        return hx + x * u, hy + y * u

    _animal_ears(pen, look, *at(t * 0.03, -0.125), u, inner=not back)
    right = [at(x * (1 - 0.15 * t), y) for x, y in _ANIMAL_HEAD]
    left = [at(-x * (1 - 0.3 * t), y) for x, y in reversed(_ANIMAL_HEAD[1:-1])]
    pen.polygon(right + left, fur, outline)
    # Cheek to cheek and brow to chin, leaving out the tuft tips: the box stays mostly fur and eyes.
    box = pen.bounds([at(-0.17 * (1 - 0.3 * t), -0.11), at(0.17 * (1 - 0.15 * t), 0.13)])
    if back:
        _emote(pen, ex.emote, *at(0.22, -0.12), 0.05 * u)
        return box
    f = -t * 0.075  # the face's centre line, in head units
    muzzle = _mix(fur, WHITE, 0.55)
    if t > 0.85:
        snout = [at(f - 0.02, -0.01), at(-0.21, 0.045), at(-0.235, 0.07), at(-0.215, 0.1), at(f, 0.125)]
        pen.polygon(snout, muzzle, outline)
        nose = at(-0.225, 0.062)
        snout_box = pen.bounds(snout)
        box = (min(box[0], snout_box[0]), box[1], max(box[2], snout_box[2]), box[3])
    else:
        pen.polygon([at(f + x, y) for x, y in ((-0.11, 0.04), (-0.06, 0.02), (0, 0.035), (0.06, 0.02), (0.11, 0.04),
                                               (0.1, 0.09), (0.045, 0.122), (0, 0.132), (-0.045, 0.122),
                                               (-0.1, 0.09))], muzzle)
        nose = at(f - t * 0.04, 0.07)
    pen.ellipse(*nose, 0.017 * u, 0.012 * u, (52, 40, 52))
    pen.ellipse(nose[0] - 0.005 * u, nose[1] - 0.004 * u, 0.005 * u, 0.003 * u, WHITE)
    eyes = _eye_layout(f, t, 0.068)
    for x, inner, k in eyes:
        _eye(pen, *at(x, -0.005), 0.03 * u * k, 0.038 * u, look, ex, lid, inner, fur)
    if ex.blush:
        for x, inner, k in eyes:
            pen.ellipse(*at(x - inner * 0.02, 0.045), 0.022 * u * k, 0.01 * u, _mix(fur, BLUSH, 0.5))
    brow_y = at(0, -0.06)[1]
    _brows(pen, [(at(x, 0)[0], inner) for x, inner, _ in eyes], brow_y, 0.03 * u, ex, _shade(fur, 0.55))
    mx, my = nose[0], nose[1] + 0.024 * u
    if ex.mouth == "line":
        w = 0.011 * u
        pen.line([(mx - 2 * w, my), (mx - w, my + w), (mx, my), (mx + w, my + w), (mx + 2 * w, my)],
                 _shade(fur, 0.4), 0.005 * u)
    else:
        _mouth(pen, mx, my + 0.006 * u, 0.028 * u, ex, fur)
    _emote(pen, ex.emote, *at(0.22, -0.12), 0.05 * u)
    return box


def _animal_leap(pen: _Pen, look: _Look, ex: _Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    reach = 0.5 + 0.5 * math.sin(2 * math.pi * phase)  # legs gather (0) and stretch (1)
    _animal_tail(pen, look, (0.24, 0.63), (0.46, 0.58 - 0.06 * reach), (0.52, 0.36))
    for x, angle in ((0.19, 0.4 + 0.8 * reach), (-0.1, -0.3 - 0.9 * reach)):
        pen.stroke([(x, 0.7), _polar((x, 0.7), angle, 0.2)], _shade(fur, 0.9), 0.06, _outline(fur))
    pen.ellipse(0.05, 0.66, 0.22, 0.11, fur, _outline(fur))
    for x, angle in ((0.16, 0.2 + 0.9 * reach), (-0.13, -0.5 - 0.7 * reach)):
        pen.stroke([(x, 0.71), _polar((x, 0.71), angle, 0.2)], fur, 0.06, _outline(fur))
    _chest_fluff(pen, fur, -0.14, 0.58)
    return _animal_head(pen, look, ex, lid, -0.16, 0.44, 0.55, back=False)


# -- sprites ------------------------------------------------------------------------------

_BOUNDS = {True: (-0.4, -0.1, 0.4, 1.02), False: (-0.5, -0.06, 0.64, 1.04)}  # figure units, generous


@dataclass(frozen=True)
class _Sprite:
    image: Image.Image  # RGBA
    left: int  # canvas px of the image's top-left
    top: int
    face: FBox  # canvas px

    @property
    def face_rect(self) -> Box:
        """Whole pixels around the face, inside the image: what a blink redraws."""
        x0, y0, x1, y1 = self.face
        right, bottom = self.left + self.image.width, self.top + self.image.height
        return (max(math.floor(x0) - 2, self.left), max(math.floor(y0) - 2, self.top),
                min(math.ceil(x1) + 2, right), min(math.ceil(y1) + 2, bottom))


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
    "establishing": _Framing(True, ("top", "feet"), (0.52, 0.86), "full", "town"),
    "wide": _Framing(True, ("top", "feet"), (0.14, 0.9), "full", "hill"),
    "action": _Framing(True, ("top", "feet"), (0.26, 0.9), "full", "hill"),
    "full_body": _Framing(True, ("top", "feet"), (0.07, 0.95), "full", "hill"),
    "medium": _Framing(False, ("top", "waist"), (0.1, 1.0), "upper", "bokeh"),
    "portrait": _Framing(False, ("top", "chest"), (0.1, 1.0), "upper", "bokeh"),
    "close-up": _Framing(False, ("top", "shoulders"), (0.14, 1.0), "head", "bokeh"),
    "extreme_close-up": _Framing(False, ("brow", "chin"), (0.16, 1.02), "head", "bokeh"),
}
_LANDMARKS = {
    True: {"top": -0.01, "brow": 0.115, "chin": 0.263, "shoulders": 0.36, "chest": 0.44, "waist": 0.55, "feet": 1.0},
    False: {"top": 0.0, "brow": 0.23, "chin": 0.49, "shoulders": 0.56, "chest": 0.64, "waist": 0.8, "feet": 1.0},
}
def _extent(look: _Look, pose: _Pose, part: str) -> tuple[float, float]:
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


def _landmark(look: _Look, pose: _Pose, name: str) -> float:
    lift = 0.17 if look.human and pose.sitting and name != "feet" else 0.0
    return _LANDMARKS[look.human][name] + lift


@dataclass(frozen=True)
class _Placement:
    origin: Point  # frame px of the figure's top-centre
    scale: float  # figure height in px


def _layout(looks: Sequence[_Look], poses: Sequence[_Pose], framing: _Framing, width: int, height: int,
            rng: np.random.Generator) -> list[_Placement]:
    if not looks:
        return []
    if framing.shared:
        return _layout_shared(looks, poses, framing, width, height, rng)
    slot = width / len(looks)
    placements = []
    for i, (look, pose) in enumerate(zip(looks, poses)):
        top, bottom = (_landmark(look, pose, name) for name in framing.span)
        scale = (framing.rows[1] - framing.rows[0]) * height / (bottom - top)
        scale = min(scale, 0.96 * slot / (2 * max(_extent(look, pose, framing.width))))
        x = (i + 0.5) * slot + rng.uniform(-0.02, 0.02) * slot
        placements.append(_Placement((x, framing.rows[0] * height - top * scale), scale))
    return placements


def _layout_shared(looks: Sequence[_Look], poses: Sequence[_Pose], framing: _Framing, width: int, height: int,
                   rng: np.random.Generator) -> list[_Placement]:
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
    return [_Placement((middle + (x - (low + high) / 2) * unit, ground - look.height * unit), look.height * unit)
            for x, look in zip(centres, looks)]


# -- backdrops ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Lantern:
    x: float
    y: float
    radius: float
    period: float
    phase: float


def _palette(background: Sequence[str]) -> dict[str, RGB]:
    given = [_rgb(c) for c in background]
    colors = sorted(given + [_rgb(c) for c in DEFAULT_BACKGROUND[len(given):]], key=_luma)
    warm = max(colors, key=lambda c: c[0] - c[2])
    return {"dark": colors[0], "mid": colors[1], "light": colors[-1], "warm": warm}


def _gradient(width: int, height: int, stops: Sequence[tuple[float, RGB]]) -> Image.Image:
    ys = np.linspace(0.0, 1.0, height)
    colors = np.array([c for _, c in stops], dtype=float)
    rows = np.stack([np.interp(ys, [p for p, _ in stops], colors[:, k]) for k in range(3)], axis=1)
    return Image.fromarray(np.repeat(rows[:, None, :], width, axis=1).round().astype(np.uint8))


def _ridge(rng: np.random.Generator, width: int, height: int, base: float, amplitude: float) -> list[Point]:
    xs = np.linspace(0, width, 64)
    ys = np.full_like(xs, base * height)
    for k in range(1, 4):
        frequency = rng.uniform(1.0, 3.0) * k * 2 * math.pi / width
        ys += amplitude * height / k * np.sin(xs * frequency + rng.uniform(0, 2 * math.pi))
    return list(zip(xs.tolist(), ys.tolist())) + [(width, height), (0, height)]


def _sky(palette: dict[str, RGB], width: int, height: int, horizon: float) -> Image.Image:
    p = palette
    return _gradient(width, height, [(0.0, p["dark"]), (horizon * 0.65, p["mid"]),
                                     (horizon, _mix(p["mid"], p["warm"], 0.55)), (1.0, _mix(p["dark"], p["mid"], 0.4))])


def _stars(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: dict[str, RGB], width: int, limit: float,
           count: int) -> None:
    for x, y, r, k in zip(rng.uniform(0, width, count), rng.uniform(0, limit, count), rng.uniform(1, 2.4, count),
                          rng.uniform(0.3, 0.9, count)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_mix(palette["mid"], palette["light"], float(k)))


def _town(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int, ground: float) -> Image.Image:
    """Dusk over a hillside town: sky, stars, moon, two ridges, roofs with lit windows, a road."""
    p = palette
    image = _sky(p, width, height, 0.66)
    draw = ImageDraw.Draw(image, "RGBA")
    _stars(draw, rng, p, width, height * 0.45, 70)
    mx, my, mr = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.22) * height, 0.045 * height
    for k, alpha in ((2.2, 25), (1.6, 45)):
        draw.ellipse((mx - mr * k, my - mr * k, mx + mr * k, my + mr * k), fill=p["light"] + (alpha,))
    draw.ellipse((mx - mr, my - mr, mx + mr, my + mr), fill=_mix(p["light"], WHITE, 0.4))
    draw.polygon(_ridge(rng, width, height, 0.6, 0.03), fill=_mix(p["dark"], p["mid"], 0.55))
    near = _ridge(rng, width, height, 0.72, 0.015)
    for x in np.arange(rng.uniform(0, 0.04) * width, width, 0.075 * width):
        if rng.random() < 0.25:
            continue
        w, h = rng.uniform(0.04, 0.065) * width, rng.uniform(0.05, 0.09) * height
        base = np.interp(x, [q[0] for q in near[:-2]], [q[1] for q in near[:-2]]) + 0.01 * height
        wall, roof = _mix(p["dark"], p["mid"], 0.35), _mix(p["dark"], BLACK, 0.25)
        draw.rectangle((x, base - h, x + w, base), fill=wall)
        draw.polygon([(x - w * 0.15, base - h), (x + w / 2, base - h - 0.5 * w), (x + w * 1.15, base - h)], fill=roof)
        for wx in rng.choice([0.2, 0.6], size=int(rng.integers(1, 3)), replace=False):
            draw.rectangle((x + w * wx, base - h * 0.7, x + w * (wx + 0.2), base - h * 0.45),
                           fill=_mix(p["warm"], p["light"], 0.5))
    draw.polygon(near, fill=_mix(p["dark"], BLACK, 0.1))
    road = _mix(p["dark"], p["mid"], 0.45)
    draw.rectangle((0, (ground - 0.05) * height, width, height), fill=road)
    draw.rectangle((0, (ground - 0.05) * height, width, (ground - 0.04) * height), fill=_mix(road, p["warm"], 0.3))
    return image


def _hill(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int, ground: float) -> Image.Image:
    """A hill road at night: sky, a far ridge and a path climbing towards the horizon."""
    p = palette
    horizon = ground - 0.22
    image = _sky(p, width, height, horizon + 0.05)
    draw = ImageDraw.Draw(image, "RGBA")
    _stars(draw, rng, p, width, height * horizon * 0.8, 40)
    draw.polygon(_ridge(rng, width, height, horizon, 0.04), fill=_mix(p["dark"], p["mid"], 0.6))
    draw.polygon(_ridge(rng, width, height, horizon + 0.1, 0.015), fill=_mix(p["dark"], p["mid"], 0.3))
    vanish = rng.uniform(0.35, 0.65) * width
    draw.polygon([(vanish - 0.02 * width, (horizon + 0.1) * height), (vanish + 0.02 * width, (horizon + 0.1) * height),
                  (width * 0.95, height), (width * 0.05, height)], fill=_mix(p["mid"], p["warm"], 0.25) + (150,))
    return image


def _bokeh(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int) -> Image.Image:
    """Out-of-focus lantern lights: drawn small, blurred, scaled up (cheap and soft). Few and faint,
    so shots of one scene keep one colour mood across cuts whatever their seeds."""
    p = palette
    small = _gradient(max(width // 4, 1), max(height // 4, 1),
                      [(0.0, _mix(p["mid"], p["dark"], 0.3)), (1.0, p["dark"])])
    draw = ImageDraw.Draw(small, "RGBA")
    w, h = small.size
    for _ in range(10):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.04, 0.1) * h
        color = [p["warm"], p["light"], p["mid"]][int(rng.integers(0, 3))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color + (int(rng.integers(40, 100)),))
    return small.filter(ImageFilter.GaussianBlur(1.5)).resize((width, height), Image.Resampling.BILINEAR)


_STUDIO_TONES: tuple[RGB, ...] = ((244, 241, 235), (214, 228, 242), (222, 236, 222), (236, 224, 242),
                                   (168, 186, 214), (200, 180, 196))


def _studio(rng: np.random.Generator, width: int, height: int, avoid: Sequence[RGB]) -> Image.Image:
    """Reference-sheet paper: the tone farthest from the cast's key colours, so figures (and face
    finders) separate from it; a few faint seeded circles."""
    tone = max(_STUDIO_TONES, key=lambda c: min((math.dist(c, k) for k in avoid), default=0.0))
    image = _gradient(width, height, [(0.0, _shade(tone, 1.05)), (1.0, _shade(tone, 0.93))])
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(5):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.08, 0.2) * height
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 30))
    return image


def _backdrop(kind: str, background: Sequence[str], width: int, height: int, ground: float,
              rng: np.random.Generator, avoid: Sequence[RGB]) -> tuple[Image.Image, list[_Lantern]]:
    if not background and kind in ("hill", "bokeh"):
        return _studio(rng, width, height, avoid), []
    palette = _palette(background)
    if kind == "bokeh":
        return _bokeh(rng, palette, width, height), []
    ss = SUPERSAMPLE
    draw = _town if kind == "town" else _hill
    image = draw(rng, palette, width * ss, height * ss, ground).reduce(ss)
    count, top = (11, 0.5) if kind == "town" else (4, 0.35)
    lanterns = [_Lantern(float(rng.uniform(0.03, 0.97) * width), float(rng.uniform(0.06, top) * height),
                         float(rng.uniform(0.012, 0.026) * height), float(rng.uniform(3.5, 6.0)),
                         float(rng.uniform(0, 2 * math.pi))) for _ in range(count)]
    return image, lanterns


def _lantern_sprite(radius: float, palette: dict[str, RGB]) -> Image.Image:
    ss = SUPERSAMPLE
    r = radius * ss
    size = int(r * 6) + 2
    c = size / 2
    glow = Image.new("RGBA", (size, size), palette["warm"] + (0,))
    ImageDraw.Draw(glow).ellipse((c - r * 1.6, c - r * 1.6, c + r * 1.6, c + r * 1.6), fill=palette["warm"] + (110,))
    glow = glow.filter(ImageFilter.GaussianBlur(r * 0.8))
    draw = ImageDraw.Draw(glow)
    paper = _mix(palette["warm"], palette["light"], 0.45)
    draw.ellipse((c - r, c - r * 1.2, c + r, c + r * 1.2), fill=paper, outline=_shade(palette["warm"], 0.6),
                 width=max(1, round(r * 0.12)))
    draw.ellipse((c - r * 0.45, c - r * 0.7, c + r * 0.45, c + r * 0.7), fill=_mix(paper, WHITE, 0.5))
    cap = _shade(palette["warm"], 0.35)
    draw.rectangle((c - r * 0.45, c - r * 1.35, c + r * 0.45, c - r * 1.1), fill=cap)
    draw.rectangle((c - r * 0.45, c + r * 1.1, c + r * 0.45, c + r * 1.35), fill=cap)
    return glow.reduce(ss)


# -- motion -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Motion:
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
    "establishing": _Motion("slow pan across the scene; lanterns drift; blinks", pan=0.035),
    "wide": _Motion("slow zoom-in with a gentle sideways drift; lanterns drift; blinks", drift=0.025, zoom=0.055),
    "medium": _Motion("subtle breathing bob and blinks; the camera eases in and sways a little", drift=0.014,
                      zoom=0.025, bob=0.008),
    "close-up": _Motion("slow push-in, breathing, blinks", drift=0.01, zoom=0.035, bob=0.006,
                        blink=(0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25)),
    "extreme_close-up": _Motion("very slow zoom, slow blink", drift=0.004, zoom=0.02,
                                blink=(0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 0.875, 0.75, 0.625, 0.5,
                                       0.375, 0.25, 0.125)),
    "action": _Motion("cast runs across frame with a run cycle; small camera shake", travel=0.15, shake=1.5),
}
MAX_ZOOM, MAX_PAN, MAX_TRAVEL = 0.15, 0.35, 0.45  # totals per clip, so long shots stay framed
DRIFT_PERIOD = 8.0  # seconds; a sway rather than a pan, so long shots never drift off their layout
RUN_CYCLE = 2.0  # strides per second
DRAWN_LIDS = (0.0, 0.5, 1.0)  # other lid positions are cross-fades of these
CONTINUITY_FRAMES = 6


def _blinks(rng: np.random.Generator, n_frames: int, fps: int, stages: tuple[float, ...]) -> list[float]:
    """Lid per frame. Blinks finish before the last frames: a clip's last frame may start the next
    shot (continuity), and there the cast should be found with open eyes."""
    lids = [0.0] * n_frames
    t = rng.uniform(0.3, 1.2)
    while (start := int(t * fps)) + len(stages) < n_frames - 1:
        lids[start:start + len(stages)] = stages
        t += rng.uniform(2.2, 4.0)
    return lids


def _clip_poses(shot_type: str, count: int, direction: int) -> list[_Pose]:
    """Runners face where they run; in two-shots the outer characters turn towards each other."""
    if shot_type == "action":
        pose = _POSES["action"]
        return [pose if direction < 0 else replace(pose, turn=-pose.turn)] * count
    if count == 1 or shot_type == "establishing":
        return [_POSES["front"]] * count
    return [_POSES["three-quarter right"]] + [_POSES["front"]] * (count - 2) + [_POSES["three-quarter left"]]


@dataclass(frozen=True)
class _Camera:
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
    def plan(cls, motion: _Motion, frame: tuple[int, int], duration: float, direction: int) -> _Camera:
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


# -- staging: background, actors, compositing -----------------------------------------------

@dataclass
class _Actor:
    look: _Look
    pose: _Pose
    origin: Point  # canvas px
    scale: float
    lids: list[float]


Item = tuple[Image.Image, int, int]  # an RGBA image pasted at canvas px


class _Stage:
    """A canvas a little larger than the frame (room for the camera) with the cast placed on it."""

    def __init__(self, looks: Sequence[_Look], poses: Sequence[_Pose], expression: _Expression, framing: _Framing,
                 frame: tuple[int, int], margin: tuple[int, int], background: Sequence[str], seed: int, text: str,
                 reach: tuple[float, float] = (0.0, 0.0)):
        """`text` (the prompts) joins the seed in placing the scenery and the cast: a changed prompt
        gives a changed picture, as it would from a real model, so edits propagate downstream."""
        width, height = frame
        self.size = (width + 2 * margin[0], height + 2 * margin[1])
        self.expression = expression
        ground = (framing.rows[1] * height + margin[1]) / self.size[1]
        key_colors = [color for look in looks for color in look.colors.values()]
        self.backdrop, lanterns = _backdrop(framing.backdrop, background, *self.size, ground,
                                            _rng(seed, f"backdrop:{text}"), key_colors)
        palette = _palette(background)
        self.lanterns = [(lantern, _lantern_sprite(lantern.radius, palette)) for lantern in lanterns]
        placements = _layout(looks, poses, framing, width, height, _rng(seed, f"layout:{text}"))
        self.actors = [_Actor(look, pose, (p.origin[0] + margin[0], p.origin[1] + margin[1]), p.scale, [])
                       for look, pose, p in zip(looks, poses, placements)]
        # Sprites only cover the canvas plus how far an actor may move: close-ups stay cheap.
        self.clip = (-reach[0], -reach[1], self.size[0] + reach[0], self.size[1] + reach[1])
        self._sprites: dict[tuple[int, float, float], _Sprite | None] = {}

    def sprite(self, index: int, lid: float, phase: float) -> _Sprite | None:
        """The actor drawn with eyelids at `lid`. Blinks only redraw the face (big close-ups stay cheap);
        lids between the drawn ones cross-fade, so a slow blink never jumps."""
        key = (index, lid, phase)
        if key in self._sprites:
            return self._sprites[key]
        actor = self.actors[index]
        if lid == 0:
            sprite = _draw_sprite(actor.look, actor.pose, self.expression, 0.0, phase, actor.origin, actor.scale,
                                  self.clip)
        else:
            base = self.sprite(index, 0.0, phase)
            if base is None:
                return None
            low = max(v for v in DRAWN_LIDS if v <= lid)
            high = min(v for v in DRAWN_LIDS if v >= lid)
            patch = self._face_patch(index, low, phase, base)
            if high != low:
                patch = Image.blend(patch, self._face_patch(index, high, phase, base), (lid - low) / (high - low))
            image = base.image.copy()
            image.paste(patch, (base.face_rect[0] - base.left, base.face_rect[1] - base.top))
            sprite = replace(base, image=image)
        self._sprites[key] = sprite
        return sprite

    def _face_patch(self, index: int, lid: float, phase: float, base: _Sprite) -> Image.Image:
        if lid == 0:
            x0, y0, x1, y1 = base.face_rect
            return base.image.crop((x0 - base.left, y0 - base.top, x1 - base.left, y1 - base.top))
        actor = self.actors[index]
        patch = _draw_sprite(actor.look, actor.pose, self.expression, lid, phase, actor.origin, actor.scale,
                             base.face_rect)
        assert patch is not None  # the face rect lies inside the base sprite
        return patch.image

    def lantern_items(self, t: float) -> list[Item]:
        items = []
        for lantern, image in self.lanterns:
            y = lantern.y + lantern.radius * 0.4 * math.sin(2 * math.pi * t / lantern.period + lantern.phase)
            items.append((image, round(lantern.x - image.width / 2), round(y - image.height / 2)))
        return items

    def actor_items(self, i: int, t: float, progress: float, direction: int, travel: float,
                    bob: float) -> tuple[list[Item], dict[str, FBox]]:
        """Each actor's sprite for frame i (blink, run cycle) and where it goes; face boxes in canvas px."""
        items, boxes = [], {}
        for index, actor in enumerate(self.actors):
            phase = math.floor((t * RUN_CYCLE + index * 0.25 + 0.25) * 4) % 4 / 4 if actor.pose.action else 0.25
            sprite = self.sprite(index, actor.lids[i] if actor.lids else 0.0, phase)
            if sprite is None:
                continue
            dx = direction * progress * travel
            dy = -bob * math.sin(2 * math.pi * t / 3.2 + index * 1.7)
            if actor.pose.action:
                dy -= abs(math.sin(math.pi * (t * RUN_CYCLE + index * 0.25))) * actor.scale * 0.03
            items.append((sprite.image, sprite.left + round(dx), sprite.top + round(dy)))
            fx0, fy0, fx1, fy1 = sprite.face
            boxes[actor.look.slug] = (fx0 + round(dx), fy0 + round(dy), fx1 + round(dx), fy1 + round(dy))
        return items, boxes


def _compose(backdrop: Image.Image, items: Sequence[Item]) -> Image.Image:
    canvas = backdrop.copy()
    for image, x, y in items:
        canvas.paste(image, (x, y), image)
    return canvas


def _coverage(size: tuple[int, int], items: Sequence[Item]) -> Image.Image:
    """Where the items are opaque: the character layer's alpha."""
    mask = Image.new("L", size, 0)
    for image, x, y in items:
        alpha = image.getchannel("A")
        mask.paste(255, (x, y, x + image.width, y + image.height), alpha)
    return mask


def _map_box(box: FBox, camera: FBox, frame: tuple[int, int]) -> Box | None:
    """A canvas box seen through the camera, in frame px, clipped; None when off-screen."""
    sx, sy = frame[0] / (camera[2] - camera[0]), frame[1] / (camera[3] - camera[1])
    x0 = max(0, math.floor((box[0] - camera[0]) * sx))
    y0 = max(0, math.floor((box[1] - camera[1]) * sy))
    x1 = min(frame[0], math.ceil((box[2] - camera[0]) * sx))
    y1 = min(frame[1], math.ceil((box[3] - camera[1]) * sy))
    return (x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def _fit_first_frame(first: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.asarray(first)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    if image.shape[:2] != (height, width):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    return image


CONTINUITY_MIN_FACE = 0.0005  # share of the frame: small enough for the faces of an establishing shot


def _faces_in(image: np.ndarray, looks: Sequence[_Look]) -> dict[str, Box]:
    """Where the cast already is in a given frame (continuity): found by their skin and eye colours."""
    found: dict[str, Box] = {}
    for look in looks:
        faces = weightfree.find_faces(image, look.colors["skin"], look.colors["eyes"],
                                      min_share=CONTINUITY_MIN_FACE)
        if faces:
            x0, y0, x1, y1 = (int(v) for v in faces[0])
            found[look.slug] = (x0, y0, x1, y1)
    return found


# -- the renderer -------------------------------------------------------------------------

class PrevizRenderer:
    """Deterministic CPU drawings of the cast: same request, same pixels."""

    backend = "previz (embedded, CPU)"
    device = "cpu"
    version = "previz-1"

    def render_still(self, request: StillRequest) -> StillResult:
        framing = _framing(request.framing)
        size = (request.width, request.height)
        looks = [_resolve_look(c, request.palette_overrides, request.outfit) for c in request.characters]
        pose, expression = _resolve_pose(request.pose), _resolve_expression(request.expression)
        stage = _Stage(looks, [pose] * len(looks), expression, framing, size, (0, 0), request.background, request.seed,
                       request.prompt)
        items, boxes = stage.actor_items(0, 0.0, 0.0, 1, 0.0, 0.0)
        image = np.array(_compose(stage.backdrop, stage.lantern_items(0.0) + items))
        faces = {slug: mapped for slug, box in boxes.items() if (mapped := _map_box(box, (0, 0, *size), size))}
        params = self._params(request.seed, request.framing, looks, {look.slug: pose.name for look in looks},
                              expression, request.outfit, "none (still)", size, 1, None)
        return StillResult(image=image, face_boxes=faces, params=params)

    def render_clip(self, request: ClipRequest) -> ClipResult:
        if request.shot_type not in MOTIONS:
            raise ValueError(f"unknown shot type {request.shot_type!r}; previz animates {sorted(MOTIONS)}")
        if request.n_frames < 1 or request.fps < 1:
            raise ValueError(f"a clip needs n_frames >= 1 and fps >= 1, got {request.n_frames} and {request.fps}")
        framing = FRAMINGS[request.shot_type]
        motion, size = MOTIONS[request.shot_type], (request.width, request.height)
        fps, n = request.fps, request.n_frames
        duration = n / fps
        rng = _rng(request.seed, "camera")
        direction = 1 if rng.random() < 0.5 else -1
        camera = _Camera.plan(motion, size, duration, direction)
        travel, bob = min(motion.travel * duration, MAX_TRAVEL) * size[0], motion.bob * size[1]
        looks = [_resolve_look(c, request.palette_overrides, "default outfit") for c in request.characters]
        poses = _clip_poses(request.shot_type, len(looks), direction)
        expression = _EXPRESSIONS["neutral"]  # shot prompts carry whole design prompts: no reliable mood words
        stage = _Stage(looks, poses, expression, framing, size, camera.margin, request.background, request.seed,
                       f"{request.prompt}\n{request.motion_prompt}", reach=(travel / 2 + 4, bob + 4))
        for actor in stage.actors:
            actor.lids = _blinks(_rng(request.seed, f"blink:{actor.look.slug}"), n, fps, motion.blink)
        focus = self._focus(stage)
        first = None if request.first_frame is None else _fit_first_frame(request.first_frame, *size)

        frames: list[np.ndarray] = []
        faces: list[dict[str, Box]] = []
        previous: tuple[Any, ...] | None = None
        canvas = stage.backdrop
        for i in range(n):
            t = i / fps
            progress = t / duration - 0.5
            actors, boxes = stage.actor_items(i, t, progress, direction, travel, bob)
            items = stage.lantern_items(t) + actors
            key = tuple((id(image), x, y) for image, x, y in items)
            if key != previous:  # blinks and bobs change rarely: reuse the composite meanwhile
                canvas, previous = _compose(stage.backdrop, items), key
            view = camera.box(t, progress, focus, rng)
            frame = canvas.resize(size, Image.Resampling.BILINEAR, box=view)
            frame_faces = {slug: mapped for slug, box in boxes.items() if (mapped := _map_box(box, view, size))}
            if first is not None and i < CONTINUITY_FRAMES:
                frame, frame_faces = self._continue(first, frame, i, looks, frame_faces, stage, actors, view)
            frames.append(np.array(frame))
            faces.append(frame_faces)
        params = self._params(request.seed, request.shot_type, looks, {a.look.slug: a.pose.name for a in stage.actors},
                              expression, "default outfit", motion.description, size, n, fps)
        params["continuity_frames"] = min(CONTINUITY_FRAMES, n) if first is not None else 0
        return ClipResult(frames=frames, face_boxes=faces, params=params)

    @staticmethod
    def _continue(first: np.ndarray, frame: Image.Image, i: int, looks: Sequence[_Look], faces: dict[str, Box],
                  stage: _Stage, actors: Sequence[Item], view: FBox) -> tuple[Any, dict[str, Box]]:
        """Continuity: frame 0 is the given frame; then its picture dissolves into the new shot while the
        cast is drawn fully opaque, so every frame shows each character whole (identity holds)."""
        if i == 0:
            return first.copy(), _faces_in(first, looks)
        keep = 1 - i / CONTINUITY_FRAMES
        mask = _coverage(stage.size, actors).resize(frame.size, Image.Resampling.BILINEAR, box=view)
        weight = keep * (1 - np.asarray(mask, dtype=np.float32)[..., None] / 255)
        drawn = np.asarray(frame, dtype=np.float32)
        return (drawn + (first - drawn) * weight).round().astype(np.uint8), faces

    @staticmethod
    def _focus(stage: _Stage) -> Point:
        """Where zooms push in: the middle of the cast's faces (the canvas centre if none shows)."""
        faces = [s.face for i in range(len(stage.actors)) if (s := stage.sprite(i, 0.0, 0.25)) is not None]
        if not faces:
            return stage.size[0] / 2, stage.size[1] / 2
        return (sum(f[0] + f[2] for f in faces) / (2 * len(faces)), sum(f[1] + f[3] for f in faces) / (2 * len(faces)))

    def _params(self, seed: int, framing: str, looks: Sequence[_Look], poses: dict[str, str], expression: _Expression,
                outfit: str, motion: str, size: tuple[int, int], n_frames: int, fps: int | None) -> dict[str, Any]:
        return {
            "renderer": "previz", "backend": self.backend, "version": self.version, "device": self.device,
            "seed": seed, "framing": framing, "pose": poses, "expression": expression.name,
            "expression_drawn": expression.base, "outfit": outfit, "motion": motion,
            "resolution": list(size), "n_frames": n_frames, "fps": fps,
            "colors": {look.slug: {role: rgb_to_hex(color) for role, color in look.colors.items()} for look in looks},
            "features_not_drawn": {look.slug: list(look.not_drawn) for look in looks},
        }


def _framing(name: str) -> _Framing:
    if name not in FRAMINGS:
        raise ValueError(f"unknown framing {name!r}; previz draws {sorted(FRAMINGS)}")
    return FRAMINGS[name]
