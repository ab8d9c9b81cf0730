"""Choosing and setting up a trainer from `backends.trainer` and the environment.

    env = settings.training_environment(os.environ)     # Settings.training
    trainer = trainer_for("kohya", env, settings.comfyui_urls, log=context.log.info)
    base = base_model_for(show.style.checkpoint, env)
    progress = progress_logger(context.log.info)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.config.schema import TrainerBackend
from anime_pipeline.training.base import ProgressSink, Trainer, TrainingProgress
from anime_pipeline.training.comfyui_trainer import ComfyUITrainer
from anime_pipeline.training.environment import KohyaInstall, TrainingEnvironment
from anime_pipeline.training.errors import TrainerConfigError
from anime_pipeline.training.kohya import KohyaTrainer
from anime_pipeline.training.lora_keys import BaseModel


@dataclass(frozen=True)
class TrainerSession:
    """A trainer ready to run on its GPU (whose pool the session holds), with the base model it
    trains for. `gpu` is the GPU id as the deployment names it (ComfyUI: the server's id in
    ANIME_PIPELINE_COMFYUI_URLS; kohya: the CUDA index, or "cpu")."""

    backend: TrainerBackend
    trainer: Trainer
    base: BaseModel
    gpu: str


def trainer_for(backend: TrainerBackend, env: TrainingEnvironment, comfyui_urls: Sequence[tuple[str, str]],
                log: Callable[[str], None] | None = None) -> Trainer:
    """The trainer for `comfyui` (the ComfyUI server of ANIME_PIPELINE_TRAINER_GPU, else the first)
    or `kohya` (ANIME_PIPELINE_KOHYA_*). `previz` is no LoRA trainer: production/character_lora.py fits it."""
    if backend == "kohya":
        return KohyaTrainer(_kohya(env), log=log)
    if backend == "comfyui":
        gpu, url = _comfyui_server(env, comfyui_urls)
        return ComfyUITrainer(url, gpu=gpu, log=log)
    raise TrainerConfigError(f"backends.trainer: {backend!r} is not a LoRA trainer (comfyui or kohya)")


def training_gpu(backend: TrainerBackend, env: TrainingEnvironment, comfyui_urls: Sequence[tuple[str, str]]) -> str:
    """The GPU id the backend's trainer runs on (its Dagster pool is `settings.pool_for` of it)."""
    if backend == "kohya":
        return _kohya(env).gpu
    if backend == "comfyui":
        return _comfyui_server(env, comfyui_urls)[0]
    raise TrainerConfigError(f"backends.trainer: {backend!r} is not a LoRA trainer (comfyui or kohya)")


def _kohya(env: TrainingEnvironment) -> KohyaInstall:
    if env.kohya is None:
        raise TrainerConfigError("backends.trainer: kohya needs ANIME_PIPELINE_KOHYA_DIR (an sd-scripts checkout) "
                                 "and its Python in ANIME_PIPELINE_KOHYA_PYTHON")
    return env.kohya


def _comfyui_server(env: TrainingEnvironment, comfyui_urls: Sequence[tuple[str, str]]) -> tuple[str, str]:
    servers = dict(comfyui_urls)
    if not servers:
        raise TrainerConfigError("backends.trainer: comfyui trains on a ComfyUI server; set "
                                 "ANIME_PIPELINE_COMFYUI_URLS (e.g. 0=http://127.0.0.1:8188)")
    gpu = env.trainer_gpu or next(iter(servers))
    if gpu not in servers:
        raise TrainerConfigError(f"ANIME_PIPELINE_TRAINER_GPU={gpu!r} names no server in ANIME_PIPELINE_COMFYUI_URLS "
                                 f"(GPU ids there: {', '.join(servers)})")
    return gpu, servers[gpu]


def base_model_for(checkpoint: str, env: TrainingEnvironment) -> BaseModel:
    """The show's checkpoint as the trainers and the key check need it: the local copy in
    ANIME_PIPELINE_BASE_MODELS (same file name as on the servers), or `<name>.modules.txt` there
    (its module names, when the checkpoint itself stays on the GPU machine)."""
    if env.base_models is None:
        raise TrainerConfigError(f"training needs the base checkpoint {checkpoint!r} (or its module list) locally: "
                                 "set ANIME_PIPELINE_BASE_MODELS to the folder holding it")
    path = env.base_models / checkpoint
    if path.is_file():
        return BaseModel.from_checkpoint(path, name=checkpoint)
    listing = env.base_models / f"{Path(checkpoint).stem}.modules.txt"
    if listing.is_file():
        return BaseModel.from_module_list(checkpoint, listing)
    raise TrainerConfigError(f"neither {path} nor {listing} exists: put the checkpoint the show uses "
                             "(style.checkpoint) or its module list there")


def progress_logger(log: Callable[[str], None], every_percent: float = 5.0) -> ProgressSink:
    """A progress sink writing one line per `every_percent` of the run (and each epoch's start)."""
    last = {"epoch": 0, "percent": -every_percent}

    def sink(event: TrainingProgress) -> None:
        percent = event.percent
        if event.epoch == last["epoch"] and percent is not None and percent - last["percent"] < every_percent:
            return
        last["epoch"], last["percent"] = event.epoch, percent if percent is not None else last["percent"]
        total = f"/{event.total_steps}" if event.total_steps else ""
        share = f" ({percent:.0f}%)" if percent is not None else ""
        loss = f", loss {event.loss:.4g}" if event.loss is not None else ""
        log(f"training: epoch {event.epoch}/{event.epochs}, step {event.step}{total}{share}{loss}")

    return sink
