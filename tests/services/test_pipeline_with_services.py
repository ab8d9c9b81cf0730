"""The dataset and shot assets end to end with `reviewer: ollama` and `director: echo_brain`,
against in-process servers that behave like Ollama and Echo Brain."""

from __future__ import annotations

import logging

import dagster as dg
import pytest
import yaml

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.definitions import build_definitions, characters_job_name
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.candidates import DecisionLog, dataset_state
from anime_pipeline.settings import Settings
from anime_pipeline.storage import read_json
from tests.services.fake_echo_brain import LEARN, REFINE, FakeEchoBrain
from tests.services.fake_ollama import FakeOllama
from tests.worlds import EMBEDDED_OVERRIDES, SAMPLE, empty_store

SECRET = "s3cr3t-pa55"  # in every service URL: it must show up nowhere the pipeline writes or logs


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://studio:{SECRET}@")


def _answer(body: dict) -> dict:
    """A vision model that likes what it sees; the schema tells which question was asked."""
    props = body["format"]["properties"]
    if "matches_species" in props:
        return {"matches_species": True, "looks_human": False, "reason": "fox ears, fur, snout"}
    if "style_additions" in props:
        return {"style_additions": ["moonlit rim light"], "negative_additions": ["harsh shadows"]}
    checklist = {item: True for item in props["feature_checklist"]["properties"]}
    return {"character_match": 0.95, "clarity": 0.9, "completeness": 0.9, "training_value": 9, "solo": True,
            "feature_checklist": checklist, "notes": []}


@pytest.fixture
def services():
    with FakeOllama() as ollama, FakeEchoBrain() as echo:
        ollama.responder = _answer
        yield ollama, echo


@pytest.fixture
def setup(tmp_path, services):
    ollama, echo = services
    configs = tmp_path / "configs"
    configs.mkdir()
    data = yaml.safe_load(SAMPLE.read_text())
    data["backends"] = {"reviewer": "ollama", "director": "echo_brain"}
    (configs / SAMPLE.name).write_text(yaml.safe_dump(data, sort_keys=False))
    storage = tmp_path / "storage"
    settings = Settings(configs, storage, storage / "library", "cpu", "cpu", models=empty_store(tmp_path),
                        ollama_url=with_credentials(ollama.url), echo_brain_url=with_credentials(echo.url))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=EMBEDDED_OVERRIDES) as instance:
        yield build_definitions(settings), instance, StoragePaths(storage)


CHARACTER = ("character_reference", "character_embedding", "approved_dataset", "character_lora")
EPISODE_JOB = "lantern_post__episode_01"


def _run(defs, instance, job, keys: list[dg.AssetKey], **kwargs):
    return defs.resolve_job_def(job).execute_in_process(asset_selection=keys, instance=instance, raise_on_error=False,
                                                        **kwargs)


def _character(defs, instance, key: str, artifacts=CHARACTER):
    return _run(defs, instance, characters_job_name("lantern-post"), [asset_key(a, key) for a in artifacts])


def test_dataset_and_shots_use_the_vision_reviewer_and_the_director(setup, services, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    defs, instance, paths = setup
    ollama, echo = services
    assert _character(defs, instance, "lantern-post/mio").success
    dataset = read_json(paths.dataset("lantern-post/mio") / "manifest.json")
    assert dataset["backend"] == "ollama vision (gemma3)"
    verdict = read_json(paths.candidates("lantern-post/mio") / "c0000.json")["verdict"]
    assert verdict["reviewer"] == "ollama vision (gemma3)" and verdict["decision"] == "approve"
    reviews = [c for c in ollama.chats if "feature_checklist" in c["format"]["properties"]]
    assert reviews and all(c["options"]["temperature"] == 0 and "seed" in c["options"] for c in reviews)
    assert all(m.get("images") for c in reviews for m in c["messages"] if m["role"] == "user")

    # Hoshi is not human: even at 0.95 the vision reviewer's verdicts wait for a person.
    result = _character(defs, instance, "lantern-post/hoshi")
    assert not result.success
    log = DecisionLog(paths.decisions_log("lantern-post/hoshi"))
    pending = dataset_state(paths.candidates("lantern-post/hoshi"), log).pending
    assert pending and not dataset_state(paths.candidates("lantern-post/hoshi"), log).approved
    assert any("matches_species" in c["format"]["properties"] for c in ollama.chats)
    for candidate in pending:
        log.record(candidate.id, "approve", "human:test")
    assert _character(defs, instance, "lantern-post/hoshi", ("approved_dataset", "character_lora")).success

    assert _run(defs, instance, EPISODE_JOB, [dg.AssetKey(["lantern-post", "phase1_stills"])]).success
    shot = "lantern-post/ep01/sc01/sh02"
    clip = asset_key("shot_clip", shot)
    assert _run(defs, instance, EPISODE_JOB, [clip]).success
    manifest = read_json(paths.shot(shot) / "manifest.json")
    assert manifest["director_path"] == ["echo_brain: ok"]
    assert manifest["prompt"] == "1girl, courier, lantern-lit street, moonlight, soft bloom"
    assert "Mio reading an old envelope" in manifest["prompt_before_refinement"]
    assert "overexposed" in manifest["negative_prompt"]
    assert [r for r in echo.requests if r.path == REFINE]
    feedback = [r.body for r in echo.requests if r.path == LEARN]
    assert feedback and feedback[0]["scores"]["shot"] == shot and "gates" in feedback[0]["scores"]

    # Echo Brain down: the director falls back to Ollama and says so; the failed feedback never fails the asset.
    echo.status = 500
    result = _run(defs, instance, EPISODE_JOB, [clip],
                  run_config={"ops": {clip.to_python_identifier(): {"config": {"force": True}}}})
    assert result.success
    manifest = read_json(paths.shot(shot) / "manifest.json")
    assert manifest["director_path"][0].startswith("echo_brain: EchoBrainUnavailable")
    assert manifest["director_path"][-1] == "ollama: ok"
    assert manifest["prompt"].endswith("moonlit rim light")
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=clip), limit=1).records
    assert "echo_brain: EchoBrainUnavailable" in records[0].asset_materialization.metadata["director_path"].value
    assert echo.url in manifest["director_path"][0]  # the server is named, without its credentials

    # storage, the Dagster home (event log, compute logs) and the captured log records
    written = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(written) > 100 and not [f for f in written if SECRET.encode() in f.read_bytes()]
    events = [str(entry) for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]
    assert events and not [e for e in events if SECRET in e]
    assert not [r for r in caplog.records if SECRET in logging.Formatter().format(r)]


def test_reviewer_ollama_without_a_url_is_a_clear_failure(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    data = yaml.safe_load(SAMPLE.read_text())
    data["backends"] = {"reviewer": "ollama"}
    (configs / SAMPLE.name).write_text(yaml.safe_dump(data, sort_keys=False))
    storage = tmp_path / "storage"
    settings = Settings(configs, storage, storage / "library", "cpu", "cpu", models=empty_store(tmp_path))
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides=EMBEDDED_OVERRIDES) as instance:
        result = _character(build_definitions(settings), instance, "lantern-post/mio")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message
    assert "backends.reviewer: ollama" in message and "ANIME_PIPELINE_OLLAMA_URL" in message
