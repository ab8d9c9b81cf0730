"""Weight-free metrics against hand-computed values on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from anime_pipeline.drawings import find_face
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.metrics.scores import Score
from tests.drawn_images import EYES, HAIR, SKIN, drawn_face


def random_image(seed: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def gradient_pan(n_frames: int, width: int, step: int) -> list[np.ndarray]:
    """A horizontal ramp (value = column) panned `step` px per frame."""
    ramp = np.arange(width + n_frames * step, dtype=np.uint8)
    strip = np.repeat(np.repeat(ramp[None, :, None], 16, axis=0), 3, axis=2)
    return [np.ascontiguousarray(strip[:, t * step:t * step + width]) for t in range(n_frames)]


# --- clips --------------------------------------------------------------------------

def test_static_clip_is_smooth():
    frames = [random_image(1)] * 9
    assert wf.motion_smoothness(frames).value == 1.0


def test_gradient_pan_is_perfectly_smooth():
    frames = gradient_pan(n_frames=10, width=128, step=2)
    # a linear blend of a linear ramp is exact: the interpolated frame is the odd frame
    smooth = wf.motion_smoothness(frames)
    assert smooth.value == 1.0
    assert smooth.details["interpolator"] == "linear blend (no AMT weights)"


def test_alternating_flash_is_not_smooth():
    black, white = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    frames = [black, white] * 5
    smooth = wf.motion_smoothness(frames)
    assert smooth.value < 0.05
    assert smooth.details["frames"] == [1, 3, 5, 7]  # odd frames between even pairs


def test_motion_smoothness_truncates_the_blend_like_vbench():
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 0, 1)]  # I = floor(0.5) = 0 = O
    assert wf.motion_smoothness(frames).value == 1.0
    with pytest.raises(ValueError):
        wf.motion_smoothness(frames[:2])


def test_frames_must_be_uint8():
    with pytest.raises(ValueError):
        wf.motion_smoothness([np.zeros((4, 4, 3))] * 3)


def test_worst_frames_are_the_lowest_per_frame_values():
    score = Score("x", 0.1, "test", per_frame=(0.9, 0.1, 0.5, 0.1))
    assert score.worst_frames(2) == [1, 3]
    assert score.worst_frames(0) == []


# --- SSIM and duplicates --------------------------------------------------------------

def direct_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 straight from the formula: every 11×11 window wholly inside the image."""
    offsets = np.arange(-5, 6)
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    values = []
    for i in range(5, x.shape[0] - 5):
        for j in range(5, x.shape[1] - 5):
            px, py = x[i - 5:i + 6, j - 5:j + 6], y[i - 5:i + 6, j - 5:j + 6]
            mx, my = (window * px).sum(), (window * py).sum()
            vx, vy = (window * px**2).sum() - mx**2, (window * py**2).sum() - my**2
            cxy = (window * px * py).sum() - mx * my
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_direct_formula_on_a_tiny_case():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (17, 19), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    assert wf.ssim(a, b) == pytest.approx(direct_ssim(a, b), abs=1e-9)


def test_ssim_identical_is_one_and_negation_is_low():
    image = random_image(6, (64, 64))
    assert wf.ssim(image, image) == pytest.approx(1.0)
    assert wf.ssim(image, 255 - image) < 0.1  # structure term ≈ −1
    with pytest.raises(ValueError):
        wf.ssim(image, image[:-1])


def test_near_duplicates_finds_a_noisy_copy_but_not_a_different_image():
    original = drawn_face()
    noise = np.random.default_rng(4).integers(-3, 4, original.shape)
    copy = np.clip(original.astype(int) + noise, 0, 255).astype(np.uint8)
    other = drawn_face(centre=(90, 150), background=(200, 120, 40))
    pairs = wf.near_duplicates([original, other, copy], threshold=0.97)
    assert [(i, j) for i, j, _ in pairs] == [(0, 2)]
    assert pairs[0][2] >= 0.97
    assert wf.duplicates_of(copy, [other, original], 0.97)[0][0] == 1


# --- identity -------------------------------------------------------------------------

def test_palette_signature_is_a_unit_hellinger_histogram():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, :5] = (255, 0, 0)  # bin (7, 0, 0) = 448
    image[:, 5:] = (0, 0, 40)  # bin (0, 0, 1) = 1
    signature = wf.palette_signature(image)
    assert signature.shape == (512,)
    assert np.linalg.norm(signature) == pytest.approx(1.0)
    assert signature[448] == pytest.approx(np.sqrt(0.5)) and signature[1] == pytest.approx(np.sqrt(0.5))
    boxed = wf.palette_signature(image, (0, 0, 5, 10))
    assert boxed[448] == pytest.approx(1.0)


