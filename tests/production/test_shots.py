import numpy as np

from anime_pipeline.production.shots import score_clip
from anime_pipeline.render.base import ClipResult

FRAMES = 24


def _clip(frames):
    return ClipResult(frames=frames, face_boxes=[{} for _ in frames], params={})


def test_a_still_clip_fails_the_motion_floor_even_though_it_is_perfectly_consistent(weight_free):
    still = np.random.default_rng(1).integers(0, 255, (72, 128, 3), dtype=np.uint8)
    scores = score_clip(_clip([still.copy() for _ in range(FRAMES)]), {}, weight_free)
    assert scores.mean_motion == 0.0 and scores.dynamic_degree == 0.0  # not_a_still fails at any floor > 0
    assert scores.motion_smoothness == 1.0 and scores.temporal_flickering == 1.0


def test_a_flashing_clip_fails_flicker(weight_free):
    dark, light = np.zeros((72, 128, 3), np.uint8), np.full((72, 128, 3), 255, np.uint8)
    scores = score_clip(_clip([dark if i % 2 else light for i in range(FRAMES)]), {}, weight_free)
    assert scores.temporal_flickering < 0.1  # far below the 0.90 default floor
    assert scores.temporal_change > 0.15  # and the temporal stability gate fails too


def test_a_gentle_pan_passes_every_motion_gate(weight_free):
    ramp = np.tile(np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None], (72, 1, 3))
    frames = [np.roll(ramp, i, axis=1)[:, 16:144] for i in range(FRAMES)]
    scores = score_clip(_clip(frames), {}, weight_free)
    assert scores.mean_motion > 0.002 and scores.motion_smoothness >= 0.95 and scores.temporal_flickering >= 0.9


def test_the_gates_point_at_the_frames_of_a_single_flash(weight_free):
    ramp = np.tile(np.linspace(0, 255, 160, dtype=np.uint8)[None, :, None], (72, 1, 3))
    frames = [np.roll(ramp, i, axis=1)[:, 16:144] for i in range(FRAMES)]
    frames[10] = np.full_like(frames[10], 255)
    worst = score_clip(_clip(frames), {}, weight_free).worst_frames
    assert sorted(worst["temporal_flickering"][:2]) == [9, 10]  # pairs (9, 10) and (10, 11)
    assert sorted(worst["temporal_change"][:2]) == [9, 10]
    assert worst["motion_smoothness"][0] in (9, 11)  # odd frames next to the flash are mispredicted
