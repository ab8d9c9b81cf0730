"""Developing a rendered image: exposure and contrast applied after the render, the same on every backend.

A real model gives no direct exposure knob, so the dataset learner's brightness and contrast fixes are
applied here, to the returned pixels; the renderer records what it applied in the image's params.
"""

from __future__ import annotations

import numpy as np

MID_GREY = 127.5


def develop(image: np.ndarray, exposure: float = 0.0, contrast: float = 1.0) -> np.ndarray:
    """`image` (H×W×3 uint8) with its values ×2^exposure, then spread ×contrast around mid-grey, clipped;
    the same array when both are neutral, so a default render keeps its exact pixels."""
    if exposure == 0.0 and contrast == 1.0:
        return image
    values = image.astype(np.float32) * np.float32(2.0 ** exposure)
    if contrast != 1.0:
        values = (values - MID_GREY) * np.float32(contrast) + MID_GREY
    return np.clip(values.round(), 0, 255).astype(np.uint8)
