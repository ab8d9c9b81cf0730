"""Show-file and environment settings for LoRA training, ready to move into config/schema.py.

In the show file (the lead wires these into `config/schema.py`):

    Backends.trainer: TrainerBackend = "previz"
    ShowConfig.training: TrainerSettings = TrainerSettings()
    Character.lora: CharacterLora = CharacterLora()

Where the trainers run is the deployment's business and comes from the environment
(`TrainingEnvironment.from_env`), like the renderers' URLs and GPUs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from anime_pipeline.training.errors import TrainerConfigError

TrainerBackend = Literal["previz", "comfyui", "kohya"]

# SPEC §7 gives the IP-Adapter weight (0.7) but no LoRA weight; 0.8 is the usual strength for a
# character LoRA next to IP-Adapter (full strength tends to fight it and bake in the training
# images' backgrounds).
DEFAULT_LORA_WEIGHT = 0.8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainerSettings(_Strict):
    """How a character LoRA is trained, whichever backend trains it. An epoch is kohya's: every
    image `repeats` times, in batches (ceil(images × repeats / batch_size) steps)."""

    rank: int = Field(16, ge=1, le=128, description="network dim (kohya --network_dim, ComfyUI rank)")
    alpha: float | None = Field(None, gt=0, le=1024,
                                description="network alpha; unset: the backend's own (kohya 1.0; ComfyUI's "
                                            "TrainLoraNode always uses 1.0 and refuses another value)")
    learning_rate: float = Field(1e-4, gt=0, le=1)
    epochs: int = Field(10, ge=1, le=200, description="a LoRA file is kept per epoch; identity picks one")
    repeats: int = Field(10, ge=1, le=1000, description="how often each image is seen per epoch")
    batch_size: int = Field(1, ge=1, le=64)
    seed: int = Field(42, ge=0, lt=2**32)
    optimizer: str = Field("AdamW", min_length=1,
                           description="kohya --optimizer_type (AdamW, AdamW8bit, Lion, ...); ComfyUI: AdamW, "
                                       "Adam, SGD or RMSprop")
    mixed_precision: Literal["no", "fp16", "bf16"] = "bf16"
    resolution: int | None = Field(None, ge=256, le=2048, description="unset: 512 for SD 1.x, 1024 for SDXL")
    validation_prompts: int = Field(4, ge=1, le=16, description="renders per epoch for the identity choice")
    train_text_encoder: bool = Field(True, description="kohya: also train the text encoder(s); ComfyUI "
                                                       "trains the diffusion model only")


class CharacterLora(_Strict):
    """How shots load the character's LoRA (LoraLoader strengths)."""

    weight: float = Field(DEFAULT_LORA_WEIGHT, ge=0, le=2, description="strength_model")
    clip_weight: float | None = Field(None, ge=0, le=2, description="strength_clip; unset: the same as weight")


# -- environment --------------------------------------------------------------------------------


@dataclass(frozen=True)
class KohyaInstall:
    """A kohya-ss/sd-scripts checkout and the Python of its virtualenv."""

    sd_scripts: Path
    python: Path
    launcher: Literal["accelerate", "python"] = "accelerate"
    gpu: str = "0"  # CUDA index; "cpu" runs without CUDA_VISIBLE_DEVICES
    timeout_s: float = 12 * 3600

    def script(self, sdxl: bool) -> Path:
        return self.sd_scripts / ("sdxl_train_network.py" if sdxl else "train_network.py")


@dataclass(frozen=True)
class TrainingEnvironment:
    """Where training runs, from the environment.

    | variable | meaning |
    | ANIME_PIPELINE_KOHYA_DIR | sd-scripts checkout (trainer: kohya) |
    | ANIME_PIPELINE_KOHYA_PYTHON | its Python (default `<dir>/venv/bin/python`) |
    | ANIME_PIPELINE_KOHYA_LAUNCHER | `accelerate` (default: `python -m accelerate.commands.launch`) or `python` |
    | ANIME_PIPELINE_KOHYA_GPU | CUDA index for kohya (default 0) |
    | ANIME_PIPELINE_KOHYA_TIMEOUT | seconds a training run may take (default 43200) |
    | ANIME_PIPELINE_TRAINER_GPU | the GPU id whose ComfyUI server trains (trainer: comfyui; default: the first) |
    | ANIME_PIPELINE_BASE_MODELS | local folder with the checkpoints (same names as on the servers): hashed, key-checked, read by kohya |
    | ANIME_PIPELINE_LORA_FOLDERS | per GPU id, a folder that server lists under models/loras: `0=/mnt/loras,1=/mnt/loras` |
    """

    kohya: KohyaInstall | None = None
    trainer_gpu: str | None = None
    base_models: Path | None = None
    lora_folders: tuple[tuple[str, Path], ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrainingEnvironment:
        env = os.environ if env is None else env
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
                                 _seconds(value["ANIME_PIPELINE_KOHYA_TIMEOUT"], 12 * 3600))
        base = value["ANIME_PIPELINE_BASE_MODELS"]
        return cls(kohya, value["ANIME_PIPELINE_TRAINER_GPU"] or None, Path(base).expanduser() if base else None,
                   parse_gpu_folders(value["ANIME_PIPELINE_LORA_FOLDERS"]))

    def lora_folder(self, gpu: str) -> Path | None:
        return dict(self.lora_folders).get(gpu)


def _seconds(text: str, default: float) -> float:
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise TrainerConfigError(f"ANIME_PIPELINE_KOHYA_TIMEOUT: {text!r} is not a positive number of seconds")
    return seconds


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
