"""What the sound costs the demo's scene and episode steps, on the embedded defaults.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/scene_audio.py --repeat 5

Produces the sample show once (the demo's runner, embedded defaults), then per repeat and per scene: the audio
part of scene_video (`make_scene_audio`: voices, speech, placement, music bed, mix) with empty caches
and again with the speech and music cached, the whole scene_video step (audio cached, as on a re-run
after a picture-only edit), and episode_video (stream copy, chapters, subtitles, loudness). Prints
medians, and the audio part as × realtime of the scene's length.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the embedded StepEnv the step tests use

import dagster as dg  # noqa: E402
from step_env import embedded_env  # noqa: E402

from anime_pipeline.config import Project  # noqa: E402
from anime_pipeline.definitions import build_definitions  # noqa: E402
from anime_pipeline.paths import StoragePaths  # noqa: E402
from anime_pipeline.production import EpisodeVideo, SceneVideo  # noqa: E402
from anime_pipeline.production.scene_audio import CACHE, make_scene_audio  # noqa: E402
from anime_pipeline.production.scene_video import overlap_frames  # noqa: E402
from anime_pipeline.production.shot_clip import ShotManifest  # noqa: E402
from anime_pipeline.production.step import run_step  # noqa: E402
from anime_pipeline.runner import Runner, plan_for  # noqa: E402
from anime_pipeline.settings import Settings  # noqa: E402


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def produce_demo(root: Path) -> None:
    """The sample show end to end, as `anime-pipeline demo` makes it."""
    configs, storage = root / "configs", root / "storage"
    project = Project.load(configs)
    settings = Settings(configs, storage, storage / "library", "cpu", "cpu")
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        runner = Runner(build_definitions(settings, project), instance, StoragePaths(storage), report=lambda _: None)
        if not runner.run_plan(plan_for(project), project, approve_as="benchmark"):
            raise SystemExit("the demo failed; run `anime-pipeline demo` to see why")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "project_configs", root / "configs")
        produce_demo(root)
        env = embedded_env(root / "configs", root / "storage", root / "models")
        times: dict[str, list[float]] = defaultdict(list)
        seconds: dict[str, float] = {}
        for _ in range(args.repeat):
            for key, ref in env.project.scenes.items():
                frames = [ShotManifest.require(env.paths.shot(k), k).frames for k in ref.shot_keys]
                fps = ref.config.show.video.fps
                k = overlap_frames(fps)
                seconds[key] = (sum(frames) - k * (len(frames) - 1)) / fps
                out = env.paths.scene(key)
                out.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(env.paths.root / CACHE, ignore_errors=True)
                times[f"{key} audio, nothing cached"].append(
                    _timed(lambda: make_scene_audio(ref, env, frames, fps, k, out)))
                times[f"{key} audio, speech and music cached"].append(
                    _timed(lambda: make_scene_audio(ref, env, frames, fps, k, out)))
                times[f"{key} scene_video step"].append(_timed(lambda: run_step(SceneVideo(), ref, env, force=True)))
            for key, ref in env.project.episodes.items():
                times[f"{key} episode_video step"].append(
                    _timed(lambda: run_step(EpisodeVideo(), ref, env, force=True)))
        for name, values in times.items():
            median = statistics.median(values)
            scene = name.split(" ")[0]
            realtime = f"  ({seconds[scene] / median:.1f}× realtime)" if "audio" in name else ""
            runs = ", ".join(f"{v:.2f}" for v in values)
            print(f"{name:<58} {median:6.2f} s{realtime}   [{runs}]")


if __name__ == "__main__":
    main()
