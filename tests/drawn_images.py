"""Synthetic previz-like drawings for tests of the colour-based face finder and the metrics."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SKIN, EYES, HAIR = (243, 211, 189), (40, 60, 200), (122, 74, 42)


def drawn_face(size: tuple[int, int] = (240, 320), centre: tuple[int, int] = (160, 100),
               skin=SKIN, eyes=EYES, background=(30, 30, 60)) -> np.ndarray:
    """An ellipse face with two eye dots and a hair cap, like a previz drawing."""
    image = Image.new("RGB", (size[1], size[0]), background)
    draw = ImageDraw.Draw(image)
    cx, cy = centre
    draw.pieslice((cx - 42, cy - 55, cx + 42, cy + 10), 180, 360, fill=HAIR)
    draw.ellipse((cx - 35, cy - 40, cx + 35, cy + 45), fill=skin)
    for ex in (cx - 14, cx + 14):
        draw.ellipse((ex - 4, cy - 5, ex + 4, cy + 5), fill=eyes)
    return np.array(image)
