"""Environment helpers in one place: where configs, artifacts and the Dagster home live, which GPU is whose.

Every setting has an embedded default so that the demo runs with nothing configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anime_pipeline.metrics.models import ModelStore, cuda_index
from anime_pipeline.services import redact_text
from anime_pipeline.training.environment import KohyaInstall, TrainingEnvironment
from anime_pipeline.training.errors import TrainerConfigError

CPU = "cpu"
EXECUTORS = ("in_process", "multiprocess", "celery")
# Celery's broker and result backend URLs may carry credentials: the executor reads them through dg.EnvVar.
CELERY_BROKER_VARIABLE, CELERY_BACKEND_VARIABLE = "ANIME_PIPELINE_CELERY_BROKER", "ANIME_PIPELINE_CELERY_BACKEND"
DEFAULT_CELERY_BROKER = "pyamqp://guest@127.0.0.1:5672//"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


# Settings field → the environment variable it comes from, for the service URLs (which may carry credentials)
# and the services' API keys.
SERVICE_VARIABLES = {"ollama_url": "ANIME_PIPELINE_OLLAMA_URL", "echo_brain_url": "ANIME_PIPELINE_ECHO_BRAIN_URL",
                     "comfyui_urls": "ANIME_PIPELINE_COMFYUI_URLS", "speech_urls": "ANIME_PIPELINE_SPEECH_URLS",
                     "speech_api_key": "ANIME_PIPELINE_SPEECH_API_KEY", "acestep_urls": "ANIME_PIPELINE_ACESTEP_URLS",
                     "acestep_api_key": "ACESTEP_API_KEY", "jellyfin_url": "JELLYFIN_URL",
                     "jellyfin_api_key": "JELLYFIN_API_KEY"}


def pool_for(device: str) -> str:
    """The Dagster pool of a device: one pool per GPU (limit 1 in dagster.yaml), one for CPU previz work."""
    return "cpu" if device == CPU else f"gpu-{device}"


def default_io_dir(storage_root: Path) -> Path:
    """Dagster's step outputs beside the artifact storage root (on the same shared disk), never inside it."""
    return storage_root.parent / ".dagster" / "io"


