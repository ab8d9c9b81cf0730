"""The whole sample show through the real Dagster graph on the embedded defaults (what `demo` does)."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from anime_pipeline.config import Project
from anime_pipeline.definitions import build_definitions
from anime_pipeline.media import decode_check, probe
from anime_pipeline.paths import StoragePaths
from anime_pipeline.runner import Runner, plan_for
from anime_pipeline.sensors.sync import sync_instance
from anime_pipeline.settings import Settings

from conftest import EMBEDDED_OVERRIDES, SAMPLE, empty_store

EPISODE = "lantern-post/ep01"


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """Run the demo flow once for the module: sync, then every job partition by partition."""
    root = tmp_path_factory.mktemp("pipeline")
    configs = root / "project_configs"
    configs.mkdir()
    shutil.copy(SAMPLE, configs / SAMPLE.name)
    storage = root / "storage"
    settings = Settings(configs, storage, storage / "library", "cpu", "cpu", models=empty_store(root))
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home"), overrides=EMBEDDED_OVERRIDES) as instance:
        sync_instance(instance, configs)
        project = Project.load(configs)
        lines: list[str] = []
        runner = Runner(build_definitions(settings), instance, StoragePaths(storage), report=lines.append)
        ok = runner.run_plan(plan_for(project), project, approve_as="demo")
        yield {"ok": ok, "lines": lines, "settings": settings, "instance": instance, "runner": runner}


def test_demo_flow_succeeds(produced):
    assert produced["ok"], "\n".join(produced["lines"])


def test_episode_is_h264_aac_and_lasts_the_sum_of_its_scenes(produced):
    paths = StoragePaths(produced["settings"].storage_root)
    episode = paths.episode(EPISODE) / "episode.mp4"
    decode_check(episode)
    info = probe(episode)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    scenes = [probe(paths.scene(f"{EPISODE}/{s}") / "scene.mp4") for s in ("sc01", "sc02")]
    assert info.frames == sum(s.frames for s in scenes)
    assert abs(info.duration - sum(s.duration for s in scenes)) <= 1 / 24


def test_scene_duration_is_shots_minus_overlaps(produced):
    paths = StoragePaths(produced["settings"].storage_root)
    shots = [probe(paths.shot(f"{EPISODE}/sc01/{s}") / "clip.mp4").frames for s in ("sh01", "sh02", "sh03")]
    scene = probe(paths.scene(f"{EPISODE}/sc01") / "scene.mp4")
    overlap = round(0.3 * 24)
    assert scene.frames == sum(shots) - 2 * overlap
    srt = (paths.scene(f"{EPISODE}/sc01") / "scene.srt").read_text()
    assert "Mio Kagari: Last bag of the night, Hoshi." in srt


def test_library_layout(produced):
    series = produced["settings"].library_root / "Shows" / "Lantern Post (2026)"
    season = series / "Season 01"
    base = "Lantern Post S01E01 - The Letter Past the Last Lantern"
    for path in (series / "tvshow.nfo", season / f"{base}.mp4", season / f"{base}.nfo", season / f"{base}-thumb.jpg"):
        assert path.exists(), path
    assert (season / f"{base}-thumb.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_every_asset_and_gate_recorded(produced):
    instance = produced["instance"]
    for asset, partition in [("character_reference", "lantern-post/mio"), ("character_lora", "lantern-post/hoshi"),
                             ("shot_clip", f"{EPISODE}/sc02/sh02"), ("scene_video", f"{EPISODE}/sc02"),
                             ("episode_video", EPISODE), ("jellyfin_publish", EPISODE)]:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
        assert records, f"{asset} {partition} not materialized"
        metadata = records[0].asset_materialization.metadata
        assert any(k in metadata for k in ("backend", "publisher", "trainer")), asset


def test_non_human_character_was_decided_by_a_named_reviewer(produced):
    paths = StoragePaths(produced["settings"].storage_root)
    log = [line for line in (paths.decisions_log("lantern-post/hoshi")).read_text().splitlines()]
    assert any('"decider": "demo"' in line and '"approve"' in line for line in log)
    assert not any('"decider": "auto:' in line and '"decision": "approve"' in line for line in log)


def test_editing_one_prompt_rerenders_only_that_shot_its_scene_and_episode(produced):
    settings, instance, runner = produced["settings"], produced["instance"], produced["runner"]
    paths = StoragePaths(settings.storage_root)
    project = Project.load(settings.configs_dir)
    before = {k: (paths.shot(k) / "clip.mp4").stat().st_mtime_ns for k in project.shots}
    scenes_before = {k: (paths.scene(k) / "scene.mp4").stat().st_mtime_ns for k in project.scenes}
    path = settings.configs_dir / SAMPLE.name
    data = yaml.safe_load(path.read_text())
    data["episodes"][0]["scenes"][0]["shots"][1]["prompt"] = "Mio holds the envelope up to the lantern light"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sync_instance(instance, settings.configs_dir)

    graph = runner.defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    stale = [k for k in project.shots if resolver.get_status(dg.AssetKey("shot_clip"), k) == StaleStatus.STALE]
    assert stale == [f"{EPISODE}/sc01/sh02"]

    project = Project.load(settings.configs_dir)
    plan = plan_for(project)
    for key in plan.shots:
        assert runner.run("shot_job", key, 1).success
    for key in plan.scenes:
        assert runner.run("scene_job", key, 1).success
    changed = [k for k in project.shots if (paths.shot(k) / "clip.mp4").stat().st_mtime_ns != before[k]]
    assert changed == [f"{EPISODE}/sc01/sh02"]
    changed_scenes = [k for k in project.scenes if (paths.scene(k) / "scene.mp4").stat().st_mtime_ns != scenes_before[k]]
    assert changed_scenes == [f"{EPISODE}/sc01"]


def test_failing_blocking_check_stops_downstream_in_the_same_run(tmp_path, instance):
    configs = tmp_path / "configs"
    configs.mkdir()
    data = yaml.safe_load(SAMPLE.read_text())
    data["quality"] = {"identity": 0.9999}  # no reference can agree this closely with the anchor
    (configs / "show.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    storage = tmp_path / "storage"
    settings = Settings(configs, storage, storage / "library", "cpu", "cpu", models=empty_store(tmp_path))
    sync_instance(instance, configs)
    defs = build_definitions(settings)
    result = defs.resolve_job_def("character_job").execute_in_process(
        partition_key="lantern-post/mio", instance=instance, raise_on_error=False)
    assert not result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["references_agree"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"character_reference", "character_embedding"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {"character_reference", "character_embedding"}
    assert not (storage / "lantern-post" / "characters" / "mio" / "candidates").exists()


def test_reproduce_gives_identical_pixels_and_catches_a_changed_frame(produced):
    from anime_pipeline.imaging import load_png, save_png
    from anime_pipeline.render.previz import PrevizRenderer
    from anime_pipeline.reproduce import reproduce_shot

    settings = produced["settings"]
    project = Project.load(settings.configs_dir)
    key = f"{EPISODE}/sc02/sh02"  # the continuity-chained shot: its first frame is kept with it
    shot_dir = StoragePaths(settings.storage_root).shot(key)
    result = reproduce_shot(project.shots[key], shot_dir, PrevizRenderer())
    assert result.identical and result.frames > 0
    frame_path = sorted((shot_dir / "frames").glob("*.png"))[5]
    tampered = load_png(frame_path).copy()
    tampered[0, 0] = 255 - tampered[0, 0]
    save_png(frame_path, tampered)
    result = reproduce_shot(project.shots[key], shot_dir, PrevizRenderer())
    assert result.identical_frames == result.frames - 1 and result.max_abs_difference > 0
