"""Real test data for the studio, made by the pipeline's own embedded backends (no fake images),
and the studio served in a thread on a free port."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
import yaml

from anime_pipeline.config import Project
from anime_pipeline.metrics.models import ModelStore
from anime_pipeline.metrics.suite import MetricSuite
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.production.assembly import assemble_episode_video, assemble_scene_video
from anime_pipeline.production.characters import build_reference_sheet, compute_embedding
from anime_pipeline.production.dataset import DecisionLog, generate_batch
from anime_pipeline.production.shots import render_shot
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.studio.app import StudioConfig, create_app

HOSHI = "lantern-post/hoshi"  # the sample show's non-human character: every candidate waits for a person
CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "project_configs" / "lantern_post.yaml"
START_DEADLINE_S = 20


def _anchor(ref, paths: StoragePaths):
    sheet = build_reference_sheet(ref, PrevizRenderer(), paths.reference(ref.key), seed=5, show_dir=SAMPLE.parent)
    return compute_embedding(ref, paths.reference(ref.key), sheet.manifest["faces"], paths.embedding(ref.key)).anchor


def make_candidates(configs_dir: Path, root: Path, key: str, count: int, seed: int = 50_000) -> None:
    """A character's reference sheet and anchor, then `count` candidates from generate_batch."""
    ref = Project.load(configs_dir).characters[key]
    paths = StoragePaths(root)
    anchor = _anchor(ref, paths)
    generate_batch(ref, PrevizRenderer(), HeuristicReviewer(), anchor, paths.candidates(key),
                   DecisionLog(paths.decisions_log(key)), count, seed=seed)


def short_show(configs_dir: Path) -> None:
    """The sample show cut to one small scene of two one-second shots with dialogue."""
    data = yaml.safe_load(SAMPLE.read_text())
    data["show"]["video"] = {"width": 320, "height": 180, "fps": 12}
    episode = data["episodes"][0]
    scene = episode["scenes"][0]
    scene["shots"] = scene["shots"][1:3]
    for shot in scene["shots"]:
        shot["duration"] = 1.0
    episode["scenes"] = [scene]
    data["episodes"] = [episode]
    configs_dir.mkdir(parents=True, exist_ok=True)
    (configs_dir / "short.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def render_episode(base: Path) -> tuple[Path, Path]:
    configs, root = base / "configs", base / "storage"
    short_show(configs)
    project = Project.load(configs)
    paths = StoragePaths(root)
    suite = MetricSuite(ModelStore(root=base / "models", torch_home=base / "models" / "torch"))
    anchors = {ref.character.slug: _anchor(ref, paths) for ref in project.characters.values()}
    for key, ref in project.shots.items():
        render_shot(ref, PrevizRenderer(), LocalPlanner(), {s: anchors[s] for s in ref.shot.characters},
                    {s: None for s in ref.shot.characters}, None, paths.shot(key), suite)
    for key, ref in project.scenes.items():
        assemble_scene_video(ref, [paths.shot(k) for k in ref.shot_keys], paths.scene(key), None, suite)
    for key, ref in project.episodes.items():
        assemble_episode_video(ref, [paths.scene(k) for k in ref.scene_keys], paths.episode(key))
    return configs, root


@contextmanager
def serve_in_thread(config: StudioConfig) -> Iterator[str]:
    """The studio app under uvicorn in a thread, on a free loopback port; stopped on exit."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(create_app(config), lifespan="off", log_level="warning",
                                           proxy_headers=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(START_DEADLINE_S)
        sock.close()
