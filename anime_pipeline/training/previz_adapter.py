"""The embedded stand-in for character LoRA training: a previz adapter.

It is NOT a LoRA and writes no .safetensors. It fits the character's colour palette to the
approved dataset (k-means on figure pixels, started from the design's key colours), so the
previz renderer can draw the character as the approved images show it (via
`palette_overrides`). The loss history is real: Lloyd's algorithm's mean squared distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anime_pipeline.config.schema import Character
from anime_pipeline.imaging import Box, color_mask, hex_to_rgb, rgb_to_hex
from anime_pipeline.metrics.weightfree import crop
from anime_pipeline.storage import read_json, write_json

BACKEND = "previz adapter (embedded, weight-free palette fit; not a LoRA)"
SAMPLE_PIXELS = 20_000
SHADE = 0.72  # cel shading darkens a colour by roughly this factor
# Pixels farther than this from every key colour are background, not the figure: a palette
# drift larger than this is not followed
FIGURE_RADIUS = 60.0


@dataclass
class PrevizAdapter:
    character: str
    palette: dict[str, str]  # role (hair/skin/eyes/outfit/accent) → fitted #rrggbb
    loss_history: list[float]  # mean squared RGB distance to the nearest centre, per iteration
    n_images: int
    seed: int
    iterations: int
    backend: str = BACKEND

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> PrevizAdapter:
        """The inverse of to_json."""
        return cls(**payload)

    def save(self, path: Path | str) -> Path:
        """Write to_json() atomically to `path`."""
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: Path | str) -> PrevizAdapter:
        return cls.from_json(read_json(path))


def figure_box(face: Box, shape: tuple[int, ...]) -> Box:
    """Where a standing figure under the head `face` lies: one face-width either side, from half
    a face-height above the face to the bottom of the image."""
    x0, y0, x1, y1 = face
    width, height = x1 - x0, y1 - y0
    return max(0, x0 - width), max(0, y0 - height // 2), min(shape[1], x1 + width), shape[0]


def _figure_pixels(image: np.ndarray, face: Box | None, keys: list[str]) -> np.ndarray:
    """(M, 3) uint8: pixels of the figure region (whole image without a face box) within
    FIGURE_RADIUS of some key colour."""
    region = crop(image, figure_box(face, image.shape) if face is not None else None)
    return region[color_mask(region, keys, FIGURE_RADIUS)]


def _sample(images: Sequence[np.ndarray], face_boxes: Sequence[Box | None], keys: list[str], seed: int) -> np.ndarray:
    """SAMPLE_PIXELS figure pixels (all when fewer), drawn without replacement by `seed`."""
    pool = np.concatenate([_figure_pixels(image, box, keys) for image, box in zip(images, face_boxes)])
    if not len(pool):
        raise ValueError("no pixel of the images is near the character's key colours")
    if len(pool) > SAMPLE_PIXELS:
        pool = pool[np.sort(np.random.default_rng(seed).choice(len(pool), SAMPLE_PIXELS, replace=False))]
    return pool.astype(np.float64)


def _lloyd(pixels: np.ndarray, centres: np.ndarray, iterations: int) -> tuple[np.ndarray, list[float]]:
    """k-means: each iteration assigns every pixel to its nearest centre (recording the mean
    squared distance) and moves each centre to its pixels' mean; an empty centre stays put.
    Neither step can raise the loss, so the history is non-increasing."""
    centres = centres.copy()
    history = []
    for _ in range(iterations):
        distances = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        nearest = distances.argmin(axis=1)
        history.append(float(distances[np.arange(len(pixels)), nearest].mean()))
        counts = np.bincount(nearest, minlength=len(centres))
        sums = np.stack([np.bincount(nearest, weights=pixels[:, c], minlength=len(centres)) for c in range(3)], axis=1)
        moved = counts > 0
        centres[moved] = sums[moved] / counts[moved, None]
    return centres, history


def fit_previz_adapter(images: Sequence[np.ndarray], face_boxes: Sequence[Box | None], character: Character,
                       iterations: int = 25, seed: int = 0) -> PrevizAdapter:
    """Fit the character's palette to the approved images: k-means (k = the design's distinct
    key colours, plus one shade centre per key colour; roles sharing a colour share a centre) over SAMPLE_PIXELS figure pixels
    sampled with `seed`, started at the key colours; each role keeps the centre that started at
    its own key colour, so two close key colours stay two colours. Deterministic for the same
    inputs and seed."""
    if not len(images) or len(images) != len(face_boxes):
        raise ValueError(f"need images with one face box (or None) each, got {len(images)} and {len(face_boxes)}")
    roles = {role: color for role, color in character.appearance.key_colors.model_dump().items() if color is not None}
    keys = list(dict.fromkeys(roles.values()))
    base = np.array([hex_to_rgb(color) for color in keys], dtype=np.float64)
    # Shade centres soak up cel-shading and anti-aliased edge pixels, which would otherwise
    # drag a small region's colour (the eyes) toward its neighbours.
    start = np.concatenate([base, base * SHADE])
    centres, history = _lloyd(_sample(images, face_boxes, keys, seed), start, iterations)
    palette = {role: rgb_to_hex(centres[keys.index(color)]) for role, color in roles.items()}
    return PrevizAdapter(character.slug, palette, history, len(images), seed, iterations)
