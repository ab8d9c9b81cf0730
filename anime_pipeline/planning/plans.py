"""What a director answers: a refined shot prompt and a scene's shot list. Each carries the
backend that answered (`source`, as metadata shows it) and the trail of backends tried
(`path`: "<label>: ok" for the one that answered, "<label>: <why not>" for each before it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refinement:
    original: str
    refined: str
    style_additions: tuple[str, ...]
    negative_additions: tuple[str, ...]
    source: str
    path: tuple[str, ...]


@dataclass(frozen=True)
class DialogueLine:
    speaker: str  # a character slug
    line: str


@dataclass(frozen=True)
class PlannedShot:
    type: str  # a motion preset (config.schema.MOTION_PRESETS)
    duration: float  # seconds
    characters: tuple[str, ...]  # slugs
    dialogue: tuple[DialogueLine, ...] = ()


@dataclass(frozen=True)
class PlannedScene:
    shots: tuple[PlannedShot, ...]
    source: str
    path: tuple[str, ...]
