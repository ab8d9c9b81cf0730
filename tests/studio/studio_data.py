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

from anime_pipeline.paths import StoragePaths
from anime_pipeline.production import (
    ApprovedDataset,
    CharacterLora,
    EpisodeVideo,
    SceneVideo,
    ShotClip,
)
from anime_pipeline.production.batches import run_batch
from anime_pipeline.production.candidates import DecisionLog, dataset_state
from anime_pipeline.production.character_embedding import (
    CharacterEmbedding,
    load_anchor,
)
from anime_pipeline.production.character_reference import CharacterReference
from anime_pipeline.production.step import run_step
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.studio.app import StudioConfig, create_app
from tests.step_env import embedded_env

HOSHI = "lantern-post/hoshi"  # the sample show's non-human character: every candidate waits for a person
CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "project_configs" / "lantern_post.yaml"
START_DEADLINE_S = 20


def _anchor(env, ref):
    for step in (CharacterReference(), CharacterEmbedding()):
        run_step(step, ref, env)
    return load_anchor(env.paths.embedding(ref.key))


def _characters(env, ref) -> None:
    """Reference, anchor, dataset (pending candidates approved, as the demo's stand-in reviewer does) and
    adapter: what a shot needs of each of its characters."""
    _anchor(env, ref)
    run_step(ApprovedDataset(), ref, env)
    log = DecisionLog(env.paths.decisions_log(ref.key))
    pending = dataset_state(env.paths.candidates(ref.key), log).pending
    if pending:
        log.record_many([c.id for c in pending], "approve", "human:test")
        run_step(ApprovedDataset(), ref, env)
    run_step(CharacterLora(), ref, env)


def make_candidates(configs_dir: Path, root: Path, key: str, count: int) -> None:
    """A character's reference sheet and anchor, then one batch of `count` candidates, as the dataset step makes it."""
    env = embedded_env(configs_dir, root)
    ref = env.project.characters[key]
    paths = StoragePaths(root)
    run_batch(ref, PrevizRenderer(), HeuristicReviewer(), _anchor(env, ref), paths.candidates(key),
              DecisionLog(paths.decisions_log(key)), count)


def short_show(configs_dir: Path) -> None:
    """The sample show cut to one small, low-resolution scene of two shots with dialogue."""
    data = yaml.safe_load(SAMPLE.read_text())
    data["show"]["video"] = {"width": 320, "height": 180, "fps": 12}
    episode = data["episodes"][0]
    scene = episode["scenes"][0]
    scene["shots"] = scene["shots"][1:3]  # their durations fit their lines (validation checks it)
    episode["scenes"] = [scene]
    data["episodes"] = [episode]
    configs_dir.mkdir(parents=True, exist_ok=True)
    (configs_dir / "short.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def render_episode(base: Path) -> tuple[Path, Path]:
    """The short show's characters, shots, scene and episode, made by the production steps themselves."""
    configs, root = base / "configs", base / "storage"
    short_show(configs)
    env = embedded_env(configs, root, base / "models")
    for ref in env.project.characters.values():
        _characters(env, ref)
    for step, refs in ((ShotClip(), env.project.shots), (SceneVideo(), env.project.scenes),
                       (EpisodeVideo(), env.project.episodes)):
        for ref in refs.values():
            run_step(step, ref, env)
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
