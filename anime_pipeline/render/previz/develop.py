"""What the previz drawings take from a model's sampling settings and lighting words, so the settings a
request carries change the picture as they would on a real backend (and the dataset learner has levers):

- lighting words in the prompt: "low-key lighting" / "underexposed" darken the render by a stop,
  "high-key lighting" / "overexposed" brighten it by one;
- steps: below CRISP_STEPS an under-sampled render is soft (a blur growing as steps fall);
- exposure and contrast: developed after the render (`render.develop`), as on every backend.

A request with none of these (the sample show's) keeps its exact pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from anime_pipeline.render.develop import develop

LIGHTING_STOPS = {"low-key lighting": -1.0, "low key lighting": -1.0, "underexposed": -1.0,
                  "high-key lighting": 1.0, "high key lighting": 1.0, "overexposed": 1.0}
CRISP_STEPS = 20
SOFTEST_PX_PER_128 = 3.0  # blur radius at 0 steps, per 128 px of image height


def lighting_stops(prompt: str) -> float:
    """The exposure the prompt's lighting words ask for, in stops (each word counts once), within ±2."""
    text = prompt.lower()
    return max(-2.0, min(2.0, sum(stops for words, stops in LIGHTING_STOPS.items() if words in text)))


def softness(steps: int, height: int) -> float:
    """Blur radius (px) of a render sampled with `steps`: 0 from CRISP_STEPS up."""
    return round(max(0.0, (CRISP_STEPS - steps) / CRISP_STEPS) * SOFTEST_PX_PER_128 * height / 128, 2)


def applied(height: int, prompt: str, steps: int, exposure: float = 0.0, contrast: float = 1.0) -> dict[str, Any]:
    """What `finish` applies to an image `height` px high (for the render's params)."""
    lighting = lighting_stops(prompt)
    return {"steps": steps, "softness_px": softness(steps, height), "lighting_stops": lighting,
            "exposure": round(lighting + exposure, 4), "contrast": contrast}


def finish(image: np.ndarray, prompt: str, steps: int, exposure: float = 0.0,
           contrast: float = 1.0) -> tuple[np.ndarray, dict[str, Any]]:
    """The drawing as the settings make it, and what was applied (for the render's params)."""
    settings = applied(image.shape[0], prompt, steps, exposure, contrast)
    radius = settings["softness_px"]
    if radius:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))
    return develop(image, settings["lighting_stops"] + exposure, contrast), settings
