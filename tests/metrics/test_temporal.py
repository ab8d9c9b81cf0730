"""The temporal measures on small clips whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from anime_pipeline.metrics import temporal, weightfree
from anime_pipeline.metrics.scores import Score

SIZE = 128


def canvas(width: int, seed: int = 0) -> np.ndarray:
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(0, 1, (SIZE, width)), 2.0)
    grey = np.clip(128 + noise / noise.std() * 45, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def pan(n: int, step: int, seed: int = 0) -> list[np.ndarray]:
    """A camera pan of `step` px a frame across a textured canvas."""
    wide = canvas(SIZE + step * n, seed)
    return [np.ascontiguousarray(wide[:, t * step:t * step + SIZE]) for t in range(n)]


def test_a_pan_is_stable_after_compensation_where_raw_frames_differ():
    frames = pan(8, 4)
    clip = temporal.analyse(frames, fps=24)
    stability = temporal.temporal_stability(clip)
    assert stability.value < 0.02 and stability.backend == temporal.STABILITY_BACKEND
    assert 1 - weightfree.ssim(frames[3], frames[4]) > 0.3  # the uncompensated 1 − SSIM calls motion change
    assert temporal.temporal_flickering(clip).value > 0.99


def test_one_flash_is_the_worst_moment_not_lost_in_the_mean():
    frames = pan(12, 2)
    frames[6] = np.full_like(frames[6], 255)
    clip = temporal.analyse(frames, fps=24)
    flicker, stability = temporal.temporal_flickering(clip), temporal.temporal_stability(clip)
    assert set(flicker.worst_frames(2)) == {5, 6}  # the pairs into and out of the flash
    assert flicker.value == min(flicker.per_frame) < 0.7 < flicker.details["mean"]
    assert set(stability.worst_frames(2)) == {5, 6} and stability.value > 0.3
    assert stability.higher_is_worse and stability.worst == stability.value


def test_the_motion_floor_counts_explained_motion_that_does_not_return():
    still = canvas(SIZE)
    assert temporal.motion_floor(temporal.analyse([still] * 8, fps=24)).value == 0.0
    moving = temporal.motion_floor(temporal.analyse(pan(8, 1), fps=24))
    assert moving.value == 1.0
    assert moving.per_frame == pytest.approx((1.0,) * 7, abs=0.1)  # px per frame
    assert moving.details["speed_floor_px_per_frame"] == pytest.approx(temporal.MIN_SPEED * SIZE / 24)
    loop = temporal.analyse([still, np.roll(still, 1, axis=1)] * 6, fps=24)
    assert loop.returns == (False, False) + (True,) * 10  # from frame 2 on, each repeats an earlier one
    floor = temporal.motion_floor(loop)
    assert floor.value == pytest.approx(1 / 11) and floor.details["returning_frames"] == list(range(2, 12))


def test_blank_frames_never_move():
    frames = [canvas(SIZE) if t % 2 == 0 else np.zeros((SIZE, SIZE, 3), np.uint8) for t in range(6)]
    clip = temporal.analyse(frames, fps=24)
    assert clip.blank == (False, True) * 3
    assert temporal.motion_floor(clip).value == 0.0


@pytest.mark.parametrize("glitch, pair, share", [("drop", 4, 2.0), ("duplicate", 5, 0.0)])
def test_a_dropped_or_duplicated_frame_breaks_the_steady_step(glitch, pair, share):
    frames = pan(12, 3)
    frames = frames[:5] + frames[6:] if glitch == "drop" else frames[:6] + frames[5:11]
    timing = temporal.frame_timing(temporal.analyse(frames, fps=24))
    assert timing.worst_frames(1) == [pair]
    assert timing.value == pytest.approx(1.0, abs=0.05)
    assert timing.details["step_shares"] == {pair: pytest.approx(share, abs=0.05)}



def test_a_few_steadily_moving_blocks_are_no_context_to_judge_timing_by():
    """A timing error moves the whole picture; a small sprite that jumps once (a whole-pixel bob,
    a run cycle) on a still background is motion of its own, not a dropped frame."""
    background = canvas(SIZE, seed=1)
    sprite = canvas(48, seed=2)[:48]
    positions = [4 + 3 * t for t in range(12)]
    positions[6:] = [p + 3 for p in positions[6:]]  # the sprite skips a step at pair 5
    frames = []
    for x in positions:
        frame = background.copy()
        frame[40:88, x:x + 48] = sprite
        frames.append(frame)
    timing = temporal.frame_timing(temporal.analyse(frames, fps=24))
    assert timing.value == 0.0 and timing.details["step_shares"] == {}

def test_steady_motion_and_stills_keep_time():
    assert temporal.frame_timing(temporal.analyse(pan(10, 3), fps=24)).value < 0.05
    still = temporal.frame_timing(temporal.analyse([canvas(SIZE)] * 5, fps=24))
    assert still.value == 0.0 and still.per_frame == (0.0,) * 4  # nothing moves steadily: nothing to judge


def test_worst_moment_judges_a_mean_score_on_its_worst_frame():
    smooth = Score("motion_smoothness", 0.99, "b", (1.0, 0.97, 1.0))
    judged = temporal.worst_moment(smooth)
    assert judged.value == 0.97 and judged.details["mean"] == 0.99 and judged.per_frame == smooth.per_frame
    with pytest.raises(ValueError):
        temporal.worst_moment(Score("x", 1.0, "b"))


def test_fps_must_be_positive():
    with pytest.raises(ValueError, match="fps"):
        temporal.analyse(pan(3, 1), fps=0)


def perceptual_distance(model, a: np.ndarray, b: np.ndarray) -> float:
    from anime_pipeline.metrics import perceptual

    return perceptual.lpips_distances([a], [b], model)[0]


class TestLpips:
    """Temporal LPIPS on the same rule: motion compensated, worst pair (random AlexNet: the
    cost and the plumbing of the real metric, not its calibration)."""

    @pytest.fixture
    def model(self):
        torch = pytest.importorskip("torch")
        pytest.importorskip("lpips")
        from anime_pipeline.metrics import perceptual

        torch.manual_seed(0)
        return perceptual.random_lpips()

    def test_an_integer_pan_is_compensated_exactly(self, model):
        frames = pan(4, 2)
        clip = temporal.analyse(frames, fps=24)
        first, warped = temporal.compensated(frames, clip, 1)
        moved = np.abs(frames[2].astype(int) - first)[:, :-8].mean()
        assert np.abs(warped.astype(int) - first)[:, :-8].mean() < 0.05 * moved  # beyond the entering strip
        score = temporal.compensated_lpips(frames, clip, model)
        raw = perceptual_distance(model, frames[1], frames[2])
        assert score.value < 0.1 * raw and score.higher_is_worse and "motion compensated" in score.backend

    def test_a_flash_is_the_worst_pair(self, model):
        frames = pan(6, 2)
        frames[3] = np.full_like(frames[3], 255)
        score = temporal.compensated_lpips(frames, temporal.analyse(frames, fps=24), model)
        assert set(score.worst_frames(2)) == {2, 3} and score.value > 10 * sorted(score.per_frame)[0]
