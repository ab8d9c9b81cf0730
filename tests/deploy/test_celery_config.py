"""The Celery engine is configuration: which steps go to which card's queue, and workers that agree with the runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest
import yaml

from anime_pipeline.definitions import CELERY_APP_CONFIG, build_definitions
from anime_pipeline.settings import Settings
from tests.worlds import REPO

QUEUE = "dagster-celery/queue"
PRODUCTION = {"character_reference", "character_embedding", "approved_dataset", "character_lora", "shot_clip",
              "scene_video", "episode_video", "jellyfin_publish"}


@pytest.fixture
def celery_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANIME_PIPELINE_CELERY_BROKER", "pyamqp://guest@127.0.0.1:5672//")
    monkeypatch.setenv("ANIME_PIPELINE_CELERY_BACKEND", "rpc://")


def _steps(settings: Settings) -> dict[str, tuple[str | None, str | None]]:
    """Per production asset key: (its pool, its Celery queue tag)."""
    graph = build_definitions(settings).resolve_asset_graph()
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.path[-1] in PRODUCTION:
            out[key.to_user_string()] = (next(iter(node.pools or []), None), node.assets_def.op.tags.get(QUEUE))
    return out


def test_workers_and_runs_share_one_celery_app_config():
    config = yaml.safe_load((REPO / "celery.yaml").read_text())["execution"]["config"]
    assert config["config_source"] == CELERY_APP_CONFIG
    assert config["broker"] == {"env": "ANIME_PIPELINE_CELERY_BROKER"}
    assert config["backend"] == {"env": "ANIME_PIPELINE_CELERY_BACKEND"}


def test_with_celery_each_shot_is_bound_to_one_card_in_turn(settings: Settings, celery_env):
    celery = replace(settings, executor="celery", comfyui_urls=(("0", "http://a:8188"), ("1", "http://b:8188")))
    steps = _steps(celery)
    shots = sorted(key for key in steps if key.endswith("/shot_clip"))
    # bound to a card by its queue; no static pool: the step claims its card's slot on the worker
    assert [steps[key] for key in shots[:2]] == [(None, "gpu-0"), (None, "gpu-1")]
    assert all(steps[key] == (None, "gpu-0") for key in steps if key.endswith("/character_lora"))
    on_cards = {key for key in steps if key.endswith(("/shot_clip", "/character_lora", "/character_reference",
                                                      "/approved_dataset"))}
    for key, (pool, queue) in steps.items():
        if key in on_cards:
            assert pool is None and queue in ("gpu-0", "gpu-1"), key
        else:
            assert queue == (pool or "cpu"), key  # the metrics GPU's queue and pool, or the cpu queue
    job = build_definitions(celery).resolve_job_def("lantern_post__episode_01")
    assert job.executor_def.name == "celery"


def test_in_process_stays_the_default_with_no_broker(settings: Settings):
    steps = _steps(replace(settings, comfyui_urls=(("0", "http://a:8188"),)))
    assert {queue for _, queue in steps.values()} == {None}
    assert {pool for key, (pool, _) in steps.items() if key.endswith("/shot_clip")} == {None}  # leased when it runs
    assert build_definitions(settings).resolve_job_def("lantern_post__episode_01").executor_def is dg.in_process_executor


def test_celery_without_a_broker_is_refused_naming_the_variables(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ANIME_PIPELINE_CELERY_BROKER", raising=False)
    monkeypatch.setenv("ANIME_PIPELINE_CELERY_BACKEND", "rpc://")
    with pytest.raises(ValueError, match="ANIME_PIPELINE_EXECUTOR=celery needs ANIME_PIPELINE_CELERY_BROKER"):
        replace(settings, executor="celery")
    with pytest.raises(ValueError, match="'kubernetes' is not one of in_process, multiprocess, celery"):
        replace(settings, executor="kubernetes")


def test_settings_read_the_engine_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, celery_env):
    monkeypatch.setenv("ANIME_PIPELINE_EXECUTOR", "celery")
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(tmp_path / "storage"))
    monkeypatch.setenv("ANIME_PIPELINE_COMFYUI_RECONNECT_WINDOW", "300")
    settings = Settings.from_env()
    assert (settings.executor, settings.comfyui_reconnect_window) == ("celery", 300.0)
    assert settings.io_dir == tmp_path / ".dagster" / "io"  # beside the artifact storage root, not in it
    monkeypatch.setenv("ANIME_PIPELINE_DAGSTER_IO", str(tmp_path / "storage" / "_dagster"))
    with pytest.raises(ValueError, match="ANIME_PIPELINE_DAGSTER_IO: .* is inside the artifact storage root"):
        Settings.from_env()
    monkeypatch.delenv("ANIME_PIPELINE_DAGSTER_IO")
    monkeypatch.setenv("ANIME_PIPELINE_COMFYUI_RECONNECT_WINDOW", "soon")
    with pytest.raises(ValueError, match="ANIME_PIPELINE_COMFYUI_RECONNECT_WINDOW: 'soon' is not a positive number"):
        Settings.from_env()
