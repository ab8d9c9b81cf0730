"""Shared image helpers: colours and colour masks."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.imaging import (
    COLOR_TOLERANCE,
    as_rgb,
    color_mask,
    hex_to_rgb,
    rgb_to_hex,
)


def test_colours_convert_both_ways():
    assert hex_to_rgb("#7a4a2a") == as_rgb("#7a4a2a") == as_rgb([122, 74, 42]) == (122, 74, 42)
    assert rgb_to_hex((122.4, 73.6, 300)) == "#7a4aff"


@pytest.mark.parametrize("offset, inside", [(0, True), (COLOR_TOLERANCE - 1, True), (COLOR_TOLERANCE + 1, False)])
def test_color_mask_is_a_euclidean_ball_around_any_colour(offset, inside):
    image = np.zeros((2, 2, 3), np.uint8)
    image[0, 0] = (100 + int(offset), 50, 50)
    image[1, 1] = (0, 0, 255)
    mask = color_mask(image, ["#643232", (0, 0, 255)])
    assert mask.tolist() == [[inside, False], [False, True]]