@dataclass(frozen=True)
class Settings:
    configs_dir: Path
    storage_root: Path
    library_root: Path
    renderer_gpu: str
    reviewer_gpu: str
    ollama_url: str = ""
    echo_brain_url: str = ""
    comfyui_urls: tuple[tuple[str, str], ...] = ()  # (gpu id, URL): one ComfyUI server per card
    # (gpu id, URL) per server; the URLs may carry credentials and the keys are secrets: none is in repr()
    speech_urls: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # OpenAI-compatible speech servers
    speech_api_key: str = field(default="", repr=False)
    acestep_urls: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # ACE-Step 1.5 API servers
    acestep_api_key: str = field(default="", repr=False)
    jellyfin_url: str = field(default="", repr=False)
    jellyfin_api_key: str = field(default="", repr=False)
    models: ModelStore = field(default_factory=lambda: ModelStore.from_env({}))  # metric weights and their device
    studio_url: str = ""  # where Dagster metadata links to the studio pages (empty: the studio's default)
    training: TrainingEnvironment = TrainingEnvironment()  # where LoRAs train (README, "Training character LoRAs")
    # service settings that came from these environment variables: resources read them through
    # dg.EnvVar, so URLs with credentials never appear in the resource config Dagster shows
    from_environment: frozenset[str] = frozenset()
    # how steps execute: "in_process" (the embedded default: a run's steps one after another in its process),
    # "multiprocess" (a run's steps in processes of their own on this machine, one per card at once: a run of
    # many shots keeps every card busy) or "celery" (on the cards' workers; README, "Deployment")
    executor: str = "in_process"
    # how long a restarting ComfyUI may be unreachable before a render fails: a real server with its
    # custom nodes and checkpoint takes minutes to come back, not the half minute of a bare start
    comfyui_reconnect_window: float = 120.0
    # Dagster's own step outputs (shared storage with Celery); default: <storage's parent>/.dagster/io, beside
    # the artifact storage root and never inside it
    dagster_io_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.dagster_io_dir is not None and self.dagster_io_dir.is_relative_to(self.storage_root):
            raise ValueError(f"ANIME_PIPELINE_DAGSTER_IO: {str(self.dagster_io_dir)!r} is inside the artifact storage "
                             f"root {str(self.storage_root)!r}; Dagster's files stay apart from the artifacts")
        if self.executor not in EXECUTORS:
            raise ValueError(f"ANIME_PIPELINE_EXECUTOR: {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.executor == "celery":
            missing = [name for name in (CELERY_BROKER_VARIABLE, CELERY_BACKEND_VARIABLE) if not _env(name, "")]
            if missing:  # the workers read the same variables (celery.yaml): both sides must name one broker
                raise ValueError(f"ANIME_PIPELINE_EXECUTOR=celery needs {' and '.join(missing)} (e.g. "
                                 f"{DEFAULT_CELERY_BROKER} and redis://127.0.0.1:6379/0)")

    @classmethod
    def from_env(cls) -> Settings:
        storage = Path(_env("ANIME_PIPELINE_STORAGE", "storage")).absolute()
        return cls(
            from_environment=frozenset(name for name in SERVICE_VARIABLES.values() if _env(name, "")),
            studio_url=_env("ANIME_PIPELINE_STUDIO_URL", ""),
            configs_dir=Path(_env("ANIME_PIPELINE_CONFIGS", "project_configs")).absolute(),
            storage_root=storage,
            library_root=Path(_env("ANIME_PIPELINE_LIBRARY", str(storage / "library"))).absolute(),
            renderer_gpu=_env("ANIME_PIPELINE_RENDERER_GPU", CPU),
            reviewer_gpu=_env("ANIME_PIPELINE_REVIEWER_GPU", CPU),
            ollama_url=_env("ANIME_PIPELINE_OLLAMA_URL", ""),
            echo_brain_url=_env("ANIME_PIPELINE_ECHO_BRAIN_URL", ""),
            comfyui_urls=parse_gpu_urls(_env("ANIME_PIPELINE_COMFYUI_URLS", "")),
            speech_urls=parse_gpu_urls(_env("ANIME_PIPELINE_SPEECH_URLS", ""), "ANIME_PIPELINE_SPEECH_URLS"),
            speech_api_key=_env("ANIME_PIPELINE_SPEECH_API_KEY", ""),
            acestep_urls=parse_gpu_urls(_env("ANIME_PIPELINE_ACESTEP_URLS", ""), "ANIME_PIPELINE_ACESTEP_URLS"),
            acestep_api_key=_env("ACESTEP_API_KEY", ""),
            jellyfin_url=_env("JELLYFIN_URL", ""),
            jellyfin_api_key=_env("JELLYFIN_API_KEY", ""),
            models=ModelStore.from_env(os.environ),
            training=training_environment(os.environ),
            executor=_env("ANIME_PIPELINE_EXECUTOR", "in_process"),
            comfyui_reconnect_window=_seconds("ANIME_PIPELINE_COMFYUI_RECONNECT_WINDOW",
                                              _env("ANIME_PIPELINE_COMFYUI_RECONNECT_WINDOW", ""), 120.0),
            dagster_io_dir=Path(_env("ANIME_PIPELINE_DAGSTER_IO", str(default_io_dir(storage)))).absolute(),
        )

    def environment_variable(self, field_name: str) -> str | None:
        """The environment variable a service setting came from, if it did (resources then read it
        through dg.EnvVar, so a URL with credentials never shows in the resource config)."""
        variable = SERVICE_VARIABLES[field_name]
        return variable if variable in self.from_environment else None

    @property
    def io_dir(self) -> Path:
        """Where Dagster's IO manager keeps step outputs: apart from every show's artifact folders."""
        return self.dagster_io_dir or default_io_dir(self.storage_root)

    @property
    def renderer_pool(self) -> str | None:
        """Generation steps' static pool; with ComfyUI servers configured, each step leases a GPU pool itself."""
        return None if self.comfyui_urls else pool_for(self.renderer_gpu)

    def card_pool(self, index: int) -> str:
        """With Celery, the `index`-th generation step's card, round robin over the ComfyUI servers: a step
        is sent to its card's queue, whose worker on that card's box runs one step at a time."""
        if not self.comfyui_urls:
            return pool_for(self.renderer_gpu)
        return pool_for(self.comfyui_urls[index % len(self.comfyui_urls)][0])

    @property
    def step_processes(self) -> int:
        """With the multiprocess engine, a run's steps at once: one per card, and one more that is ready to render
        when a card is given back (or runs a step that needs no card)."""
        return max(len(self.comfyui_urls), 1) + 1

    @property
    def trainer_pool(self) -> str:
        """With Celery, the card that trains LoRAs (ANIME_PIPELINE_TRAINER_GPU, else the first server's)."""
        gpu = self.training.trainer_gpu or (self.comfyui_urls[0][0] if self.comfyui_urls else self.renderer_gpu)
        return pool_for(gpu)

    @property
    def metrics_pool(self) -> str | None:
        """The pool of the metrics' GPU for steps that run model-based metrics on their own (scenes);
        None on the CPU. Steps that also render score on the renderer's pool."""
        index = cuda_index(self.models.device)
        return None if index is None else pool_for(str(index))


def _seconds(name: str, text: str, default: float, error: type[Exception] = ValueError) -> float:
    """A positive number of seconds from the variable `name`'s `text`; `default` when it is empty."""
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise error(f"{name}: {text!r} is not a positive number of seconds")
    return seconds


def parse_gpu_urls(text: str, variable: str = "ANIME_PIPELINE_COMFYUI_URLS") -> tuple[tuple[str, str], ...]:
    """"0=http://host:8188,1=http://host:8189" → (("0", "http://host:8188"), ("1", "http://host:8189"))."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        gpu, sep, url = item.partition("=")
        if not sep or not gpu.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"{variable}: {redact_text(item)!r} should look like 0=http://127.0.0.1:8188")
        pairs.append((gpu.strip(), url.strip()))
    return tuple(pairs)


KOHYA_TIMEOUT_S = 12 * 3600


def training_environment(env: Mapping[str, str]) -> TrainingEnvironment:
    """Where LoRAs train, from these variables:

    | ANIME_PIPELINE_KOHYA_DIR | sd-scripts checkout (trainer: kohya) |
    | ANIME_PIPELINE_KOHYA_PYTHON | its Python (default `<dir>/venv/bin/python`) |
    | ANIME_PIPELINE_KOHYA_LAUNCHER | `accelerate` (default: `python -m accelerate.commands.launch`) or `python` |
    | ANIME_PIPELINE_KOHYA_GPU | CUDA index for kohya (default 0) |
    | ANIME_PIPELINE_KOHYA_TIMEOUT | seconds a training run may take (default 43200) |
    | ANIME_PIPELINE_TRAINER_GPU | the GPU id whose ComfyUI server trains (trainer: comfyui; default: the first) |
    | ANIME_PIPELINE_BASE_MODELS | local folder with the checkpoints (same names as on the servers) |
    | ANIME_PIPELINE_LORA_FOLDERS | per GPU id, a folder that server lists under models/loras: `0=/mnt/loras` |
    """
    value = {name: env.get(name, "").strip() for name in (
        "ANIME_PIPELINE_KOHYA_DIR", "ANIME_PIPELINE_KOHYA_PYTHON", "ANIME_PIPELINE_KOHYA_LAUNCHER",
        "ANIME_PIPELINE_KOHYA_GPU", "ANIME_PIPELINE_KOHYA_TIMEOUT", "ANIME_PIPELINE_TRAINER_GPU",
        "ANIME_PIPELINE_BASE_MODELS", "ANIME_PIPELINE_LORA_FOLDERS")}
    kohya = None
    if value["ANIME_PIPELINE_KOHYA_DIR"]:
        folder = Path(value["ANIME_PIPELINE_KOHYA_DIR"]).expanduser()
        launcher = value["ANIME_PIPELINE_KOHYA_LAUNCHER"] or "accelerate"
        if launcher not in ("accelerate", "python"):
            raise TrainerConfigError(f"ANIME_PIPELINE_KOHYA_LAUNCHER: {launcher!r} is not accelerate or python")
        kohya = KohyaInstall(folder, Path(value["ANIME_PIPELINE_KOHYA_PYTHON"] or folder / "venv/bin/python"),
                             launcher, value["ANIME_PIPELINE_KOHYA_GPU"] or "0",  # type: ignore[arg-type]
                             _seconds("ANIME_PIPELINE_KOHYA_TIMEOUT", value["ANIME_PIPELINE_KOHYA_TIMEOUT"],
                                      KOHYA_TIMEOUT_S, TrainerConfigError))
    base = value["ANIME_PIPELINE_BASE_MODELS"]
    return TrainingEnvironment(kohya, value["ANIME_PIPELINE_TRAINER_GPU"] or None,
                               Path(base).expanduser() if base else None,
                               parse_gpu_folders(value["ANIME_PIPELINE_LORA_FOLDERS"]))


def parse_gpu_folders(text: str) -> tuple[tuple[str, Path], ...]:
    """"0=/mnt/loras,1=/srv/loras" → (("0", Path("/mnt/loras")), ("1", Path("/srv/loras")))."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        gpu, sep, folder = item.partition("=")
        if not sep or not gpu.strip() or not folder.strip().startswith("/"):
            raise TrainerConfigError(f"ANIME_PIPELINE_LORA_FOLDERS: {item!r} should look like 0=/mnt/loras "
                                     "(an absolute folder per GPU id)")
        pairs.append((gpu.strip(), Path(folder.strip())))
    return tuple(pairs)


def format_gpu_folders(pairs: tuple[tuple[str, Path], ...]) -> str:
    return ",".join(f"{gpu}={folder}" for gpu, folder in pairs)


def format_gpu_urls(pairs: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{gpu}={url}" for gpu, url in pairs)


def environment() -> dict[str, str]:
    """The process environment, for the modules that validate their own variables (the studio's)."""
    return dict(os.environ)


def dagster_ui_url() -> str:
    """The Dagster webserver `anime-pipeline sync` reloads (`anime-pipeline dev` starts one on port 3000)."""
    return _env("ANIME_PIPELINE_DAGSTER_URL", "http://127.0.0.1:3000")


def user_name() -> str:
    """Who a human decision is recorded as, unless `--user` says otherwise."""
    return _env("USER", "reviewer")


def debug() -> bool:
    """ANIME_PIPELINE_DEBUG=1: the CLI shows tracebacks instead of one-line errors."""
    return bool(_env("ANIME_PIPELINE_DEBUG", ""))


def use_dagster_home(home: Path) -> None:
    """Point Dagster (`DagsterInstance.get()`, subprocesses) at the embedded home."""
    os.environ["DAGSTER_HOME"] = str(home)


def default_dagster_home() -> Path:
    """The embedded instance (SQLite) used by `demo` and `dev` unless DAGSTER_HOME is set."""
    return Path(_env("DAGSTER_HOME", ".dagster_home")).absolute()
