"""Makespan of 20 shots on two simulated GPUs against the ideal (20 × render time / 2).

    .venv/bin/python benchmarks/gpu_makespan.py [--shots 20] [--render 0.5]

Two in-process fake ComfyUI servers, one per "card", each taking a fixed render time per prompt.
Every shot is a worker that leases a GPU pool slot (gpu-0 / gpu-1, limit 1, on a SQLite Dagster
instance) exactly as the renderer resource does, then renders on that card's server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "services"))

from fake_comfyui import FakeComfyUI  # noqa: E402

from anime_pipeline.resources.gpu import GpuLease  # noqa: E402
from anime_pipeline.services.comfyui import ComfyUIClient  # noqa: E402


def graph(color: int) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench/shot"}}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--render", type=float, default=0.5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            dg.instance_for_test(temp_dir=tmp, overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance, \
            FakeComfyUI(render_time=args.render) as gpu0, FakeComfyUI(render_time=args.render) as gpu1:
        servers = {"gpu-0": gpu0.url, "gpu-1": gpu1.url}

        def shot(index: int) -> None:
            with GpuLease(instance, f"run-{index}", "shot_clip", list(servers), poll_seconds=0.05) as pool:
                with ComfyUIClient(servers[pool], log=lambda _: None) as client:
                    client.run(graph(index + 1), Path(tmp) / f"shot-{index}")

        start = time.perf_counter()
        workers = [threading.Thread(target=shot, args=(i,)) for i in range(args.shots)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        makespan = time.perf_counter() - start
    ideal = args.shots * args.render / 2
    print(f"{args.shots} shots × {args.render} s on 2 GPUs: makespan {makespan:.2f} s, ideal {ideal:.2f} s, "
          f"ratio {makespan / ideal:.3f}")


if __name__ == "__main__":
    main()
