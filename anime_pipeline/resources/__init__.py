"""Dagster resources: thin configurable wrappers that hand the domain code its backends.

Each resource that could use a GPU names its device; the assets that use it claim that
device's pool (see `settings.pool_for`). The show file picks the backend (`backends:`),
the resource holds where it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.media.music import AceStepMusic, FileMusic, MusicBackend, ProceduralMusic
from anime_pipeline.media.speech import EspeakSpeech, OpenAITTSSpeech, SpeechBackend
from anime_pipeline.metrics.models import DEFAULT_ANIME_DETECTOR, DEFAULT_CCIP_MODEL, DEFAULT_FACE_PACK, ModelStore
from anime_pipeline.metrics.registry import model_rows
from anime_pipeline.metrics.suite import MetricSuite, suite_for
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.director import Director, DirectorChain
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.render.base import CardTurns, KeptCard, Renderer
from anime_pipeline.render.comfyui import ComfyUIRenderer
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.resources.gpu import GpuLease, Placement
from anime_pipeline.review.base import Reviewer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.review.vision import OllamaVisionReviewer
from anime_pipeline.services.ace_step import AceStepClient
from anime_pipeline.services.comfyui import ComfyUIClient, ProgressEvent
from anime_pipeline.services.echo_brain import EchoBrainClient
from anime_pipeline.services.jellyfin import JellyfinClient
from anime_pipeline.services.ollama import OllamaClient
from anime_pipeline.services.speech import OpenAISpeechClient
from anime_pipeline.settings import CPU, parse_gpu_folders, parse_gpu_urls, pool_for, training_environment
from anime_pipeline.training.availability import LoraRequest, SharedLoraFolder, serve_loras
from anime_pipeline.training.backends import TrainerSession, base_model_for, trainer_for, training_gpu
from anime_pipeline.training.environment import TrainingEnvironment


class NotConfigured(dg.Failure):
    def __init__(self, show: str, field: str, value: str, variable: str, meaning: str = "the service's URL"):
        super().__init__(f"show {show!r} sets backends.{field}: {value}, but {variable} is not set: "
                         f"set it to {meaning}, or use the embedded default")


class ProjectResource(dg.ConfigurableResource):
    """The show files; re-read on every run so a step always sees the YAML as it is now."""

    configs_dir: str

    def load(self) -> Project:
        return Project.load(self.configs_dir)


class StorageResource(dg.ConfigurableResource):
    root: str
    library_root: str

    @property
    def paths(self) -> StoragePaths:
        return StoragePaths(Path(self.root))

    @property
    def library(self) -> Path:
        return Path(self.library_root)


class MetricsResource(dg.ConfigurableResource):
    """Where the metrics' pre-placed weights are (README, "Model weights") and the device they run on;
    each metric without its weights runs its weight-free fallback."""

    models_dir: str
    torch_home: str = ""  # empty: <models_dir>/torch
    device: str = CPU
    face_pack: str = DEFAULT_FACE_PACK
    ccip_model: str = DEFAULT_CCIP_MODEL
    anime_detector: str = DEFAULT_ANIME_DETECTOR

    @property
    def store(self) -> ModelStore:
        root = Path(self.models_dir)
        return ModelStore(root, Path(self.torch_home) if self.torch_home else root / "torch", self.device, self.face_pack,
                          self.ccip_model, self.anime_detector)

    def suite(self) -> MetricSuite:
        return suite_for(self.store)

    def active_backends(self) -> dict[str, str]:
        """Per metric, the backend the gates run with the weights installed now (files only, nothing
        loads): part of each output's fingerprint, so installing weights re-scores it."""
        return {row.metric: row.active for row in model_rows(self.store)}


class OllamaResource(dg.ConfigurableResource):
    """An Ollama server (vision review, director fallback); empty URL = not configured."""

    base_url: str = ""
    device: str = CPU
    keep_alive: str = "5m"
    timeout: float = 120.0

    def client(self) -> OllamaClient | None:
        return OllamaClient(self.base_url, timeout=self.timeout, keep_alive=self.keep_alive) if self.base_url else None


class EchoBrainResource(dg.ConfigurableResource):
    """The Echo Brain director service; empty URL = not configured."""

    base_url: str = ""
    timeout: float = 10.0

    def client(self) -> EchoBrainClient | None:
        return EchoBrainClient(self.base_url, timeout=self.timeout) if self.base_url else None


