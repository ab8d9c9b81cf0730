"""Colours and deterministic randomness shared by every part of the previz drawings.

Everything drawn is a pure function of the request: colours mix in integer RGB, and every
random choice draws from a named stream seeded by the request's seed (`stream_rng`).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from anime_pipeline.imaging import hex_to_rgb

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
INK: RGB = (46, 32, 44)
MOUTH: RGB = (128, 40, 52)
TONGUE: RGB = (232, 120, 124)
BLUSH: RGB = (255, 110, 135)


def parse_color(value: str) -> RGB:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError(f"{value!r} is not a colour: write it as #rrggbb")
    return hex_to_rgb(value)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def shade(color: RGB, factor: float) -> RGB:
    """factor < 1 darkens towards black, > 1 lightens towards white."""
    return mix(color, BLACK, 1 - factor) if factor < 1 else mix(color, WHITE, factor - 1)


def luma(color: RGB) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


def unit_hash(*parts: object) -> float:
    """A stable float in [0, 1): Python's hash() is salted per process, so it can't be used."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """Independent deterministic streams, so adding draws to one never shifts another."""
    return np.random.default_rng([seed % 2**63, int(unit_hash(stream) * 2**32)])
