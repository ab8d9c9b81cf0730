"""The runner's plan: what the given episodes need, one run per entity, in dependency order, each
show's phase gate before the next phase's entities."""

from __future__ import annotations

import pytest

from anime_pipeline.config import Project
from anime_pipeline.runner import plan_for


def test_the_plan_builds_characters_then_each_phase_gate_before_what_it_opens(show_factory):
    world = show_factory()
    show_factory(slug="second-show", into=world)
    project = Project.load(world.configs)
    labels = [stage.label for stage in plan_for(project, ["second-show/ep01"])]
    assert labels[:2] == ["character second-show/mio", "character second-show/hoshi"]
    assert not [label for label in labels if "lantern-post" in label]  # only what the episode needs
    for gate, opened in (("phase1_stills", "shot "), ("phase2_animation", "scene "), ("phase3_video", "episode ")):
        position = labels.index(f"{gate} second-show")
        assert all(labels.index(label) > position for label in labels if label.startswith(opened))
    shots = [label for label in labels if label.startswith("shot ")]
    assert shots == sorted(shots) and len(shots) == 5  # continuity: a shot after the one it continues


def test_every_stage_runs_in_its_own_shows_job(show_factory):
    world = show_factory()
    show_factory(slug="second-show", into=world)
    for stage in plan_for(Project.load(world.configs)):
        show = stage.assets[0].path[0]
        assert stage.job.startswith(show.replace("-", "_") + "__"), stage


def test_an_unknown_episode_is_named(show_factory):
    with pytest.raises(KeyError, match="unknown episode.*lantern-post/ep09"):
        plan_for(Project.load(show_factory().configs), ["lantern-post/ep09"])
