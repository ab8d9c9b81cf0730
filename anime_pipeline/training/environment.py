"""Where the trainers run: the deployment's business, like the renderers' URLs and GPUs.

`settings.training_environment` reads these from the environment (README, "Training character
LoRAs"); the show file's part (`training:`, `Character.lora`, `backends.trainer`) is in
`config/schema.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


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
    """The kohya install (trainer: kohya), the GPU whose ComfyUI server trains (trainer: comfyui;
    None: the first), the local folder of base checkpoints (hashed, key-checked, read by kohya) and,
    per GPU id, a folder that GPU's ComfyUI server lists under models/loras."""

    kohya: KohyaInstall | None = None
    trainer_gpu: str | None = None
    base_models: Path | None = None
    lora_folders: tuple[tuple[str, Path], ...] = ()

    def lora_folder(self, gpu: str) -> Path | None:
        return dict(self.lora_folders).get(gpu)
