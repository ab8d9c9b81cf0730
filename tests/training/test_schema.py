"""Training settings in the show file and where the trainers run, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from anime_pipeline.training.errors import TrainerConfigError
from anime_pipeline.training.schema import (
    DEFAULT_LORA_WEIGHT,
    CharacterLora,
    KohyaInstall,
    TrainerSettings,
    TrainingEnvironment,
)


def test_settings_defaults_and_strictness():
    settings = TrainerSettings()
    assert (settings.rank, settings.alpha, settings.epochs, settings.repeats) == (16, None, 10, 10)
    with pytest.raises(ValidationError, match="rank"):
        TrainerSettings(rank=0)
    with pytest.raises(ValidationError, match="extra"):
        TrainerSettings(network_dim=8)
    assert CharacterLora().weight == DEFAULT_LORA_WEIGHT and CharacterLora().clip_weight is None


def test_environment_names_the_kohya_install_and_lora_folders():
    env = TrainingEnvironment.from_env({
        "ANIME_PIPELINE_KOHYA_DIR": "/opt/sd-scripts", "ANIME_PIPELINE_KOHYA_GPU": "1",
        "ANIME_PIPELINE_BASE_MODELS": "/models/checkpoints", "ANIME_PIPELINE_LORA_FOLDERS": "0=/mnt/loras, 1=/srv/loras",
        "ANIME_PIPELINE_TRAINER_GPU": "1"})
    assert env.kohya == KohyaInstall(Path("/opt/sd-scripts"), Path("/opt/sd-scripts/venv/bin/python"), "accelerate", "1")
    assert env.kohya.script(sdxl=True) == Path("/opt/sd-scripts/sdxl_train_network.py")
    assert env.lora_folder("1") == Path("/srv/loras") and env.lora_folder("2") is None
    assert (env.trainer_gpu, env.base_models) == ("1", Path("/models/checkpoints"))
    assert TrainingEnvironment.from_env({}) == TrainingEnvironment()


@pytest.mark.parametrize("env, message", [
    ({"ANIME_PIPELINE_LORA_FOLDERS": "0:/mnt"}, "should look like 0=/mnt/loras"),
    ({"ANIME_PIPELINE_LORA_FOLDERS": "0=relative/path"}, "an absolute folder"),
    ({"ANIME_PIPELINE_KOHYA_DIR": "/x", "ANIME_PIPELINE_KOHYA_LAUNCHER": "torchrun"}, "not accelerate or python"),
    ({"ANIME_PIPELINE_KOHYA_DIR": "/x", "ANIME_PIPELINE_KOHYA_TIMEOUT": "soon"}, "not a positive number"),
])
def test_bad_environment_values_name_the_variable(env: dict, message: str):
    with pytest.raises(TrainerConfigError, match=message):
        TrainingEnvironment.from_env(env)
