"""Metric throughput in frames per second on a 512×512 previz clip (the sample show's first shot).

    .venv/bin/python benchmarks/metrics_throughput.py --frames 120 --repeat 3 --skip-lpips

Each line is the median of `--repeat` timed runs over the whole clip: frames / seconds. The
weight-free suite is what the shot gates run without weights, together (`MetricSuite.shot_measures`
— the flow pass with the motion floor, temporal stability, flicker and frame timing, VBench motion
smoothness with the flow interpolator, identity — and the scene's tracked subject consistency;
goal: a 120-frame clip in < 5 s on two CPU cores; its line also gives the seconds); the shot gates'
line is what the shot step runs per attempt (`shot_clip.score_clip` and its GATES); LPIPS uses a
random AlexNet backbone (same cost as the real one) on the CPU, with torch's default thread count,
on motion-compensated pairs as the gate runs it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from anime_pipeline.config.loader import load_show
from anime_pipeline.config.schema import Quality
from anime_pipeline.metrics import temporal
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.metrics.models import ModelStore
from anime_pipeline.metrics.suite import Anchor, Appearance, MetricSuite, PaletteIdentity, character_identity
from anime_pipeline.render.base import ClipRequest, ClipResult
from anime_pipeline.production.shot_clip import GATES, score_clip
from anime_pipeline.render.previz import PrevizRenderer

SHOW = Path(__file__).resolve().parents[1] / "project_configs" / "lantern_post.yaml"
SIZE = 512
FPS = 24


def previz_clip(n_frames: int) -> ClipResult:
    config = load_show(SHOW)
    shot = config.episodes[0].scenes[0].shots[0]
    characters = tuple(config.character(slug) for slug in shot.characters)
    request = ClipRequest(characters=characters, shot_type=shot.type, prompt=shot.prompt,
                          motion_prompt=shot.motion_prompt, negative_prompt="", seed=1, width=SIZE, height=SIZE,
                          fps=FPS, n_frames=n_frames, background=tuple(config.world.palette), steps=1,
                          first_frame=None)
    return PrevizRenderer().render_clip(request)


def first_frame_anchors(clip: ClipResult) -> dict[str, Anchor]:
    return {slug: Anchor(wf.palette_signature(clip.frames[0], box), signature=wf.character_signature(clip.frames[0], box))
            for slug, box in clip.face_boxes[0].items()}


def weight_free_suite(clip: ClipResult, suite: MetricSuite) -> dict[str, Callable[[], object]]:
    """The gates' weight-free measures, each as it runs inside `MetricSuite.shot_measures` (and
    the scene's subject consistency), anchors taken from the clip's first frame."""
    frames, config = clip.frames, load_show(SHOW)
    anchors = first_frame_anchors(clip)
    looks = {slug: Appearance(anchor, config.character(slug).appearance.key_colors.skin,
                              config.character(slug).appearance.key_colors.eyes) for slug, anchor in anchors.items()}
    return {
        "flow pass (floor, stability, flicker, timing)": lambda: [
            measure(clip_motion) for clip_motion in [temporal.analyse(frames, FPS)]
            for measure in (temporal.motion_floor, temporal.temporal_stability, temporal.temporal_flickering,
                            temporal.frame_timing)],
        "motion_smoothness (flow)": lambda: suite.motion_smoothness(frames),
        "identity (head palette)": lambda: character_identity(frames, clip.face_boxes, anchors, PaletteIdentity()),
        "subject_consistency (tracked)": lambda: suite.tracked_subject_consistency(frames, looks, PaletteIdentity()),
    }


def median_seconds(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one run, each the median of `repeat` after a warm-up. CPU time
    (this process, all threads) is what a shared machine cannot inflate by queueing."""
    run()  # warm-up: imports, allocator, caches
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def median_fps(run: Callable[[], object], n_frames: int, repeat: int) -> float:
    return n_frames / median_seconds(run, repeat)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-lpips", action="store_true")
    args = parser.parse_args()
    clip = previz_clip(args.frames)
    frames = clip.frames
    with tempfile.TemporaryDirectory() as empty:  # no weights: every measure runs weight-free
        suite = MetricSuite(ModelStore(root=Path(empty), torch_home=Path(empty) / "torch"))
        measures = weight_free_suite(clip, suite)
        for name, run in measures.items():
            print(f"{name:46s} {median_fps(run, len(frames), args.repeat):8.1f} frames/s")
        everything = lambda: [run() for run in measures.values()]  # noqa: E731
        seconds, cpu = median_seconds(everything, args.repeat)
        anchors = first_frame_anchors(clip)
        shot_gates = lambda: GATES.evaluate(  # noqa: E731
            score_clip(frames, FPS, clip.face_boxes, anchors, suite, PaletteIdentity()), Quality())
        shot_seconds, shot_cpu = median_seconds(shot_gates, args.repeat)
    print(f"{'weight-free suite (all above)':46s} {len(frames) / seconds:8.1f} frames/s  "
          f"[{len(frames)} frames in {seconds:.2f} s; {cpu:.2f} CPU s]")
    print(f"{'shot gates as the step runs them (score_clip)':46s} {len(frames) / shot_seconds:8.1f} frames/s  "
          f"[{len(frames)} frames in {shot_seconds:.2f} s; {shot_cpu:.2f} CPU s]")
    if not args.skip_lpips:
        import torch

        from anime_pipeline.metrics import perceptual

        torch.manual_seed(0)
        model = perceptual.random_lpips()
        clip_motion = temporal.analyse(frames, FPS)
        fps = median_fps(lambda: temporal.compensated_lpips(frames, clip_motion, model), len(frames), args.repeat)
        print(f"{'temporal LPIPS (AlexNet, CPU, compensated)':46s} {fps:8.1f} frames/s  "
              f"[torch threads: {torch.get_num_threads()}]")


if __name__ == "__main__":
    main()
