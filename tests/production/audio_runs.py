"""Running one artifact of the produced sample episode through the real Dagster graph, after an edit of
its show file, with services given in the settings (the fakes' URLs and keys)."""

from __future__ import annotations

from collections.abc import Callable

import yaml

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.config import Project
from anime_pipeline.definitions import build_definitions, episode_job_name
from anime_pipeline.paths import StoragePaths
from anime_pipeline.runner import Runner, Stage, StepOutcome

EPISODE = "lantern-post/ep01"
SHOW_FILE = "lantern_post.yaml"


def edit_show(world, change: Callable[[dict], None]) -> None:
    path = world.configs / SHOW_FILE
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run_artifact(world, artifact: str, key: str, **settings) -> StepOutcome:
    """One Dagster run of `artifact` for entity `key`, as the demo's runner does it."""
    project = Project.load(world.configs)
    lines: list[str] = []
    with world.instance() as instance:
        runner = Runner(build_definitions(world.settings(**settings), project), instance,
                        StoragePaths(world.storage), report=lines.append)
        job = episode_job_name(project.episodes[EPISODE])
        return runner.run(Stage(f"{artifact} {key}", job, (asset_key(artifact, key),)))
