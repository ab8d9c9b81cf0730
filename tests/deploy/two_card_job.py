"""A code location for the multiprocess engine's test: one run of two card steps (as a UI backfill of two shots
makes) on the project's executor (ANIME_PIPELINE_EXECUTOR). Each step leases whichever card is free, as the
project's generation steps do, holds it until the other card is claimed too (60 s at most), writes what it saw
to `<folder>/shot_<i>.json` and keeps the card until the other step has written too: steps run one after another
never see the other card busy. (`_within` answers rather than fails: it runs in the step's process.)"""

import json
import time
from pathlib import Path

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.definitions import build_executor
from anime_pipeline.resources.gpu import GpuLease
from anime_pipeline.settings import Settings

CARDS = ["gpu-0", "gpu-1"]


class ShotConfig(dg.Config):
    folder: str


def shot(index: int) -> dg.OpDefinition:
    @dg.op(name=f"shot_{index}")
    def _shot(context: dg.OpExecutionContext, config: ShotConfig) -> None:
        folder = Path(config.folder)
        with GpuLease(context.instance, context.run_id, f"shot_{index}", CARDS) as card:
            other = next(c for c in CARDS if c != card)
            busy = _within(60, lambda: dagster_compat.claimed_slots(context.instance, other) > 0)
            (folder / f"shot_{index}.json").write_text(json.dumps({"card": card, "saw_the_other_card_busy": busy}))
            _within(60, (folder / f"shot_{1 - index}.json").exists)

    return _shot


def _within(seconds: float, condition) -> bool:
    until = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


@dg.job(executor_def=build_executor(Settings.from_env()))
def two_shots():
    shot(0)()
    shot(1)()