class RendererResource(dg.ConfigurableResource):
    """The previz renderer, or one ComfyUI server per GPU (`comfyui_urls`: "0=http://host:8188,1=…"),
    each with the folder it lists under models/loras where there is one (`lora_folders`:
    "0=/mnt/loras,…"; without one, LoRAs are uploaded to it)."""

    device: str = CPU
    comfyui_urls: str = ""
    lora_folders: str = ""
    timeout: float = 1800.0
    reconnect_window: float = 120.0  # how long a restarting ComfyUI may be unreachable before a render fails

    @property
    def servers(self) -> dict[str, str]:
        return dict(parse_gpu_urls(self.comfyui_urls))

    def shared_folder(self, gpu: str) -> SharedLoraFolder | None:
        folder = dict(parse_gpu_folders(self.lora_folders)).get(gpu)
        return SharedLoraFolder(folder) if folder is not None else None

    @contextmanager
    def session(self, context: dg.AssetExecutionContext, config: ShowConfig,
                references: Mapping[str, Path] | None = None, loras: Sequence[LoraRequest] = (),
                on: Placement = Placement()) -> Iterator[Renderer]:
        """The show's renderer for one step; a ComfyUI renderer holds its GPU's pool slot while the server renders
        and lends it out between renders, while the step scores (see `Placement`); the LoRAs asked for are made
        available on that GPU's server (checked listed) before it renders."""
        if config.backends.renderer == "previz":
            if loras:
                raise ValueError(f"show {config.show.slug!r}: the previz renderer cannot load LoRA files "
                                 f"({', '.join(f'{r.character}: {r.name}' for r in loras)}); set backends.renderer: "
                                 "comfyui, or materialize character_lora again with trainer: previz")
            yield PrevizRenderer()
            return
        servers = self.servers
        if not servers:
            raise NotConfigured(config.show.slug, "renderer", "comfyui", "ANIME_PIPELINE_COMFYUI_URLS")
        with _server_gpu(context, servers, on) as (gpu, card):
            client = ComfyUIClient(servers[gpu], log=context.log.info, progress=_progress_logger(context),
                                   reconnect_window=self.reconnect_window)
            with client:
                served = serve_loras(client, gpu, loras, self.shared_folder(gpu))
                yield ComfyUIRenderer(client, config.backends.comfyui_workflows or None, device=gpu,
                                      style=config.show.style, loras=served, references=dict(references or {}),
                                      overrides=config.backends.comfyui_overrides, timeout=self.timeout, card=card)


class TrainerResource(dg.ConfigurableResource):
    """Where character LoRAs train (`backends.trainer`): on the ComfyUI server of `trainer_gpu` (empty:
    the first of `comfyui_urls`), or with the kohya checkout `kohya_dir` on CUDA index `kohya_gpu`;
    `base_models` is the local folder of the shows' checkpoints. A training holds its GPU's pool slot.
    The values are the ANIME_PIPELINE_* variables' (`settings.training_environment` reads them)."""

    comfyui_urls: str = ""
    trainer_gpu: str = ""
    base_models: str = ""
    kohya_dir: str = ""
    kohya_python: str = ""
    kohya_launcher: str = ""
    kohya_gpu: str = ""
    kohya_timeout_s: str = ""

    def environment(self) -> TrainingEnvironment:
        return training_environment({
            "ANIME_PIPELINE_TRAINER_GPU": self.trainer_gpu, "ANIME_PIPELINE_BASE_MODELS": self.base_models,
            "ANIME_PIPELINE_KOHYA_DIR": self.kohya_dir, "ANIME_PIPELINE_KOHYA_PYTHON": self.kohya_python,
            "ANIME_PIPELINE_KOHYA_LAUNCHER": self.kohya_launcher, "ANIME_PIPELINE_KOHYA_GPU": self.kohya_gpu,
            "ANIME_PIPELINE_KOHYA_TIMEOUT": self.kohya_timeout_s})

    @contextmanager
    def session(self, context: dg.AssetExecutionContext, config: ShowConfig,
                on: Placement = Placement()) -> Iterator[TrainerSession]:
        """The show's trainer and base model, holding the trainer's GPU pool slot while the block runs."""
        backend, env, servers = config.backends.trainer, self.environment(), parse_gpu_urls(self.comfyui_urls)
        gpu = training_gpu(backend, env, servers)
        base = base_model_for(config.show.style.checkpoint, env)
        trainer = trainer_for(backend, env, servers, log=context.log.info)
        with _server_gpu(context, {gpu: ""}, on):
            yield TrainerSession(backend, trainer, base, gpu)


def _progress_logger(context: dg.AssetExecutionContext) -> Callable[[ProgressEvent], None]:
    def report(event: ProgressEvent) -> None:
        if event.value == event.max or event.value % 5 == 0:  # a line every 5 sampler steps
            context.log.info(f"ComfyUI node {event.node}: {event.value}/{event.max} ({event.percent:.0f} %)")
    return report


class ReviewerResource(dg.ConfigurableResource):
    ollama: OllamaResource

    def for_show(self, config: ShowConfig) -> Reviewer:
        backends = config.backends
        if backends.reviewer == "heuristic":
            return HeuristicReviewer()
        client = self.ollama.client()
        if client is None:
            raise NotConfigured(config.show.slug, "reviewer", "ollama", "ANIME_PIPELINE_OLLAMA_URL")
        client.ensure_model(backends.reviewer_model)
        return OllamaVisionReviewer(client, backends.reviewer_model, device=self.ollama.device)


