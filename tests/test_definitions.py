"""The code location loads, and the asset graph matches its reviewed snapshot (graph changes show in review).

Regenerate the snapshot after an intended change: UPDATE_SNAPSHOTS=1 pytest tests/test_definitions.py
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import dagster as dg

from anime_pipeline.definitions import build_definitions
from tests.worlds import EMBEDDED_OVERRIDES, REPO

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
ARTIFACTS = {"character_reference", "character_embedding", "approved_dataset", "character_lora", "shot_clip",
             "scene_video", "episode_video", "jellyfin_publish"}


def _graph_snapshot(settings) -> dict:
    graph = build_definitions(settings).resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "blocking_checks": sorted(c.name for c in node.check_keys if graph.get_check_spec(c).blocking),
            "code_version": node.code_version,
            "pools": sorted(node.pools or []),
            "group": node.group_name,
            "tags": {k: v for k, v in sorted(node.tags.items()) if k.startswith("anime/")},
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
        }
    return out


def test_asset_graph_matches_snapshot(settings):
    snapshot = _graph_snapshot(settings)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text())


def test_every_artifact_of_every_entity_has_its_blocking_gates_and_no_partitions(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    artifacts = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def is None, key
        artifacts.setdefault(key.path[-1], []).append(node)
    assert ARTIFACTS <= set(artifacts)
    assert len(artifacts["shot_clip"]) == 5 and len(artifacts["character_lora"]) == 2
    for name in ARTIFACTS:
        for node in artifacts[name]:
            assert any(graph.get_check_spec(c).blocking for c in node.check_keys), node.key


def test_gpu_steps_claim_their_device_pool(settings):
    snapshot = _graph_snapshot(replace(settings, renderer_gpu="0"))
    for artifact in ("character_reference", "approved_dataset", "character_lora"):
        assert snapshot[f"lantern-post/mio/{artifact}"]["pools"] == ["gpu-0"], artifact
    assert snapshot["lantern-post/ep01/sc01/sh01/shot_clip"]["pools"] == ["gpu-0"]
    assert snapshot["lantern-post/ep01/sc01/scene_video"]["pools"] == []  # metrics on the CPU


def test_scenes_claim_the_metrics_gpu(settings):
    snapshot = _graph_snapshot(replace(settings, models=replace(settings.models, device="cuda:1")))
    assert snapshot["lantern-post/ep01/sc01/scene_video"]["pools"] == ["gpu-1"]


def test_dagster_definitions_validate_through_workspace_yaml(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # the embedded instance, not the machine's PostgreSQL
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_multiprocess_engine_runs_one_runs_shots_on_every_card_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ANIME_PIPELINE_EXECUTOR", "multiprocess")
    import tests.deploy.two_card_job as location

    assert importlib.reload(location).two_shots.executor_def.name == "multiprocess"  # built on this environment
    home = tmp_path / "home"
    home.mkdir()
    config = {"ops": {f"shot_{i}": {"config": {"folder": str(tmp_path)}} for i in (0, 1)}}
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        result = dg.execute_job(dg.reconstructable(two_shots_job), instance, run_config=config)
        assert result.success
        pids = {e.dagster_event.pid for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)}
    shots = [json.loads((tmp_path / f"shot_{i}.json").read_text()) for i in (0, 1)]
    assert sorted(s["card"] for s in shots) == ["gpu-0", "gpu-1"]
    assert all(s["saw_the_other_card_busy"] for s in shots), shots  # both cards at once, in one run
    assert len(pids) == 2  # each step in a process of its own


def two_shots_job() -> dg.JobDefinition:
    from tests.deploy.two_card_job import two_shots

    return two_shots
