"""The code location of benchmarks/daemon_makespan.py: BENCH_SHOTS shot assets, one job each, rendering on the
ComfyUI servers of ANIME_PIPELINE_COMFYUI_URLS with the project's executor (ANIME_PIPELINE_EXECUTOR), pools and
IO manager — as shot_clip does: in process, a shot leases whichever card is free; with Celery, it is bound to a
card round robin (its queue) and claims that card's pool slot on the worker."""

import os
import time

import dagster as dg

from anime_pipeline.definitions import build_executor, build_resources
from anime_pipeline.resources.gpu import GpuLease
from anime_pipeline.services.comfyui import ComfyUIClient
from anime_pipeline.settings import Settings, pool_for

settings = Settings.from_env()
SERVERS = dict(settings.comfyui_urls)
OUT = settings.storage_root / "bench"


def graph(index: int) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                         "color": index + 1}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"bench/{index}"}}}


def shot(index: int) -> dg.AssetsDefinition:
    card = settings.card_pool(index) if settings.executor == "celery" else None

    @dg.asset(name=f"shot_{index:03d}", op_tags={"dagster-celery/queue": card} if card else {})
    def _shot(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        pools = [card] if card else [pool_for(gpu) for gpu in SERVERS]
        stamps = {"asked": time.time()}
        with GpuLease(context.instance, context.run.run_id, context.asset_key.to_user_string(), pools) as held:
            stamps["claimed"] = time.time()
            gpu = next(g for g in SERVERS if pool_for(g) == held)
            stamps |= _render(gpu, index)
        stamps["released"] = time.time()
        return dg.MaterializeResult(metadata={"gpu": gpu, **stamps})

    return _shot


def _render(gpu: str, index: int) -> dict[str, float]:
    """The render's own moments (epoch seconds): the benchmark splits each card's idle time by them."""
    with ComfyUIClient(SERVERS[gpu]) as client:
        result = client.run(graph(index), OUT / f"shot_{index:03d}")
    return {"downloaded": time.time(), "download_s": result.timings.download_s}


def warm(card: str) -> dg.OpDefinition:
    """A warm-up step on `card`'s queue (with Celery): the worker's first task imports what every task needs."""
    @dg.op(name=f"warm_{card.replace('-', '_')}", tags={"dagster-celery/queue": card})
    def _warm() -> None:
        pass

    return _warm


WARM = [warm(pool_for(gpu)) for gpu in SERVERS]


@dg.job(executor_def=build_executor(settings))
def warm_up():
    """One run before the measured span: the daemon's launcher starts its fork server, each card's worker its
    first task."""
    for step in WARM:
        step()


SHOTS = [shot(i) for i in range(int(os.environ.get("BENCH_SHOTS", "20")))]
defs = dg.Definitions(assets=SHOTS, jobs=[warm_up, dg.define_asset_job("render_all", selection=[a.key for a in SHOTS]),
                                          *[dg.define_asset_job(f"render_{a.key.path[-1]}", selection=[a.key])
                                            for a in SHOTS]],
                      resources={"io_manager": build_resources(settings)["io_manager"]},
                      executor=build_executor(settings))
