"""Makespan of 20 shots on two simulated GPUs against the ideal (20 × render time / 2).

    .venv/bin/python benchmarks/gpu_makespan.py [--shots 20] [--render 0.5]

Two fake ComfyUI servers (tests/services/fake_comfyui.py), one per "card", each in its own process
and taking a fixed render time per prompt.
Every shot is a worker that leases a GPU pool slot (gpu-0 / gpu-1, limit 1, on a SQLite Dagster
instance) exactly as the renderer resource does, then renders on that card's server.
"""

from __future__ import annotations

import argparse
import multiprocessing
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


def serve(render: float, urls, stop) -> None:
    """A fake server in its own process, as a real ComfyUI is: its timing is not disturbed by our threads."""
    with FakeComfyUI(render_time=render) as fake:
        urls.put(fake.url)
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--render", type=float, default=0.5)
    args = parser.parse_args()
    context = multiprocessing.get_context("fork")
    urls, stop = context.Queue(), context.Event()
    servers_processes = [context.Process(target=serve, args=(args.render, urls, stop)) for _ in range(2)]
    for process in servers_processes:
        process.start()
    with tempfile.TemporaryDirectory() as tmp, \
            dg.instance_for_test(temp_dir=tmp, overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        servers = {"gpu-0": urls.get(timeout=30), "gpu-1": urls.get(timeout=30)}

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
    stop.set()
    for process in servers_processes:
        process.join(timeout=10)
    ideal = args.shots * args.render / 2
    print(f"{args.shots} shots × {args.render} s on 2 GPUs: makespan {makespan:.2f} s, ideal {ideal:.2f} s, "
          f"ratio {makespan / ideal:.3f}")


if __name__ == "__main__":
    main()
