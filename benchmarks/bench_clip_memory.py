"""Peak memory of one shot on the previz backend: rendered, measured by every shot gate, written as
PNG frames and encoded, exactly as the shot step does it per attempt (`shot_clip.render_attempt`).

    .venv/bin/python benchmarks/bench_clip_memory.py --width 3840 --height 2160 --fps 60 --seconds 2

Prints the frame count, the wall time, the process's peak RSS (VmHWM, whole run: imports, the
renderer's stage, the metrics and the pipe to ffmpeg) and the ffmpeg children's peak RSS (their
VmHWM, read every 0.1 s while they run: the encoder's x264 buffers grow with the frame size). Run one size per process, so
that each peak is its own. The shot is the sample show's first shot type with both characters.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path

from anime_pipeline.config.loader import load_show
from anime_pipeline.manifest import Timings
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.metrics.models import ModelStore
from anime_pipeline.metrics.suite import Anchor, MetricSuite, PaletteIdentity
from anime_pipeline.production.shot_clip import render_attempt
from anime_pipeline.render.base import ClipRequest
from anime_pipeline.render.previz import PrevizRenderer

SHOW = Path(__file__).resolve().parents[1] / "project_configs" / "lantern_post.yaml"


def peak_rss_mib(pid: str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a kernel thread or a process that is exiting


class ChildPeak(threading.Thread):
    """The largest VmHWM of this process's children (ffmpeg), sampled until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.stop = 0.0, threading.Event()

    def run(self) -> None:
        me = str(os.getpid())
        while not self.stop.wait(0.1):
            for pid in filter(str.isdigit, os.listdir("/proc")):
                with contextlib.suppress(OSError, IndexError):
                    if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                        self.peak = max(self.peak, peak_rss_mib(pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--shot-type", default="medium")
    args = parser.parse_args()
    config = load_show(SHOW)
    n_frames = max(3, round(args.seconds * args.fps))
    request = ClipRequest(characters=tuple(config.characters), shot_type=args.shot_type, prompt="benchmark shot",
                          motion_prompt="", negative_prompt="", seed=11, width=args.width, height=args.height,
                          fps=args.fps, n_frames=n_frames, background=tuple(config.world.palette),
                          steps=config.show.style.steps)
    renderer = PrevizRenderer()
    # identity anchors from the shot's own first frame with both faces (the step reads them from storage)
    first = next(renderer.stream_clip(request).frames)
    anchors = {slug: Anchor(wf.palette_signature(first.image, box), signature=wf.character_signature(first.image, box))
               for slug, box in first.face_boxes.items()}
    del first
    suite = MetricSuite(ModelStore(Path("/nonexistent"), Path("/nonexistent")))  # the weight-free gates
    timings, children = Timings(), ChildPeak()
    children.start()
    with tempfile.TemporaryDirectory(prefix="clip-memory-") as folder:
        start = time.perf_counter()
        rendered = render_attempt(renderer, request, anchors, suite, PaletteIdentity(), Path(folder), timings)
        seconds = time.perf_counter() - start
        assert rendered.video.frames == n_frames
    children.stop.set()
    children.join()
    frame_mib = args.width * args.height * 3 / 2**20
    ffmpeg_mib = children.peak
    print(f"{args.width}x{args.height} {args.fps} fps {args.seconds:g} s: {n_frames} frames in {seconds:.1f} s "
          f"({n_frames / seconds:.2f} frames/s); one RGB frame {frame_mib:.1f} MiB; peak RSS {peak_rss_mib():.0f} MiB "
          f"(ffmpeg encoder {ffmpeg_mib:.0f} MiB); phases {timings.seconds}")


if __name__ == "__main__":
    main()
