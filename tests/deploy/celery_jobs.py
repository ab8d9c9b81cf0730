"""A code location for the Celery fault tests: one step bound to card gpu-0 (its queue, and the card's pool slot
claimed in the step on the worker, as the project's generation steps are with ANIME_PIPELINE_EXECUTOR=celery), on
the project's own executor and IO manager.

The step records each attempt in `attempts.log` once it holds its card (pid first, then "done"), and in the card's
log beside it (`card.log`, shared by the runs of one test), then writes its output through `storage.atomic_path`
over `seconds`, so a test can kill its worker in the middle of the write.
"""

import os
import time
from pathlib import Path

import dagster as dg

from anime_pipeline.definitions import build_executor, build_resources
from anime_pipeline.resources.gpu import GpuLease
from anime_pipeline.settings import Settings
from anime_pipeline.storage import atomic_path

CHUNKS = 8
QUEUE_TAG = "dagster-celery/queue"


class RenderConfig(dg.Config):
    out: str
    seconds: float


def _attempt(out: Path, text: str) -> None:
    for path in (out / "attempts.log", out.parent / "card.log"):
        with open(path, "a") as log:
            log.write(f"{text} {out.name}\n" if path.name == "card.log" else text + "\n")


@dg.op(tags={QUEUE_TAG: "gpu-0"})
def render(context: dg.OpExecutionContext, config: RenderConfig) -> str:
    out = Path(config.out)
    with GpuLease(context.instance, context.run_id, "render", ["gpu-0"]):
        _attempt(out, f"start {os.getpid()}")  # on the card
        with atomic_path(out / "clip.bin") as tmp, open(tmp, "wb") as fh:
            for chunk in range(CHUNKS):
                fh.write(bytes([chunk]) * 1024)
                fh.flush()
                time.sleep(config.seconds / CHUNKS)
        _attempt(out, "done")  # the card's work is done; its slot is given back as the step ends
    return str(out / "clip.bin")


@dg.op(tags={QUEUE_TAG: "cpu"})
def publish(clip: str) -> None:
    Path(clip).with_suffix(".published").write_text(Path(clip).name)


settings = Settings.from_env()


@dg.job(executor_def=build_executor(settings), resource_defs={"io_manager": build_resources(settings)["io_manager"]})
def fault_job():
    publish(render())
