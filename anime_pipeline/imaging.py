"""Small image helpers shared by the production steps."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from anime_pipeline.storage import atomic_path


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def rgb_to_hex(rgb) -> str:
    """(r, g, b), ints or floats (rounded and clipped to 0-255) → "#rrggbb"."""
    r, g, b = (int(min(255, max(0, round(float(v))))) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


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
