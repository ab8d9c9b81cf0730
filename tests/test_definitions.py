"""The code location loads, and the asset graph matches its reviewed snapshot (graph changes show in review).

Regenerate the snapshot after an intended change: UPDATE_SNAPSHOTS=1 pytest tests/test_definitions.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from anime_pipeline.definitions import build_definitions
from tests.worlds import REPO

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
PRODUCTION_ASSETS = {"character_reference", "character_embedding", "approved_dataset", "character_lora", "shot_clip",
                     "scene_video", "episode_video", "jellyfin_publish"}


def _graph_snapshot(settings) -> dict:
    graph = build_definitions(settings).resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": getattr(node.partitions_def, "name", None),
            "checks": sorted(c.name for c in node.check_keys),
            "blocking_checks": sorted(c.name for c in node.check_keys if graph.get_check_spec(c).blocking),
            "code_version": node.code_version,
            "pools": sorted(node.pools or []),
            "group": node.group_name,
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
        }
    return out


def test_asset_graph_matches_snapshot(settings):
    snapshot = _graph_snapshot(settings)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text())


def test_all_eight_assets_have_blocking_gates_and_partitions(settings):
    snapshot = _graph_snapshot(settings)
    assert PRODUCTION_ASSETS <= set(snapshot)
    for name in PRODUCTION_ASSETS:
        assert snapshot[name]["blocking_checks"], name
        assert snapshot[name]["partitions"] in {"characters", "shots", "scenes", "episodes"}


def test_gpu_steps_claim_their_device_pool(settings):
    from dataclasses import replace

    snapshot = _graph_snapshot(replace(settings, renderer_gpu="0"))
    for name in ("character_reference", "approved_dataset", "character_lora", "shot_clip"):
        assert snapshot[name]["pools"] == ["gpu-0"], name
    assert snapshot["scene_video"]["pools"] == []  # metrics on the CPU


def test_scenes_claim_the_metrics_gpu(settings):
    from dataclasses import replace

    snapshot = _graph_snapshot(replace(settings, models=replace(settings.models, device="cuda:1")))
    assert snapshot["scene_video"]["pools"] == ["gpu-1"]


def test_dagster_definitions_validate_through_workspace_yaml(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}  # the embedded instance, not the machine's PostgreSQL
    result = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=REPO, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
