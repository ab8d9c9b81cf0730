"""ComfyUI client overhead per generation against the in-process fake server.

    .venv/bin/python benchmarks/comfyui_overhead.py

overhead = run() wall time (validate, submit, WebSocket events, history, download to disk) − the fake's
render time; median of 50 runs, each with a new colour so nothing is served from the cache.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "services"))

from fake_comfyui import FakeComfyUI  # noqa: E402

from anime_pipeline.services.comfyui import ComfyUIClient  # noqa: E402

RENDER_SECONDS = 0.2
RUNS = 50


def graph(color: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "bench/img"}},
    }


def main() -> None:
    with FakeComfyUI(render_time=RENDER_SECONDS) as fake, tempfile.TemporaryDirectory() as out:
        client = ComfyUIClient(fake.url, log=lambda _: None)
        client.run(graph(1), out)  # the first run also fetches /object_info and /system_stats
        overheads = []
        for i in range(RUNS):
            start = time.perf_counter()
            client.run(graph(1000 + i), out)
            overheads.append(time.perf_counter() - start - RENDER_SECONDS)
    median = statistics.median(overheads)
    print(f"overhead per image: median {median * 1000:.1f} ms over {RUNS} runs "
          f"({median / 10 * 100:.2f} % of a 10 s render)")


if __name__ == "__main__":
    main()
