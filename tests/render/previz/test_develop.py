"""The sampling settings and lighting words previz honours (the dataset learner's levers), and the
developing step every backend shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config import Project
from anime_pipeline.metrics import weightfree
from anime_pipeline.render.base import StillRequest
from anime_pipeline.render.develop import develop
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.render.previz.develop import CRISP_STEPS, lighting_stops, softness

ROOT = Path(__file__).resolve().parents[3]
WORLD = ("#1b1f3b", "#3d3a6b", "#f2a65a", "#f7d488", "#8fb8de")
MIO = Project.load(ROOT / "project_configs").shows["lantern-post"].character("mio")


def _render(**fields) -> np.ndarray:
    base = dict(characters=(MIO,), prompt="anime, mio", negative_prompt="", seed=5, width=128, height=192,
                background=WORLD)
    return PrevizRenderer().render_still(StillRequest(**{**base, **fields})).image


def test_neutral_settings_keep_the_exact_pixels():
    image = _render()
    assert develop(image) is image
    assert np.array_equal(_render(steps=CRISP_STEPS, cfg=12.0), image)  # previz draws the same at any cfg


def test_low_key_lighting_darkens_by_a_stop_and_exposure_undoes_it():
    prompt = "anime, mio, low-key lighting"  # (any prompt change moves the layout, as on a real model)
    dark, compensated = _render(prompt=prompt), _render(prompt=prompt, exposure=1.0)
    assert weightfree.mean_luminance(dark) == pytest.approx(weightfree.mean_luminance(compensated) / 2, rel=0.05)
    assert np.abs(develop(compensated, -1.0).astype(int) - dark).max() <= 1  # one gain, applied once
    assert lighting_stops("High-Key Lighting, overexposed") == 2.0 and lighting_stops("a dark hill road") == 0.0


def test_few_steps_soften_the_drawing():
    crisp, soft = _render(), _render(steps=6)
    assert softness(CRISP_STEPS, 192) == 0 < softness(10, 192) < softness(6, 192)
    assert weightfree.sharpness(soft) < weightfree.sharpness(crisp) - 0.2


def test_contrast_spreads_values_around_mid_grey_and_the_params_record_it():
    result = PrevizRenderer().render_still(StillRequest(characters=(MIO,), prompt="anime", negative_prompt="", seed=5,
                                                        width=128, height=192, background=WORLD, contrast=1.5,
                                                        exposure=0.25, cfg=9.0))
    plain = _render(prompt="anime")
    assert weightfree.contrast(result.image) > weightfree.contrast(plain)
    assert {k: result.params[k] for k in ("exposure", "contrast", "steps", "cfg", "lighting_stops")} == {
        "exposure": 0.25, "contrast": 1.5, "steps": 28, "cfg": 9.0, "lighting_stops": 0.0}
    assert np.array_equal(develop(np.full((1, 2, 3), 100, np.uint8), 1.0, 1.0), np.full((1, 2, 3), 200, np.uint8))
