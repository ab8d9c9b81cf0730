"""The heuristic reviewer on synthetic previz-like drawings."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from anime_pipeline.config.schema import Character, ReviewThresholds
from anime_pipeline.drawings import find_face
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.review.verdict import Verdict

MIO = Character.model_validate({
    "slug": "mio", "name": "Mio", "design_prompt": "1girl, courier",
    "appearance": {
        "species": "human",
        "key_colors": {"hair": "#7a4a2a", "skin": "#f3d3bd", "eyes": "#d08a1e", "outfit": "#24305e", "accent": "#c9a227"},
        "key_features": ["short bob", "satchel"],
        "common_errors": ["green eyes", "missing satchel"],
    },
})
HOSHI = Character.model_validate({
    "slug": "hoshi", "name": "Hoshi", "design_prompt": "star-fox spirit",
    "appearance": {
        "species": "star-fox spirit",
        "key_colors": {"hair": "#e8eef7", "skin": "#dfe6f0", "eyes": "#3aa7c9", "outfit": "#dfe6f0", "accent": "#ffd45c"},
        "key_features": ["fox ears", "glowing tail"],
        "common_errors": ["human face"],
    },
})
THRESHOLDS = ReviewThresholds()
BACKGROUND = (150, 190, 150)


def draw(character: Character, centres=((160, 90),), size=(320, 480), eyes: str | None = None) -> np.ndarray:
    """A previz-like figure per centre: hair cap, face with two eyes, outfit body, accent badge."""
    colors = character.appearance.key_colors
    image = Image.new("RGB", (size[1], size[0]), BACKGROUND)
    d = ImageDraw.Draw(image)
    for cx, cy in centres:
        d.rectangle((cx - 40, cy + 40, cx + 40, cy + 200), fill=colors.outfit)
        d.rectangle((cx - 10, cy + 70, cx + 10, cy + 90), fill=colors.accent)
        d.pieslice((cx - 42, cy - 55, cx + 42, cy + 10), 180, 360, fill=colors.hair)
        d.ellipse((cx - 35, cy - 40, cx + 35, cy + 45), fill=colors.skin)
        for ex in (cx - 14, cx + 14):
            d.ellipse((ex - 4, cy - 5, ex + 4, cy + 5), fill=eyes or colors.eyes)
    return np.array(image)


def anchor_of(character: Character) -> np.ndarray:
    image = draw(character)
    colors = character.appearance.key_colors
    return wf.anchor([wf.palette_signature(image, find_face(image, colors.skin, colors.eyes))])


def review(image, character=MIO, others=(), face_box=None, anchor=None) -> Verdict:
    return HeuristicReviewer().review(image, character, face_box, anchor, list(others), THRESHOLDS, 0.97)


def test_a_clean_solo_human_drawing_is_approved():
    verdict = review(draw(MIO), anchor=anchor_of(MIO))
    assert verdict.decision == "approve"
    assert verdict.solo and verdict.species_check is None
    assert verdict.character_match == pytest.approx(1.0) and verdict.completeness == 1.0
    assert verdict.score >= THRESHOLDS.auto_approve_at
    assert verdict.training_value == pytest.approx(10 * verdict.score)
    assert verdict.reviewer == "heuristic (embedded, weight-free)"


def test_checklist_judges_colour_evidence_and_names_what_it_cannot_check():
    box = find_face(draw(MIO), "#f3d3bd", "#d08a1e")  # the renderer knows where it drew the face
    verdict = review(draw(MIO, eyes="#30a040"), face_box=box, anchor=anchor_of(MIO))
    assert set(verdict.feature_checklist) == {"short bob", "satchel", "no green eyes", "no missing satchel"}
    assert verdict.feature_checklist["short bob"] is True  # hair colour present
    assert verdict.feature_checklist["no green eyes"] is False
    assert "failed check: no green eyes" in verdict.reasons
    assert any("not checkable" in r and "satchel" in r for r in verdict.reasons)
    assert verdict.decision != "approve"


def test_without_an_anchor_the_match_is_the_key_colour_share_of_the_face():
    verdict = review(draw(MIO))
    assert verdict.character_match > 0.9
    assert "key-colour share of face" in verdict.reasons[0]


def test_a_non_human_character_never_auto_approves():
    verdict = review(draw(HOSHI), character=HOSHI, anchor=anchor_of(HOSHI))
    assert verdict.score >= THRESHOLDS.auto_approve_at
    assert verdict.species_check is True
    assert verdict.decision == "human_review"
    assert any("non-human" in r for r in verdict.reasons)


def test_two_figures_are_not_solo():
    verdict = review(draw(MIO, centres=((120, 90), (360, 90))), anchor=anchor_of(MIO))
    assert not verdict.solo
    assert verdict.decision == "human_review"
    assert verdict.training_value == pytest.approx(5 * verdict.score)


def test_a_near_duplicate_is_rejected():
    image = draw(MIO)
    verdict = review(image, others=[draw(MIO, centres=((300, 120),)), image.copy()], anchor=anchor_of(MIO))
    assert verdict.decision == "reject" and verdict.training_value == 0.0
    assert "others[1]" in verdict.reasons[-1]


def test_a_differently_coloured_character_is_rejected():
    verdict = review(draw(HOSHI), anchor=anchor_of(MIO))
    assert verdict.character_match < 0.4
    assert verdict.decision == "reject"


def test_a_given_face_box_counts_when_the_finder_sees_none():
    image = draw(MIO)
    image[:, :, :] = BACKGROUND
    verdict = review(image, face_box=(120, 50, 200, 135))
    assert verdict.solo
    assert verdict.decision == "reject"  # an empty picture still scores low


def test_a_dark_image_is_named_too_dark_with_the_stops_its_skin_reads():
    from anime_pipeline.render.develop import develop
    from anime_pipeline.review.heuristic import skin_stops

    image = draw(MIO)
    face = find_face(image, MIO.appearance.key_colors.skin, MIO.appearance.key_colors.eyes)
    dark = develop(image, -1.0)
    assert skin_stops(image, face, MIO.appearance.key_colors.skin) == pytest.approx(0.0, abs=0.02)
    assert skin_stops(dark, face, MIO.appearance.key_colors.skin) == pytest.approx(-1.0, abs=0.02)
    reasons = review(dark, face_box=face).reasons
    assert any(r.startswith("too dark: the face's skin colour reads -0.99 stops") for r in reasons), reasons
    assert not any(r.startswith(("too dark", "too bright", "blurry", "low contrast")) for r in review(image).reasons)
    assert skin_stops(image, (0, 0, 40, 40), MIO.appearance.key_colors.skin) is None  # background: not skin


def test_blur_and_flat_images_are_named():
    image = np.array(Image.fromarray(draw(MIO)).filter(ImageFilter.GaussianBlur(6)))
    flat = np.full((200, 200, 3), 128, np.uint8)
    assert any(r.startswith("blurry: sharpness") for r in review(image).reasons)
    assert any(r.startswith("low contrast:") for r in review(flat).reasons)
