"""A code location for the Celery fault tests: one step bound to card gpu-0 (pool and queue, as the project's
generation steps are with ANIME_PIPELINE_EXECUTOR=celery), on the project's own executor and IO manager.

The step records each attempt in `attempts.log` (pid first, then "done"), then writes its output through
`storage.atomic_path` over `seconds`, so a test can kill its worker in the middle of the write.
"""

import os
import time
from pathlib import Path

import dagster as dg

from anime_pipeline.definitions import build_executor, build_resources
from anime_pipeline.settings import Settings
from anime_pipeline.storage import atomic_path

CHUNKS = 8
QUEUE_TAG = "dagster-celery/queue"


class RenderConfig(dg.Config):
    out: str
    seconds: float


def _attempt(out: Path, text: str) -> None:
    with open(out / "attempts.log", "a") as log:
        log.write(text + "\n")


@dg.op(pool="gpu-0", tags={QUEUE_TAG: "gpu-0"})
def render(config: RenderConfig) -> str:
    out = Path(config.out)
    _attempt(out, f"start {os.getpid()}")
    with atomic_path(out / "clip.bin") as tmp, open(tmp, "wb") as fh:
        for chunk in range(CHUNKS):
            fh.write(bytes([chunk]) * 1024)
            fh.flush()
            time.sleep(config.seconds / CHUNKS)
    _attempt(out, "done")
    return str(out / "clip.bin")


@dg.op(tags={QUEUE_TAG: "cpu"})
def publish(clip: str) -> None:
    Path(clip).with_suffix(".published").write_text(Path(clip).name)


settings = Settings.from_env()


@dg.job(executor_def=build_executor(settings), resource_defs={"io_manager": build_resources(settings)["io_manager"]})
def fault_job():
    publish(render())
