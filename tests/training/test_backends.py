"""Choosing the trainer and the base model from the environment; progress lines for the logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anime_pipeline.training.backends import (
    base_model_for,
    progress_logger,
    trainer_for,
)
from anime_pipeline.training.base import TrainingProgress
from anime_pipeline.training.comfyui_trainer import ComfyUITrainer
from anime_pipeline.training.environment import KohyaInstall, TrainingEnvironment
from anime_pipeline.training.errors import TrainerConfigError
from anime_pipeline.training.kohya import KohyaTrainer

URLS = (("0", "http://gpu:8188"), ("1", "http://gpu:8189"))


def test_the_backend_picks_its_trainer_and_server():
    comfy = trainer_for("comfyui", TrainingEnvironment(trainer_gpu="1"), URLS)
    assert isinstance(comfy, ComfyUITrainer) and (comfy.url, comfy.gpu) == ("http://gpu:8189", "1")
    assert trainer_for("comfyui", TrainingEnvironment(), URLS).gpu == "0"
    install = KohyaInstall(Path("/opt/sd-scripts"), Path("/opt/venv/bin/python"), gpu="1")
    kohya = trainer_for("kohya", TrainingEnvironment(kohya=install), URLS)
    assert isinstance(kohya, KohyaTrainer) and kohya.info.device == "cuda:1"


@pytest.mark.parametrize("backend, env, urls, message", [
    ("kohya", TrainingEnvironment(), URLS, "ANIME_PIPELINE_KOHYA_DIR"),
    ("comfyui", TrainingEnvironment(), (), "ANIME_PIPELINE_COMFYUI_URLS"),
    ("comfyui", TrainingEnvironment(trainer_gpu="7"), URLS, "GPU ids there: 0, 1"),
    ("previz", TrainingEnvironment(), URLS, "not a LoRA trainer"),
])
def test_what_is_missing_is_named(backend, env, urls, message):
    with pytest.raises(TrainerConfigError, match=message):
        trainer_for(backend, env, urls)


def test_base_model_from_the_local_copy_or_its_module_list(sd15_checkpoint: Path, tmp_path: Path):
    env = TrainingEnvironment(base_models=tmp_path)
    with pytest.raises(TrainerConfigError, match="v1-5-pruned-emaonly-fp16.modules.txt"):
        base_model_for(sd15_checkpoint.name, env)
    (tmp_path / "v1-5-pruned-emaonly-fp16.modules.txt").write_text("model.diffusion_model.input_blocks.1.1.proj_in\n")
    listed = base_model_for(sd15_checkpoint.name, env)
    assert listed.sha256 is None and listed.name == sd15_checkpoint.name
    shutil.copy(sd15_checkpoint, tmp_path / sd15_checkpoint.name)
    local = base_model_for(sd15_checkpoint.name, env)
    assert local.sha256 is not None and local.architecture == "sd15"
    with pytest.raises(TrainerConfigError, match="ANIME_PIPELINE_BASE_MODELS"):
        base_model_for("x.safetensors", TrainingEnvironment())


def test_progress_lines_are_throttled_per_share_and_epoch():
    lines: list[str] = []
    sink = progress_logger(lines.append, every_percent=25)
    for step in range(1, 41):
        sink(TrainingProgress((step - 1) // 20 + 1, 2, step, 40, loss=0.1))
    assert lines[0] == "training: epoch 1/2, step 1/40 (2%), loss 0.1"
    assert [line.split(",")[1].split(" (")[0] for line in lines] == [" step 1/40", " step 11/40", " step 21/40", " step 31/40"]
