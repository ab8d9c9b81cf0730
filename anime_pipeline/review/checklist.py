"""The weight-free feature checklist: which of a character's key features and common errors
can be judged from colour evidence alone, and the judgement.

Colour is all a weight-free reviewer sees, so only two kinds of item are checkable:
- an item naming a colour role ("short bob" → hair, "glowing tail" → accent): the role's key
  colour must be present ("missing <item>" errors are the same check);
- an error naming a colour on the face ("green eyes", "blonde hair"): that colour must be
  absent around the face, unless it is too close to one of the character's own key colours.
Anything else (shapes, counts, props: "satchel", "two tails", "human face") is not checkable;
it is entered as True (no evidence against) and listed in `unchecked`, so a person — or a
vision model — can see that it was never looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from anime_pipeline.config.schema import Appearance
from anime_pipeline.imaging import hex_to_rgb
from anime_pipeline.metrics.weightfree import palette_match

# Most specific role first: "glowing tail" is evidence for the accent, not for the fur
ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "accent": ("glow", "glowing", "accent", "buttons", "brass", "badge", "trim", "ribbon"),
    "eyes": ("eye", "eyes"),
    "hair": ("hair", "bob", "ponytail", "braid", "bangs", "twintails", "fringe"),
    "outfit": ("jacket", "coat", "outfit", "uniform", "dress", "shirt", "cape", "scarf", "skirt"),
    "skin": ("fur", "ears", "tail", "skin"),
}
FACE_ROLES = ("eyes", "hair")  # colour errors judged around the face only: elsewhere the background may hold the colour
NAMED_COLORS: dict[str, str] = {
    "red": "#d03030", "green": "#30a040", "blue": "#3050d0", "yellow": "#e8d040",
    "orange": "#e88030", "purple": "#8040b0", "pink": "#f090b8", "brown": "#6a4028",
    "black": "#141414", "white": "#f8f8f8", "grey": "#808080", "gray": "#808080",
    "blonde": "#f0d890", "silver": "#c0c8d0",
}
NAMED_TOLERANCE = 60.0  # a colour word covers a wider range than one drawn colour
ERROR_COLOR_SHARE = 0.005  # share of the face region a wrong colour must reach to count


@dataclass(frozen=True)
class Checklist:
    items: dict[str, bool]  # key feature / "no <error>" → passed (True also when unchecked)
    unchecked: list[str]  # items no colour evidence could judge

    @property
    def checked(self) -> list[bool]:
        return [passed for item, passed in self.items.items() if item not in self.unchecked]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def role_of(text: str) -> str | None:
    """The colour role a feature names (first role in ROLE_WORDS order with a matching word), if any."""
    words = set(_words(text))
    return next((role for role, vocabulary in ROLE_WORDS.items() if words & set(vocabulary)), None)


def _distance(a: str, b: str) -> float:
    return float(np.linalg.norm(np.subtract(hex_to_rgb(a), hex_to_rgb(b))))


def _wrong_color_absent(error: str, appearance: Appearance, face_region: np.ndarray | None) -> bool | None:
    """For '<colour> <face role>' errors: True if that colour is (nearly) absent around the face,
    None when it cannot be judged (no such wording, no face, or the colour is one of the design's own)."""
    color = next((NAMED_COLORS[w] for w in _words(error) if w in NAMED_COLORS), None)
    if color is None or role_of(error) not in FACE_ROLES or face_region is None or face_region.size == 0:
        return None
    own = [c for c in appearance.key_colors.model_dump().values() if c is not None]
    if any(_distance(color, c) <= NAMED_TOLERANCE for c in own):
        return None
    return palette_match(face_region, [color], NAMED_TOLERANCE) < ERROR_COLOR_SHARE


def _error_passes(error: str, appearance: Appearance, present: Mapping[str, bool],
                  face_region: np.ndarray | None) -> bool | None:
    words = _words(error)
    if words and words[0] == "missing":
        role = role_of(" ".join(words[1:]))
        return present.get(role) if role else None
    return _wrong_color_absent(error, appearance, face_region)


def check_features(appearance: Appearance, present: Mapping[str, bool], face_region: np.ndarray | None) -> Checklist:
    """One entry per key feature (passed = its role's key colour is present, per `present`) and
    one "no <error>" entry per common error (see the module docstring); None-judged → unchecked."""
    items: dict[str, bool] = {}
    unchecked: list[str] = []
    judged = [(feature, present.get(role_of(feature) or "")) for feature in appearance.key_features]
    judged += [(f"no {error}", _error_passes(error, appearance, present, face_region))
               for error in appearance.common_errors]
    for item, passed in judged:
        items[item] = True if passed is None else bool(passed)
        if passed is None:
            unchecked.append(item)
    return Checklist(items, unchecked)