class DirectorResource(dg.ConfigurableResource):
    ollama: OllamaResource
    echo_brain: EchoBrainResource

    def for_show(self, config: ShowConfig) -> Director:
        """The show's director, for prompt refinement and scene planning alike."""
        backends = config.backends
        if backends.director == "local":
            return LocalPlanner()
        echo = self.echo_brain.client() if backends.director == "echo_brain" else None
        ollama = self.ollama.client()
        if backends.director == "echo_brain" and echo is None:
            raise NotConfigured(config.show.slug, "director", "echo_brain", "ANIME_PIPELINE_ECHO_BRAIN_URL")
        if backends.director == "ollama" and ollama is None:
            raise NotConfigured(config.show.slug, "director", "ollama", "ANIME_PIPELINE_OLLAMA_URL")
        return DirectorChain(echo, ollama, backends.director_model)


@contextmanager
def _server_gpu(context: dg.AssetExecutionContext, servers: Mapping[str, str], on: Placement
                ) -> Iterator[tuple[str, CardTurns]]:
    """One of `servers`' GPUs with its pool claimed for the block: the step's bound card where it has a server
    there, else whichever is free first; and the card's turns, for a renderer that lends it out between renders.
    A pool the step already holds (its static pool) is used without a second claim, which would wait for itself,
    and is held throughout, as is a card the step's metrics also score on."""
    held = next((gpu for gpu in servers if pool_for(gpu) == on.held_pool), None)
    if held is not None:
        yield held, KeptCard()
        return
    candidates = [gpu for gpu in servers if pool_for(gpu) == on.card] or list(servers)
    step = context.asset_key.to_user_string()
    lease = GpuLease(context.instance, context.run.run_id, step, [pool_for(gpu) for gpu in candidates],
                     log=context.log.info)
    with lease as pool:
        yield next(gpu for gpu in candidates if pool_for(gpu) == pool), KeptCard() if on.scores_on_gpu else lease


class SpeechResource(dg.ConfigurableResource):
    """Dialogue speech: espeak-ng (embedded), or OpenAI-compatible speech servers, one per GPU
    (`urls`: "0=http://tts:8880,1=…"); `api_key` is sent as a Bearer token."""

    urls: str = ""
    api_key: str = ""
    timeout: float = 120.0

    @contextmanager
    def session(self, context: dg.AssetExecutionContext, config: ShowConfig,
                on: Placement = Placement()) -> Iterator[SpeechBackend]:
        """The show's speech for one step; a speech server holds its GPU's pool slot meanwhile."""
        if config.backends.speech == "espeak":
            yield EspeakSpeech()
            return
        servers = dict(parse_gpu_urls(self.urls, "ANIME_PIPELINE_SPEECH_URLS"))
        if not servers:
            raise NotConfigured(config.show.slug, "speech", "openai_tts", "ANIME_PIPELINE_SPEECH_URLS")
        with _server_gpu(context, servers, on) as (gpu, _card):
            client = OpenAISpeechClient(servers[gpu], config.backends.speech_model, self.api_key or None,
                                        timeout=self.timeout)
            yield OpenAITTSSpeech(client, gpu)


class MusicResource(dg.ConfigurableResource):
    """Music beds: procedural (embedded), ACE-Step 1.5 API servers, one per GPU (`acestep_urls`),
    or track files from the project's music folder."""

    acestep_urls: str = ""
    api_key: str = ""
    total_timeout: float = 1800.0

    @contextmanager
    def session(self, context: dg.AssetExecutionContext, config: ShowConfig, music_dir: Path,
                on: Placement = Placement()) -> Iterator[MusicBackend]:
        if config.backends.music == "procedural":
            yield ProceduralMusic()
            return
        if config.backends.music == "file":
            yield FileMusic(music_dir)
            return
        servers = dict(parse_gpu_urls(self.acestep_urls, "ANIME_PIPELINE_ACESTEP_URLS"))
        if not servers:
            raise NotConfigured(config.show.slug, "music", "ace_step", "ANIME_PIPELINE_ACESTEP_URLS")
        with _server_gpu(context, servers, on) as (gpu, _card):
            client = AceStepClient(servers[gpu], self.api_key or None, total_timeout=self.total_timeout)
            yield AceStepMusic(client, gpu)


class JellyfinResource(dg.ConfigurableResource):
    """The Jellyfin server for `publisher: jellyfin`; empty URL or key = not configured."""

    url: str = ""
    api_key: str = ""
    timeout: float = 30.0

    def client(self, config: ShowConfig) -> JellyfinClient:
        if not self.url:
            raise NotConfigured(config.show.slug, "publisher", "jellyfin", "JELLYFIN_URL")
        if not self.api_key:
            raise NotConfigured(config.show.slug, "publisher", "jellyfin", "JELLYFIN_API_KEY",
                                "an API key from the server's Dashboard → API Keys")
        return JellyfinClient(self.url, self.api_key, timeout=self.timeout)
