"""Previz drawings: telling their backend apart, and finding drawn faces by key colours."""

from __future__ import annotations

import numpy as np

from anime_pipeline.drawings import find_face, find_faces, is_previz
from anime_pipeline.render.previz import PrevizRenderer
from tests.drawn_images import EYES, SKIN, drawn_face


def test_previz_is_told_apart_by_the_backend_string_alone():
    assert is_previz(PrevizRenderer.backend)
    assert is_previz("previz (embedded, CPU)")  # as recorded in manifests
    assert not is_previz("comfyui 0.3.64 (http://127.0.0.1:8188)")  # ComfyUIRenderer.backend


def test_find_face_finds_a_drawn_face_and_nothing_on_a_blank_image():
    box = find_face(drawn_face(), SKIN, EYES)
    assert box is not None
    x0, y0, x1, y1 = box
    assert abs((x0 + x1) / 2 - 160) <= 2 and abs(y1 - 145) <= 2  # the skin ellipse, below the hair cap
    assert find_face(np.zeros((240, 320, 3), np.uint8), SKIN, EYES) is None


def test_find_face_needs_eyes():
    image = drawn_face(eyes=SKIN)  # a skin-coloured blank oval
    assert find_face(image, SKIN, EYES) is None


def test_find_faces_counts_two_characters():
    image = drawn_face(size=(240, 400), centre=(100, 100))
    image[:, 200:] = drawn_face(size=(240, 400), centre=(300, 110))[:, 200:]
    assert len(find_faces(image, "#f3d3bd", EYES)) == 2


def test_small_faces_need_a_lower_share():
    """Continuity looks for the cast in wide shots: a face of 0.1 % of the frame is found only
    with a min_share below it."""
    image = np.zeros((1000, 1000, 3), np.uint8)
    image[:] = (30, 30, 60)
    image[500:532, 500:532] = SKIN
    image[510:513, 506:509] = EYES
    image[510:513, 522:525] = EYES
    assert find_faces(image, SKIN, EYES) == []
    assert find_faces(image, SKIN, EYES, min_share=0.0005) == [(500, 500, 532, 532)]
