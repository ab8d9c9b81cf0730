"""Block-matching flow and the flow interpolator on clips with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from anime_pipeline.metrics import flow
from anime_pipeline.metrics import weightfree as wf

BACKGROUND = (30, 60, 90)


def smooth_texture(size: int = 48, seed: int = 0) -> np.ndarray:
    """A blurred-noise patch: detail at every pyramid level, unlike white noise."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(0, 1, (size, size, 3)), (3, 3, 0))
    return np.clip(128 + noise / noise.std() * 50, 0, 255).astype(np.uint8)


def moving_patch(n_frames: int, velocity: tuple[int, int], start: tuple[int, int] = (40, 40),
                 size: tuple[int, int] = (128, 160)) -> list[np.ndarray]:
    """A textured square moving `velocity` (dy, dx) px a frame over a flat background."""
    patch = smooth_texture()
    frames = []
    for t in range(n_frames):
        frame = np.full((*size, 3), BACKGROUND, np.uint8)
        y, x = start[0] + velocity[0] * t, start[1] + velocity[1] * t
        frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        frames.append(frame)
    return frames


@pytest.mark.parametrize("velocity", [(0, 1), (1, 2), (1, 3), (2, 5), (3, 8), (4, -6)])
def test_flow_interpolates_a_rigid_motion_exactly(velocity):
    a, middle, b = moving_patch(3, velocity)
    dy, dx = velocity
    blocks = flow.block_flow(a, b)
    assert (blocks[3, 3] == (dy, dx)).all()  # a block inside the patch moves with it
    assert (blocks[0, 0] == (0, 0)).all()  # flat background: ties resolve to no motion
    np.testing.assert_array_equal(flow.interpolate_midpoint(a, b), middle)


def test_flow_smoothness_is_one_on_a_constant_pan_where_the_blend_is_not():
    frames = moving_patch(9, (0, 3))
    smooth = wf.motion_smoothness(frames, wf.BLOCK_FLOW)
    assert smooth.value == 1.0
    assert smooth.backend == wf.FLOW_SMOOTHNESS_BACKEND
    assert smooth.details["interpolator"] == "bilateral block-matching flow (no AMT weights)"
    # the blend ghosts the patch: by hand, D_k = mean |O_k − ⌊(E_k + E_k+1)/2⌋|, the same for every k
    even, odd = frames[0::2], frames[1::2]
    blend = ((even[0].astype(int) + even[1]) // 2)
    d = np.abs(odd[0].astype(int) - blend).mean()
    assert wf.motion_smoothness(frames).value == pytest.approx((255 - d) / 255)
    assert wf.motion_smoothness(frames).value < 0.995


def test_flow_smoothness_on_static_flash_and_duplicated_still():
    still = moving_patch(1, (0, 0))[0]
    assert wf.motion_smoothness([still] * 7, wf.BLOCK_FLOW).value == 1.0
    black, white = np.zeros((32, 48, 3), np.uint8), np.full((32, 48, 3), 255, np.uint8)
    flash = wf.motion_smoothness([black, white] * 4, wf.BLOCK_FLOW)
    assert flash.value == 0.0  # every interpolated frame is black, every odd frame white: D = 255
    assert flash.per_frame == (0.0, 0.0, 0.0)


def test_frames_of_any_size_are_padded_to_whole_blocks():
    frames = moving_patch(3, (1, 2), size=(101, 133))
    np.testing.assert_array_equal(flow.interpolate_midpoint(frames[0], frames[2]), frames[1])
    assert flow.block_flow(frames[0], frames[2]).shape == (7, 9, 2)
    with pytest.raises(ValueError):
        flow.block_flow(frames[0], frames[1][:-1])


def test_luma_is_whole_eighths_of_a_level_less_the_rounded_mean():
    frame = np.zeros((16, 32, 3), np.uint8)
    frame[:, 16:] = 255  # half black, half white: 0 and 8·255 = 2040 eighths, mean 1020
    luma = flow._luma(frame)
    assert luma.dtype == np.int16
    assert (luma[:, :16] == -1020).all() and (luma[:, 16:] == 1020).all()
    # BT.601 in thousandths, rounded to eighths: pure red is 299·255/125 = 609.96 → 610 eighths
    red = np.zeros((16, 16, 3), np.uint8)
    red[0, 0] = (255, 0, 0)
    assert flow._luma(red)[0, 0] - flow._luma(red)[1, 1] == 610
    assert (flow._luma(np.full((16, 16, 3), 77, np.uint8)) == 0).all()  # any flat frame is all mean


def brute_force_costs(a: np.ndarray, b: np.ndarray, block: int, offsets: np.ndarray) -> np.ndarray:
    """The module doc's cost, pixel by pixel: Σ_block |a(clamp(p − d)) − b(clamp(p + d))| + bias."""
    height, width = a.shape
    ys, xs = np.mgrid[0:height, 0:width]
    costs = []
    for dy, dx in offsets:
        sample_a = a[np.clip(ys - dy, 0, height - 1), np.clip(xs - dx, 0, width - 1)].astype(np.int64)
        sample_b = b[np.clip(ys + dy, 0, height - 1), np.clip(xs + dx, 0, width - 1)].astype(np.int64)
        sad = np.abs(sample_a - sample_b).reshape(height // block, block, width // block, block).sum(axis=(1, 3))
        costs.append(sad + (flow._BIAS if (dy, dx) != (0, 0) else 0))
    return np.array(costs)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_block_costs_are_the_documented_sums(level):
    """The strided, run-at-a-time cost kernel against the formula, on a frame that is not a whole
    number of blocks, with offsets in runs along x, alone, reaching the edge and beyond it."""
    a = smooth_texture(56, seed=2)[:40]
    b = np.roll(a, (3, -5), axis=(0, 1))
    b[::7] = 200  # and something no shift explains
    reach, block = flow._REACH[level], flow.FLOW_BLOCK >> level
    pyramid_a, pyramid_b = flow._pyramid(a)[level], flow._pyramid(b)[level]
    offsets = flow._sorted(np.array([(0, -2), (0, -1), (0, 0), (0, 1), (0, 2), (1, 3), (-2, 1), (-1, 1),
                                     (reach, -reach), (-reach, reach - 1), (reach, reach), (3, -reach)]))
    inner_a, inner_b = (p[reach:-reach, reach:-reach] for p in (pyramid_a, pyramid_b))
    expected = brute_force_costs(inner_a, inner_b, block, offsets)
    np.testing.assert_array_equal(flow._costs(pyramid_a, pyramid_b, reach, block, offsets), expected)