def test_cosine_equals_numpy():
    a, b = wf.palette_signature(random_image(5)), wf.palette_signature(drawn_face())
    expected = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert wf.cosine(a, b) == pytest.approx(expected)
    assert wf.cosine(a, np.zeros(512)) == 0.0


def test_identity_is_high_for_the_character_and_low_for_a_recoloured_one():
    face = drawn_face()
    box = find_face(face, SKIN, EYES)
    reference = wf.anchor([wf.palette_signature(face, box)])
    same = wf.identity_score([face, face], [box, box], reference)
    assert same.value == pytest.approx(1.0)
    other = drawn_face(skin=(90, 200, 120), eyes=(200, 30, 30))
    changed = wf.identity_score([face, other, face], [box, box, None], reference)
    assert changed.per_frame[1] < 0.5
    assert changed.per_frame[2] == 0.0 and changed.value == 0.0
    assert changed.details["frames_without_face"] == [2]
    assert changed.backend == "weight-free: palette signature"


def test_the_head_is_the_face_box_widened_and_raised_inside_the_image():
    assert wf.head_box((40, 40, 80, 100), (200, 300, 3)) == (30, 10, 90, 100)
    assert wf.head_box((0, 10, 20, 30), (200, 300, 3)) == (0, 0, 25, 30)


def test_the_head_signature_sees_a_hair_colour_change_the_whole_box_histogram_shrugs_off():
    image = Image.fromarray(drawn_face())
    ImageDraw.Draw(image).ellipse((160 - 55, 100 - 75, 160 + 55, 100 + 20), fill=HAIR)  # a mop of hair …
    face = drawn_face()
    face[np.all(face == (30, 30, 60), axis=-1)] = np.asarray(image)[np.all(face == (30, 30, 60), axis=-1)]  # … behind
    box = find_face(face, SKIN, EYES)
    signature = wf.character_signature(face, box)
    assert signature.shape == (512,) and np.linalg.norm(signature) == pytest.approx(1.0)
    green_hair = face.copy()
    green_hair[np.all(face == HAIR, axis=-1)] = (40, 160, 60)
    whole = wf.cosine(wf.palette_signature(green_hair, box), wf.palette_signature(face, box))
    head = wf.cosine(wf.character_signature(green_hair, box), signature)
    assert head < 0.70 < whole  # the hair is a small share of the face box, a large one of the head
    score = wf.identity_score([face, green_hair], [box, box], signature, wf.character_signature, wf.CHARACTER_BACKEND)
    assert score.per_frame == pytest.approx((1.0, head)) and score.backend == wf.CHARACTER_BACKEND




def test_soft_bins_keep_a_colour_on_a_bin_edge_in_one_place():
    """Near-white fur at 223/224 straddles the hard histogram's bin edge: antialiasing and shading
    jitter flips its pixels between bins, which the soft bins share between the two nearest."""
    below, above = np.full((8, 8, 3), 223, np.uint8), np.full((8, 8, 3), 225, np.uint8)
    assert wf.cosine(wf.palette_signature(below), wf.palette_signature(above)) == 0.0
    assert wf.cosine(wf.soft_palette_signature(below), wf.soft_palette_signature(above)) > 0.99
    assert np.linalg.norm(wf.soft_palette_signature(below)) == pytest.approx(1.0)
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)  # beyond the outer centres
    assert wf.soft_palette_signature(black)[0] == pytest.approx(1.0) and wf.soft_palette_signature(white)[511] == pytest.approx(1.0)

# --- stills ------------------------------------------------------------------------------

def test_palette_match_is_the_share_of_matching_pixels():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:4] = (250, 10, 10)
    assert wf.palette_match(image, ["#ff0000"]) == pytest.approx(0.4)
    assert wf.palette_match(image, ["#ff0000", "#000000"]) == pytest.approx(1.0)
    assert wf.palette_match(image, ["#00ff00"]) == 0.0


def test_sharpness_exposure_contrast():
    image = drawn_face()
    blurred = np.asarray(Image.fromarray(image).resize((40, 30)).resize((320, 240), Image.Resampling.BILINEAR))
    assert 0 <= wf.sharpness(blurred) < wf.sharpness(image) <= 1
    assert wf.exposure(np.full((8, 8, 3), 128, np.uint8)) == pytest.approx(1.0, abs=0.01)
    assert wf.exposure(np.zeros((8, 8, 3), np.uint8)) == 0.0
    checker = (np.indices((8, 8)).sum(axis=0) % 2 * 255).astype(np.uint8)
    assert wf.contrast(np.stack([checker] * 3, axis=2)) == pytest.approx(1.0)
    assert wf.contrast(np.full((8, 8, 3), 90, np.uint8)) == 0.0


def test_worst_frames_can_be_the_highest_values():
    score = Score("temporal_lpips", 0.2, "test", (0.1, 0.5, 0.1, 0.3))
    assert score.worst_frames(2, higher_is_worse=True) == [1, 3]
