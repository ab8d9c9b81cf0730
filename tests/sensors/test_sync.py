"""project_sync says when the show files no longer match the loaded code location, and what a reload
would add, remove or mark stale; `reload_dagster_ui` asks a running webserver to reload."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
import yaml
from aiohttp import web

from anime_pipeline.config import Project
from anime_pipeline.resources import ProjectResource
from anime_pipeline.sensors.sync import build_project_sync, entity_versions, plan_sync, reload_dagster_ui
from tests.services.fake_ollama import BackgroundServer, unused_url


def _tick(configs_dir, loaded: Project) -> dg.SkipReason:
    context = dg.build_sensor_context(resources={"project": ProjectResource(configs_dir=str(configs_dir))})
    return build_project_sync(loaded)(context)


def _edit(configs_dir, change: Callable[[dict], None]) -> None:
    path = configs_dir / "lantern_post.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_in_sync_files_are_reported_as_such(configs_dir):
    skip = _tick(configs_dir, Project.load(configs_dir))
    assert skip.skip_message == "the loaded assets match project_configs/"


def test_an_edited_prompt_is_reported_stale_on_reload_with_what_contains_it(configs_dir):
    loaded = Project.load(configs_dir)
    _edit(configs_dir, lambda d: d["episodes"][0]["scenes"][0]["shots"][0].update(prompt="a different prompt"))
    plan = plan_sync(entity_versions(loaded), entity_versions(Project.load(configs_dir)))
    # the shot's entry is part of its scene's and episode's entries: their code versions change with it
    assert plan.edited == ["lantern-post/ep01/episode_video", "lantern-post/ep01/jellyfin_publish",
                           "lantern-post/ep01/sc01/scene_video", "lantern-post/ep01/sc01/sh01/shot_clip"]
    assert not plan.added and not plan.removed
    assert "4 edited asset(s) since load" in _tick(configs_dir, loaded).skip_message


def test_a_removed_shot_and_a_new_character_are_named_for_the_reload(configs_dir):
    loaded = Project.load(configs_dir)

    def change(data: dict) -> None:
        data["episodes"][0]["scenes"][0]["shots"].pop(2)
        data["characters"].append({**data["characters"][0], "slug": "kenji", "name": "Kenji"})

    _edit(configs_dir, change)
    message = _tick(configs_dir, loaded).skip_message
    assert "reload it" in message and "lantern-post/kenji/character_reference" in message
    assert "lantern-post/ep01/sc01/sh03/shot_clip" in message


def test_invalid_files_keep_the_loaded_definitions_and_name_the_file(configs_dir):
    loaded = Project.load(configs_dir)
    (configs_dir / "broken.yaml").write_text("show: {slug: x}\n")
    message = _tick(configs_dir, loaded).skip_message
    assert message.startswith("show files are invalid; the loaded definitions stay in use") and "broken.yaml" in message


def _graphql(answer: dict, status: int = 200) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        assert "reloadWorkspace" in body["query"]
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_post("/graphql", handle)
    return app


@pytest.mark.parametrize(("answer", "status", "said"), [
    ({"data": {"reloadWorkspace": {"__typename": "Workspace"}}}, 200, "reloaded the code location"),
    ({"errors": [{"message": "boom"}]}, 200, "refused the reload (HTTP 200)"),
    ({"data": None}, 500, "refused the reload (HTTP 500)"),
])
def test_reload_reports_what_the_webserver_did(answer, status, said):
    server = BackgroundServer(_graphql(answer, status))
    url = server.start()
    try:
        assert said in reload_dagster_ui(url.replace("http://", "http://admin:hunter2@"))
    finally:
        server.stop()


def test_reload_without_a_webserver_says_it_loads_the_files_when_it_starts():
    message = reload_dagster_ui(unused_url().replace("http://", "http://admin:hunter2@"), timeout=5)
    assert "no Dagster UI answers" in message and "hunter2" not in message
