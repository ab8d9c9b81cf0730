"""The local planner: the embedded director and the last hop of every chain."""

from __future__ import annotations

import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.planning.local import NAME, LocalPlanner
from anime_pipeline.planning.plans import PlannedShot

PROMPT = "1girl, courier, lantern-lit street"


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


def test_refinement_adds_the_scenes_lighting_and_mood_and_says_who_answered():
    refinement = LocalPlanner().refine_prompt(PROMPT, "night", "hushed, hopeful, unknown")
    assert refinement.refined == f"{PROMPT}, moonlight, lantern glow, deep blue shadows, muted tones, soft bloom"
    assert refinement.style_additions == ("moonlight, lantern glow, deep blue shadows", "muted tones", "soft bloom")
    assert (refinement.original, refinement.negative_additions) == (PROMPT, ())
    assert (refinement.source, refinement.path) == (NAME, ("local: ok",))


def test_an_unknown_time_and_mood_leave_the_prompt_as_it_is():
    assert LocalPlanner().refine_prompt(PROMPT, "teatime", "wistful").refined == PROMPT


def test_scene_coverage_establishes_then_covers_each_character(show):
    plan = LocalPlanner().plan_scene(show, "Mio walks the lantern street.", ["mio", "hoshi"])
    assert plan.shots == (PlannedShot("establishing", 3.0, ("mio", "hoshi")), PlannedShot("medium", 2.5, ("mio",)),
                          PlannedShot("medium", 2.5, ("hoshi",)), PlannedShot("close-up", 2.0, ("mio",)))
    assert (plan.source, plan.path) == (NAME, ("local: ok",))


def test_a_scene_that_moves_gets_an_action_shot(show):
    plan = LocalPlanner().plan_scene(show, "Hoshi leaps over the rooftops.", ["hoshi"])
    assert [shot.type for shot in plan.shots] == ["establishing", "medium", "close-up", "action"]


def test_feedback_is_never_sent():
    assert LocalPlanner().send_feedback({"clarity": 0.7}) is False
