"""Phase gates per show: each judges its own show's entities from their latest blocking checks, and
the next phase's assets of that show refuse to run while it is closed, naming what blocks it."""

from __future__ import annotations

import dagster as dg

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.assets.phases import PHASE_CHECK
from anime_pipeline.config import Project
from anime_pipeline.definitions import (
    build_definitions,
    characters_job_name,
    episode_job_name,
)

SHOT = "lantern-post/ep01/sc01/sh02"  # mio alone


def _gate(defs: dg.Definitions, project: Project, instance, show: str) -> dg.ExecuteInProcessResult:
    key = dg.AssetKey([show, "phase1_stills"])
    return defs.resolve_job_def(episode_job_name(project.episodes[f"{show}/ep01"])).execute_in_process(
        instance=instance, asset_selection=[key], raise_on_error=False)


def _shot(defs: dg.Definitions, project: Project, instance) -> dg.ExecuteInProcessResult:
    job = episode_job_name(project.episodes["lantern-post/ep01"])
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, asset_selection=[asset_key("shot_clip", SHOT)], raise_on_error=False)


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message


def test_each_show_judges_its_own_characters_and_holds_its_shots_until_open(show_factory):
    world = show_factory()
    show_factory(slug="second-show", into=world)
    project = Project.load(world.configs)
    defs = build_definitions(world.settings(), project)
    with world.instance() as instance:
        # not evaluated yet: the shot names the gate to materialize
        message = _failure(_shot(defs, project, instance))
        assert "has not been evaluated for lantern-post" in message and "lantern-post/phase1_stills" in message

        # mio passes, hoshi (not human) waits for a person: 1 of 2 pass, 50 % < 80 %
        characters = defs.resolve_job_def(characters_job_name("lantern-post")).execute_in_process(
            instance=instance, raise_on_error=False,
            asset_selection=[asset_key(a, f"lantern-post/{c}") for c in ("mio", "hoshi")
                             for a in ("character_reference", "character_embedding", "approved_dataset",
                                       "character_lora")])
        assert not characters.success
        gate = _gate(defs, project, instance, "lantern-post")
        (evaluation,) = gate.get_asset_check_evaluations()
        assert evaluation.check_name == PHASE_CHECK and not evaluation.passed
        metadata = gate.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["pass_rate"].value == 0.5 and metadata["blocking"].value == ["lantern-post/hoshi"]
        message = _failure(_shot(defs, project, instance))
        assert "Phase 1 — stills is closed (50% pass, needs 80%; blocking: lantern-post/hoshi)" in message

        # the other show's gate judges only its own characters, none of which ran
        (other,) = _gate(defs, project, instance, "second-show").get_asset_check_evaluations()
        assert not other.passed and other.metadata["verdict"].value == "closed (none of 2 entities evaluated)"

    # a show that accepts half its characters opens on the same verdicts, and its shot renders
    lenient = show_factory({"quality": {"phase_pass_rate": 0.5}}, into=world)
    project = Project.load(lenient.configs)
    defs = build_definitions(lenient.settings(), project)
    with lenient.instance() as instance:
        (evaluation,) = _gate(defs, project, instance, "lantern-post").get_asset_check_evaluations()
        assert evaluation.passed and evaluation.metadata["value"].value == 0.5
        assert _shot(defs, project, instance).get_asset_materialization_events()
