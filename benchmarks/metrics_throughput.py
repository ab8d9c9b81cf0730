"""Metric throughput in frames per second on a 512×512 previz clip (the sample show's first shot).

    .venv/bin/python benchmarks/metrics_throughput.py --frames 120 --repeat 3 --skip-lpips

Each line is the median of `--repeat` timed runs over the whole clip: frames / seconds. The
weight-free suite is every weight-free clip metric together (goal: a 120-frame clip in < 5 s on
two CPU cores; its line also gives the seconds); LPIPS uses a random AlexNet backbone
(same cost as the real one) on the CPU, with torch's default thread count.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from anime_pipeline.config.loader import load_show
from anime_pipeline.metrics import flow, vbench
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.render.base import ClipRequest
from anime_pipeline.render.previz import PrevizRenderer

SHOW = Path(__file__).resolve().parents[1] / "project_configs" / "lantern_post.yaml"
SIZE = 512
FPS = 24


def previz_clip(n_frames: int) -> list[np.ndarray]:
    config = load_show(SHOW)
    shot = config.episodes[0].scenes[0].shots[0]
    characters = tuple(config.character(slug) for slug in shot.characters)
    request = ClipRequest(characters=characters, shot_type=shot.type, prompt=shot.prompt,
                          motion_prompt=shot.motion_prompt, negative_prompt="", seed=1, width=SIZE, height=SIZE,
                          fps=FPS, n_frames=n_frames, background=tuple(config.world.palette), steps=1,
                          first_frame=None)
    return PrevizRenderer().render_clip(request).frames


def weight_free_suite(frames: list[np.ndarray]) -> dict[str, Callable[[], object]]:
    boxes = [(0, 0, SIZE, SIZE)] * len(frames)
    anchor = wf.anchor([wf.palette_signature(frames[0])])
    return {
        "temporal_flickering": lambda: wf.temporal_flickering(frames),
        "motion_smoothness (blend)": lambda: wf.motion_smoothness(frames),
        "motion_smoothness (flow)": lambda: wf.motion_smoothness(frames, wf.BLOCK_FLOW),
        "dynamic_degree (pixels)": lambda: wf.dynamic_degree(frames),
        "flow_dynamic_degree": lambda: flow.flow_dynamic_degree(frames, FPS),
        "temporal_change (1-SSIM)": lambda: wf.temporal_change(frames),
        "subject_consistency (palette)": lambda: vbench.weightfree_subject_consistency(frames),
        "identity (palette)": lambda: wf.identity_score(frames, boxes, anchor),
    }


def median_fps(run: Callable[[], object], n_frames: int, repeat: int) -> float:
    run()  # warm-up: imports, allocator, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return n_frames / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-lpips", action="store_true")
    args = parser.parse_args()
    frames = previz_clip(args.frames)
    suite = weight_free_suite(frames)
    for name, run in suite.items():
        print(f"{name:32s} {median_fps(run, len(frames), args.repeat):8.1f} frames/s")
    everything = lambda: [run() for run in suite.values()]  # noqa: E731
    fps = median_fps(everything, len(frames), args.repeat)
    seconds = len(frames) / fps
    print(f"{'weight-free suite (all above)':32s} {fps:8.1f} frames/s  [{len(frames)} frames in {seconds:.2f} s]")
    if not args.skip_lpips:
        import torch

        from anime_pipeline.metrics import perceptual

        torch.manual_seed(0)
        model = perceptual.random_lpips()
        fps = median_fps(lambda: perceptual.temporal_lpips(frames, model), len(frames), args.repeat)
        print(f"{'temporal LPIPS (AlexNet, CPU)':32s} {fps:8.1f} frames/s  [torch threads: {torch.get_num_threads()}]")


if __name__ == "__main__":
    main()
