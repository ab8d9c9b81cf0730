"""The sub-pixel block flow on motions with known answers: fractional and large shifts, noise,
fades and blank frames."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from anime_pipeline.metrics import motion


def texture(size: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """Blurred noise with structure at every scale, as float (levels)."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(0, 1, (size[0] + 80, size[1] + 80)), 2.5)
    return 128 + noise / noise.std() * 45


def shifted(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """The image content moved by (dy, dx) px, cropped to the frame: b(p + v) = a(p)."""
    moved = ndimage.shift(image, (dy, dx), order=3, mode="reflect")
    return np.repeat(np.clip(moved[40:-40, 40:-40], 0, 255).round().astype(np.uint8)[..., None], 3, axis=2)


def flow_of(a: np.ndarray, b: np.ndarray) -> motion.PairFlow:
    size = motion.working_size(*a.shape[:2])
    return motion.pair_flow(motion.prepare(a, size), motion.prepare(b, size))


def trusted(pair: motion.PairFlow) -> np.ndarray:
    """The flow of the blocks away from the edges (where content enters) that are textured."""
    inner = np.zeros_like(pair.textured)
    inner[2:-2, 2:-2] = True
    return pair.flow[pair.textured & inner]


@pytest.mark.parametrize("dy, dx", [(0.0, 0.25), (0.5, 0.0), (0.0, 1.0), (-0.75, 0.5), (2.3, -3.7), (0.0, 12.0),
                                    (-9.0, 6.0)])
def test_the_flow_is_sub_pixel_accurate(dy, dx):
    image = texture()
    pair = flow_of(shifted(image, 0, 0), shifted(image, dy, dx))
    vectors = trusted(pair)
    assert pair.explained.mean() > 0.9
    np.testing.assert_allclose(np.median(vectors, axis=0), (dy, dx), atol=0.05)
    assert np.percentile(np.hypot(*(vectors - (dy, dx)).T), 90) < 0.15


def test_the_working_size_keeps_the_aspect_and_never_enlarges():
    assert motion.working_size(512, 512) == (256, 256)
    assert motion.working_size(360, 640) == (256, 455)
    assert motion.working_size(100, 120) == (100, 120)


def test_a_shift_at_full_resolution_is_measured_in_working_pixels():
    image = texture((512, 512))
    a, b = shifted(image, 0, 0), shifted(image, 0, 3.0)  # 3 px at 512 is 1.5 px at the working 256
    assert np.median(trusted(flow_of(a, b))[:, 1]) == pytest.approx(1.5, abs=0.05)


def test_noise_on_a_still_explains_nothing_and_moves_nothing():
    still = shifted(texture(), 0, 0)
    rng = np.random.default_rng(2)
    noisy = [np.clip(still + rng.normal(0, 2.55, still.shape), 0, 255).astype(np.uint8) for _ in range(2)]
    pair = flow_of(*noisy)
    assert not pair.flow.any()  # every block's motion failed to explain the change, or was none
    assert pair.textured.mean() > 0.9


def test_a_fade_is_no_motion():
    still = shifted(texture(), 0, 0)
    darker = (still * 0.6).round().astype(np.uint8)
    pair = flow_of(still, darker)
    assert np.abs(pair.flow).max() < 0.05


def test_a_blank_frame_has_no_motion_and_is_flagged():
    still = shifted(texture(), 0, 0)
    white = np.full_like(still, 255)
    size = motion.working_size(*still.shape[:2])
    blank = motion.prepare(white, size)
    assert blank.blank and not motion.prepare(still, size).blank
    pair = motion.pair_flow(motion.prepare(still, size), blank)
    assert not pair.flow.any() and not pair.explained.any()


def test_compensation_brings_the_later_frame_back_onto_the_earlier():
    image = texture()
    a, b = shifted(image, 0, 0), shifted(image, 1.5, -2.5)
    pair = flow_of(a, b)
    luma = motion.prepare(a, motion.working_size(*a.shape[:2])).luma
    inner = (slice(16, -16), slice(16, -16))
    before = np.abs(motion.prepare(b, luma.shape).luma - luma)[inner].mean()
    after = np.abs(pair.compensated - luma)[inner].mean()
    assert after < 0.1 * before and pair.inside[inner].all()


def test_frames_must_share_a_size():
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="one size"):
        list(motion.pair_flows([frame, frame[:32]]))
    with pytest.raises(ValueError, match="at least 2 frames"):
        list(motion.pair_flows([frame]))
