"""Weight-free still metrics: style adherence and the aesthetic proxy, on images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.metrics import weightfree as wf


def test_palette_adherence_counts_shades_and_blends_but_not_other_colours():
    image = np.zeros((1, 5, 3), np.uint8)
    image[0, 0] = (200, 40, 40)  # a palette colour
    image[0, 1] = (100, 20, 20)  # its half shade (black → red segment)
    image[0, 2] = (100, 120, 120)  # halfway red → teal (a blend)
    image[0, 3] = (0, 0, 0)  # black: the dark end of every shade
    image[0, 4] = (40, 220, 40)  # green: not in the palette, nowhere near a segment
    palette = ["#c82828", (0, 200, 200)]
    assert wf.palette_adherence(image, palette) == pytest.approx(0.8)
    assert wf.palette_adherence(image, palette, tolerance=0) == pytest.approx(0.8)
    assert wf.palette_adherence(image, []) == 0.0


def test_flat_colour_share():
    flat = np.zeros((10, 10, 3), np.uint8)
    flat[:, 5:] = (200, 200, 200)  # two fills: only the columns beside the edge are not flat
    assert wf.flat_colour_share(flat) == pytest.approx(0.8)
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert wf.flat_colour_share(noise) == 0.0


def test_style_adherence_measures_cel_tags_and_lists_the_rest():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, 5:] = (200, 40, 40)
    score = wf.style_adherence(image, ["#c82828"], ["anime", "Cel Shading"])
    assert score.details["palette"] == 1.0 and score.details["flat_colour"] == pytest.approx(0.8)
    assert score.value == pytest.approx(0.9)
    assert score.details["unmeasured_tags"] == ["anime"]
    assert score.backend == wf.STYLE_BACKEND
    assert wf.style_adherence(image, ["#c82828"]).value == 1.0  # no tags: the palette alone


def test_aesthetic_proxy_is_on_a_ten_point_scale():
    grey = np.full((8, 8, 3), 128, np.uint8)
    score = wf.aesthetic_proxy([grey])
    # flat mid-grey: sharpness 0, exposure ≈ 1, contrast 0
    assert score.value == pytest.approx(10 * wf.exposure(grey) / 3)
    assert score.backend == wf.AESTHETIC_PROXY_BACKEND
    with pytest.raises(ValueError):
        wf.aesthetic_proxy([])
