"""`anime-pipeline status --json`: every artifact with Dagster's own stale status, read from the instance."""

from __future__ import annotations

import json

import yaml

from anime_pipeline.cli import main
from tests.worlds import EPISODE, SAMPLE

SHOT = f"{EPISODE}/sc01/sh02"


def _status(world, monkeypatch, capsys) -> list[dict]:
    for name, value in (("ANIME_PIPELINE_CONFIGS", world.configs), ("ANIME_PIPELINE_STORAGE", world.storage),
                        ("ANIME_PIPELINE_MODELS", world.root / "models"), ("DAGSTER_HOME", world.home)):
        monkeypatch.setenv(name, str(value))
    assert main(["status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_edited_prompt_makes_exactly_its_shot_scene_episode_and_publication_stale(produced, monkeypatch, capsys):
    fresh = _status(produced, monkeypatch, capsys)
    production = [s for s in fresh if s["role"] != "planning"]
    assert production and all(s["materialized"] and s["stale_status"] == "FRESH" for s in production)
    assert all(g["passed"] for s in production for g in s["gates"])

    path = produced.configs / SAMPLE.name
    data = yaml.safe_load(path.read_text())
    data["episodes"][0]["scenes"][0]["shots"][1]["prompt"] = "Mio holds the envelope up to the lantern light"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    stale = {s["key"]: s for s in _status(produced, monkeypatch, capsys) if s["stale"]}
    assert set(stale) == {f"{SHOT}/shot_clip", f"{EPISODE}/sc01/scene_video", f"{EPISODE}/episode_video",
                          f"{EPISODE}/jellyfin_publish"}
    assert stale[f"{SHOT}/shot_clip"]["stale_causes"] and stale[f"{SHOT}/shot_clip"]["stale_status"] == "STALE"
