"""The embedded previz renderer: deterministic, readable, framed and animated per shot type."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config import Project
from anime_pipeline.config.schema import MOTION_PRESETS, Character, Quality
from anime_pipeline.metrics import temporal
from anime_pipeline.render.base import (
    REFERENCE_EXPRESSIONS,
    REFERENCE_POSES,
    ClipRequest,
    StillRequest,
)
from anime_pipeline.render.previz import PrevizRenderer

W, H = 320, 180
CONFIGS = Path(__file__).resolve().parents[2] / "project_configs"


@pytest.fixture(scope="module")
def show():
    return Project.load(CONFIGS).shows["lantern-post"]


@pytest.fixture(scope="module")
def cast(show) -> tuple[Character, Character]:
    return show.character("mio"), show.character("hoshi")


@pytest.fixture(scope="module")
def renderer() -> PrevizRenderer:
    return PrevizRenderer()


def still(characters, **kwargs) -> StillRequest:
    fields = dict(characters=tuple(characters), prompt="a test", negative_prompt="", seed=7, width=256, height=384)
    return StillRequest(**{**fields, **kwargs})


def clip(characters, shot_type: str, **kwargs) -> ClipRequest:
    fields = dict(characters=tuple(characters), shot_type=shot_type, prompt="a test", motion_prompt="",
                  negative_prompt="", seed=7, width=W, height=H, fps=12, n_frames=24,
                  background=("#1b1f3b", "#3d3a6b", "#f2a65a", "#f7d488", "#8fb8de"))
    return ClipRequest(**{**fields, **kwargs})


def face_pixels(image: np.ndarray, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1].reshape(-1, 3).astype(int)


def near(pixels: np.ndarray, hexes: list[str], tolerance: float = 60) -> np.ndarray:
    colors = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes])
    return (np.linalg.norm(pixels[:, None, :] - colors[None], axis=2) < tolerance).any(axis=1)


def test_renderer_identifies_itself(renderer):
    assert (renderer.backend, renderer.device, renderer.version) == ("previz (embedded, CPU)", "cpu", "previz-1")


def test_still_is_deterministic_and_seeded(renderer, cast):
    first = renderer.render_still(still(cast, framing="wide"))
    again = renderer.render_still(still(cast, framing="wide"))
    other = renderer.render_still(still(cast, framing="wide", seed=8))
    assert first.image.tobytes() == again.image.tobytes()
    assert first.face_boxes == again.face_boxes and first.params == again.params
    assert first.image.tobytes() != other.image.tobytes()


def test_clip_is_deterministic_and_seeded(renderer, cast):
    first = renderer.render_clip(clip(cast, "medium", n_frames=8))
    again = renderer.render_clip(clip(cast, "medium", n_frames=8))
    other = renderer.render_clip(clip(cast, "medium", n_frames=8, seed=8))
    assert b"".join(f.tobytes() for f in first.frames) == b"".join(f.tobytes() for f in again.frames)
    assert first.face_boxes == again.face_boxes
    assert first.frames[0].tobytes() != other.frames[0].tobytes()


def test_a_clip_streams_frame_by_frame_with_its_params_known_first(renderer, cast):
    """`stream_clip` makes each frame when it is asked for (a bad request fails at once), with the
    same pixels, boxes and params as the whole clip."""
    import itertools

    whole = renderer.render_clip(clip(cast, "medium", n_frames=8))
    stream = renderer.stream_clip(clip(cast, "medium", n_frames=8))
    assert stream.params == whole.params and stream.n_frames == 8
    first_three = list(itertools.islice(stream.frames, 3))
    rest = list(stream.frames)
    frames = first_three + rest
    assert [f.image.tobytes() for f in frames] == [f.tobytes() for f in whole.frames]
    assert [f.face_boxes for f in frames] == whole.face_boxes
    with pytest.raises(ValueError, match="unknown shot type"):
        renderer.stream_clip(clip(cast, "dolly"))


@pytest.mark.parametrize("framing", ["full_body", "portrait", "close-up"])
def test_face_box_holds_the_characters_own_colours(renderer, cast, framing):
    result = renderer.render_still(still(cast, framing=framing, width=512, height=384))
    for character in cast:
        keys = character.appearance.key_colors
        pixels = face_pixels(result.image, result.face_boxes[character.slug])
        assert len(pixels) > 0
        assert near(pixels, [keys.skin, keys.hair, keys.eyes]).mean() > 0.6, character.slug


def test_the_two_sample_characters_look_distinct(renderer, cast):
    mio, hoshi = (renderer.render_still(still([c], framing="portrait")) for c in cast)
    mio_mean = face_pixels(mio.image, mio.face_boxes["mio"]).mean(axis=0)
    hoshi_mean = face_pixels(hoshi.image, hoshi.face_boxes["hoshi"]).mean(axis=0)
    assert np.abs(mio_mean - hoshi_mean).sum() > 80


def test_characters_side_by_side_do_not_overlap(renderer, cast):
    for framing in ("wide", "medium", "close-up", "extreme_close-up", "establishing"):
        boxes = renderer.render_still(still(cast, framing=framing, width=640, height=360)).face_boxes
        (a0, _, a1, _), (b0, _, b1, _) = boxes["mio"], boxes["hoshi"]
        assert a1 <= b0 or b1 <= a0, framing


@pytest.mark.parametrize("shot_type", MOTION_PRESETS)
def test_every_shot_type_renders_a_moving_clip(renderer, cast, shot_type):
    result = renderer.render_clip(clip(cast, shot_type))
    assert len(result.frames) == 24 and len(result.face_boxes) == 24
    for frame in result.frames:
        assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    diffs = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in itertools.pairwise(result.frames)]
    assert min(diffs) > 0, "a clip must never be a still"
    if shot_type != "action":
        assert max(diffs) < 8, "motion must be smooth"
    assert any(result.face_boxes), "someone's face is on screen"
    for boxes in result.face_boxes:
        for x0, y0, x1, y1 in boxes.values():
            assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    assert result.params["n_frames"] == 24 and result.params["fps"] == 12


@pytest.mark.parametrize("framing", ["full_body", "portrait", *MOTION_PRESETS])
def test_every_framing_renders_a_still_of_the_requested_size(renderer, cast, framing):
    result = renderer.render_still(still(cast, framing=framing, width=320, height=200))
    assert result.image.shape == (200, 320, 3)
    assert set(result.face_boxes) == {"mio", "hoshi"}


def test_unknown_framing_is_an_error(renderer, cast):
    with pytest.raises(ValueError, match="framing"):
        renderer.render_still(still(cast, framing="dutch angle"))


def test_everyone_blinks(renderer, cast):
    """Eye-coloured pixels in the face box drop during a blink."""
    for character in cast:
        result = renderer.render_clip(clip([character], "close-up", n_frames=48, background=()))
        eyes = [near(face_pixels(frame, boxes[character.slug]), [character.appearance.key_colors.eyes], 40).sum()
                for frame, boxes in zip(result.frames, result.face_boxes)]
        assert min(eyes) < 0.5 * max(eyes), character.slug


def test_continuity_starts_from_the_given_frame(renderer, cast):
    previous = renderer.render_clip(clip(cast, "wide", n_frames=6))
    last = previous.frames[-1]
    result = renderer.render_clip(clip(cast, "action", first_frame=last))
    assert np.array_equal(result.frames[0], last)
    assert not np.array_equal(result.frames[6], last)
    small = renderer.render_clip(clip(cast, "medium", n_frames=8, first_frame=last[::2, ::2]))
    assert small.frames[0].shape == (H, W, 3)


def test_palette_overrides_recolour_the_character(renderer, cast):
    mio = cast[0]
    plain = renderer.render_still(still([mio], framing="portrait"))
    green = renderer.render_still(still([mio], framing="portrait", palette_overrides={"mio": {"hair": "#20c040"}}))
    assert green.params["colors"]["mio"]["hair"] == "#20c040"
    pixels = face_pixels(green.image, green.face_boxes["mio"])
    assert near(pixels, ["#20c040"], 40).mean() > 0.1
    assert near(face_pixels(plain.image, plain.face_boxes["mio"]), ["#20c040"], 40).mean() == 0


def test_outfit_shifts_the_outfit_shade_only_slightly(renderer, cast):
    result = renderer.render_still(still(cast[:1], outfit="rain cape"))
    drawn = result.params["colors"]["mio"]["outfit"]
    key = cast[0].appearance.key_colors.outfit
    assert drawn != key
    assert sum(abs(int(drawn[i:i + 2], 16) - int(key[i:i + 2], 16)) for i in (1, 3, 5)) < 40


def test_reference_sheet_poses_and_expressions_all_differ(renderer, cast):
    for character in cast:
        images = {(pose, expression): renderer.render_still(
            still([character], pose=pose, expression=expression, width=96, height=144)).image.tobytes()
            for pose in REFERENCE_POSES for expression in REFERENCE_EXPRESSIONS}
        assert len(set(images.values())) == len(REFERENCE_POSES) * len(REFERENCE_EXPRESSIONS), character.slug


def test_free_text_poses_and_expressions_vary_deterministically(renderer, cast):
    a = renderer.render_still(still(cast[:1], pose="holding a letter", expression="determined"))
    b = renderer.render_still(still(cast[:1], pose="holding a letter", expression="determined"))
    front = renderer.render_still(still(cast[:1]))
    assert a.image.tobytes() == b.image.tobytes() != front.image.tobytes()
    assert a.params["expression_drawn"] == "angry"


def test_features_not_drawn_are_listed(renderer, cast):
    mio = cast[0]
    odd = mio.model_copy(update={"appearance": mio.appearance.model_copy(
        update={"key_features": ["short bob", "satchel", "freckles"]})})
    result = renderer.render_still(still([odd]))
    assert result.params["features_not_drawn"] == {"mio": ["freckles"]}
    assert renderer.render_still(still(cast)).params["features_not_drawn"] == {"mio": [], "hoshi": []}


def test_a_shot_without_characters_still_renders(renderer):
    result = renderer.render_clip(clip([], "establishing", n_frames=4))
    assert len(result.frames) == 4 and result.face_boxes == [{}] * 4
    assert renderer.render_still(still([], framing="portrait")).face_boxes == {}


def test_unknown_shot_type_is_an_error(renderer, cast):
    with pytest.raises(ValueError, match="shot type"):
        renderer.render_clip(clip(cast, "portrait"))


@pytest.mark.parametrize("shot_type", [t for t in MOTION_PRESETS if t != "action"])
def test_everyone_keeps_a_face_box_in_every_frame(renderer, cast, shot_type):
    result = renderer.render_clip(clip(cast, shot_type, n_frames=12))
    assert all(set(boxes) == {"mio", "hoshi"} for boxes in result.face_boxes)


@pytest.mark.parametrize("shot_type", MOTION_PRESETS)
def test_clips_clear_the_not_a_still_floor_at_24_fps(renderer, cast, shot_type):
    frames = renderer.render_clip(clip(cast[:1], shot_type, fps=24, n_frames=30)).frames
    floor = temporal.motion_floor(temporal.analyse(frames, fps=24))
    assert floor.value >= Quality().min_moving_share  # the not_a_still gate's measure and threshold


def test_continuity_finds_the_cast_in_the_given_frame(renderer, cast):
    previous = renderer.render_clip(clip(cast, "medium", n_frames=12))
    result = renderer.render_clip(clip(cast, "action", n_frames=8, first_frame=previous.frames[-1]))
    assert set(result.face_boxes[0]) == {"mio", "hoshi"}
    for slug, (x0, y0, x1, y1) in result.face_boxes[0].items():
        px0, py0, px1, py1 = previous.face_boxes[-1][slug]
        assert abs((x0 + x1) - (px0 + px1)) < 12 and abs((y0 + y1) - (py0 + py1)) < 12, slug


def test_the_prompt_changes_the_picture(renderer, cast):
    """A re-worded prompt must give new pixels, or content-hashed assets downstream never re-render."""
    a = renderer.render_clip(clip(cast, "medium", n_frames=2))
    b = renderer.render_clip(clip(cast, "medium", n_frames=2, prompt="Mio holds the envelope up to the light"))
    assert a.frames[0].tobytes() != b.frames[0].tobytes()
