"""Shots render with their characters' LoRAs: a new LoRA makes that character's shots stale and only
those; a LoRA the rendering server does not list fails the shot naming the server and the file."""

from __future__ import annotations

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.definitions import build_definitions
from anime_pipeline.production.character_lora import LoraManifest
from anime_pipeline.production.shot_clip import ShotManifest
from tests.production.lora_world import HOSHI_SHOT, MIO, MIO_SHOT, lora_world

SHOTS = [f"{MIO_SHOT}/shot_clip", f"{HOSHI_SHOT}/shot_clip"]


def _status(instance, settings, key: str) -> dagster_compat.StaleStatus:
    graph = build_definitions(settings).resolve_asset_graph()
    return dagster_compat.stale_resolver(instance, graph).get_status(dg.AssetKey(key.split("/")))


def _keyframe_lora_names(lw, shot: str) -> list[str]:
    manifest = ShotManifest.require(lw.paths.shot(shot), shot)
    graph = manifest.chosen.renderer_params["keyframe"]["params"]["graph"]
    return [node["inputs"]["lora_name"] for node in graph.values() if node["class_type"] == "LoraLoader"]


def test_a_new_lora_makes_only_that_characters_shots_stale(characters, tmp_path):
    with lora_world(characters, tmp_path, "kohya", favourite=r"-e001-", shared=True) as lw, \
            characters.instance() as instance:
        assert lw.materialize(instance, [f"{MIO}/character_lora"], kohya=True).success
        first = LoraManifest.require(lw.paths.adapter(MIO), MIO).lora
        rendered = lw.materialize(instance, SHOTS, kohya=True)
        assert sorted(e.asset_key.to_user_string() for e in rendered.get_asset_materialization_events()) == SHOTS
        assert _keyframe_lora_names(lw, MIO_SHOT) == [f"anime_pipeline/{first.served_name}"]
        assert _keyframe_lora_names(lw, HOSHI_SHOT) == []  # hoshi's adapter is still the previz palette
        settings = lw.settings(kohya=True)
        before = {shot: _status(instance, settings, shot) for shot in SHOTS}
        assert before[SHOTS[0]] == dagster_compat.StaleStatus.FRESH

        # kohya stamps every run with its own session id: trained again, the LoRA is a new file
        assert lw.materialize(instance, [f"{MIO}/character_lora"], kohya=True, force=True).success
        second = LoraManifest.require(lw.paths.adapter(MIO), MIO).lora
        assert second.sha256 != first.sha256 and second.served_name != first.served_name
        assert _status(instance, settings, SHOTS[0]) == dagster_compat.StaleStatus.STALE
        assert _status(instance, settings, SHOTS[1]) == before[SHOTS[1]]

        again = lw.materialize(instance, [SHOTS[0]], kohya=True)
        assert [e.asset_key.to_user_string() for e in again.get_asset_materialization_events()] == [SHOTS[0]]
        assert _keyframe_lora_names(lw, MIO_SHOT) == [f"anime_pipeline/{second.served_name}"]
        assert (lw.shared / "anime_pipeline" / second.served_name).read_bytes() == (
            lw.paths.adapter(MIO) / second.file).read_bytes()


def test_a_lora_the_rendering_server_does_not_list_fails_the_shot_naming_server_and_file(characters, tmp_path):
    with lora_world(characters, tmp_path, "kohya", favourite=r"-e001-", shared=True) as lw, \
            characters.instance() as instance:
        assert lw.materialize(instance, [f"{MIO}/character_lora"], kohya=True).success
        served = LoraManifest.require(lw.paths.adapter(MIO), MIO).lora.served_name
        lw.shared = tmp_path / "a-folder-the-server-does-not-list"
        lw.shared.mkdir()
        result = lw.materialize(instance, [SHOTS[0]], kohya=True)
        assert not result.success and not result.get_asset_materialization_events()
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.event_specific_data.error_display_string
        assert lw.fake.url in message and f"'anime_pipeline/{served}'" in message
        assert not [loras for loras in lw.fake.rendered_loras if f"anime_pipeline/{served}" in loras]
