"""What to draw: a character's appearance, a pose and an expression as drawing parameters.

Appearance data (key colours, species, height, key features) becomes a `Look`; reference
poses and expressions map onto drawn ones, and free text ("running", "shy smile") onto the
nearest drawn base plus a small stable variation, so every name gives its own picture.
Features the drawings cannot show are kept in `Look.not_drawn` for the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from anime_pipeline.config.schema import Character
from anime_pipeline.render.previz.colors import RGB, parse_color, shade, unit_hash

ROLES = ("hair", "skin", "eyes", "outfit", "accent")
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
class Look:
    """One character as drawn: its resolved colours by role, and the key features the drawing shows."""

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


def resolve_look(character: Character, overrides: dict[str, dict[str, str]], outfit: str) -> Look:
    appearance = character.appearance
    keys = appearance.key_colors
    colors = {role: parse_color(getattr(keys, role)) for role in ROLES if getattr(keys, role)}
    colors.setdefault("accent", shade(colors["eyes"], 1.3))
    for role, value in overrides.get(character.slug, {}).items():
        if role not in ROLES:
            raise ValueError(f"palette override for {character.slug!r} names role {role!r}; roles are {ROLES}")
        colors[role] = parse_color(value)
    if outfit.strip().lower() not in ("", "default outfit"):
        # Outfits share the key colour: a small, stable shade shift keeps identity readable.
        colors["outfit"] = shade(colors["outfit"], 1 + (unit_hash("outfit", outfit) - 0.5) * 0.16)
    features, not_drawn = _parse_features(appearance.key_features)
    return Look(character.slug, appearance.is_human, appearance.height, colors, features, not_drawn)


@dataclass(frozen=True)
class Pose:
    """A drawn pose; free-text poses are a drawn base with a stable variation."""

    name: str
    turn: float = 0.0  # 0 front, 0.5 three-quarter, 1 profile; > 0 faces image left
    back: bool = False
    sitting: bool = False
    action: bool = False
    arm: float = 0.0  # how far the near hand is raised (variation for free-text poses)
    lean: float = 0.0


POSES = {
    "front": Pose("front"),
    "three-quarter left": Pose("three-quarter left", turn=0.5),
    "profile left": Pose("profile left", turn=1.0),
    "back": Pose("back", back=True),
    "three-quarter right": Pose("three-quarter right", turn=-0.5),
    "profile right": Pose("profile right", turn=-1.0),
    "sitting": Pose("sitting", turn=0.15, sitting=True),
    "action": Pose("action", turn=0.6, action=True, lean=0.12),
}
_POSE_WORDS = (
    (r"\b(run|leap|jump|dash|fight|chas|fly)", "action"),
    (r"\b(sit|curl|kneel|crouch|rest)", "sitting"),
    (r"\b(back|behind|away)\b", "back"),
)


def _base_name(key: str, words: tuple[tuple[str, str], ...], default: str) -> str:
    """The drawn base for a name that is not one of ours: the first keyword match ("running" → action)."""
    return next((base for pattern, base in words if re.search(pattern, key)), default)


def resolve_pose(name: str) -> Pose:
    key = name.strip().lower()
    if key in POSES:
        return POSES[key]
    pose = POSES[_base_name(key, _POSE_WORDS, "front")]
    turn = pose.turn if pose.back else max(-1.0, min(1.0, pose.turn + (unit_hash("turn", key) - 0.5) * 0.5))
    return replace(pose, name=name, turn=turn, arm=unit_hash("arm", key) * 0.9,
                   lean=pose.lean + (unit_hash("lean", key) - 0.5) * 0.08)


@dataclass(frozen=True)
class Expression:
    """A drawn expression: brows, lids, mouth, eyes and an emote; `base` is the drawn one it varies."""

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


EXPRESSIONS = {
    "neutral": Expression("neutral", "neutral"),
    "happy": Expression("happy", "happy", lift=0.004, mouth="smile", eye_scale=0.92, emote="sparkle"),
    "sad": Expression("sad", "sad", brow=0.014, mouth="frown", eye_scale=0.95, lid_outer=0.3, emote="gloom"),
    "angry": Expression("angry", "angry", brow=-0.016, mouth="shout", lid_inner=0.35, emote="vein"),
    "surprised": Expression("surprised", "surprised", lift=0.014, mouth="o", eye_scale=1.12, iris_scale=0.72,
                            emote="shock"),
    "embarrassed": Expression("embarrassed", "embarrassed", brow=0.009, mouth="wavy", gaze=0.45, blush=True,
                              emote="sweat"),
}
_EXPRESSION_WORDS = (
    (r"\b(smil|grin|laugh|cheer|joy|happ|delight)", "happy"),
    (r"\b(sad|cry|tear|gloom|sleepy|tired|lonely)", "sad"),
    (r"\b(angry|anger|determin|fierce|mad|annoy|furious)", "angry"),
    (r"\b(surpris|shock|alert|startl|gasp|puzzl)", "surprised"),
    (r"\b(blush|shy|embarr|flust)", "embarrassed"),
)


def resolve_expression(name: str) -> Expression:
    key = name.strip().lower()
    if key in EXPRESSIONS:
        return EXPRESSIONS[key]
    expression = EXPRESSIONS[_base_name(key, _EXPRESSION_WORDS, "neutral")]
    return replace(expression, name=name, brow=expression.brow + (unit_hash("brow", key) - 0.5) * 0.01,
                   mouth_width=0.8 + 0.4 * unit_hash("mouth", key),
                   eye_scale=expression.eye_scale * (0.95 + 0.1 * unit_hash("eyes", key)))
