"""Image value types and helpers shared by every package (render, metrics, review, training,
production): pixel boxes, colours and colour masks, PNG files, thumbnails. Images are H×W×3
uint8 RGB arrays."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from anime_pipeline.storage import atomic_path

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, end-exclusive
ColorLike = str | Sequence[int]  # "#rrggbb" or (r, g, b)

# Flat cel colours drift by antialiasing and compression; 40 in RGB Euclidean distance keeps a
# drawn colour together while separating the distinct colours of one character design.
COLOR_TOLERANCE = 40.0


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb) -> str:
    """(r, g, b), ints or floats (rounded and clipped to 0-255) → "#rrggbb"."""
    r, g, b = (int(min(255, max(0, round(float(v))))) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def as_rgb(color: ColorLike) -> tuple[int, int, int]:
    return hex_to_rgb(color) if isinstance(color, str) else (int(color[0]), int(color[1]), int(color[2]))


def _min_distance_sq(image: np.ndarray, colors: Sequence[ColorLike]) -> np.ndarray:
    """Per pixel, the squared RGB distance to the nearest of `colors`."""
    # Channel planes rather than an H×W×3 array: reductions over a length-3 axis are several
    # times slower in numpy. Integers below 2²⁴ are exact in float32.
    planes = [image[..., i].astype(np.float32) for i in range(3)]
    nearest = None
    for color in colors:
        r, g, b = (float(v) for v in as_rgb(color))
        distance = (planes[0] - r) ** 2 + (planes[1] - g) ** 2 + (planes[2] - b) ** 2
        nearest = distance if nearest is None else np.minimum(nearest, distance)
    return nearest


def color_mask(image: np.ndarray, colors: Sequence[ColorLike], tolerance: float = COLOR_TOLERANCE) -> np.ndarray:
    """H×W bool: pixels within RGB Euclidean distance `tolerance` of any of `colors`."""
    return _min_distance_sq(image, colors) <= tolerance**2


def save_png(path: Path, image: np.ndarray, compress_level: int = 1) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=compress_level)
    return path


def load_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def data_uri_thumbnail(image: np.ndarray, width: int = 160) -> str:
    """A small inline JPEG for Dagster metadata (Markdown image), so the UI shows what was made."""
    img = Image.fromarray(image)
    height = max(1, round(img.height * width / img.width))
    buffer = io.BytesIO()
    img.resize((width, height)).save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
