"""Where the trainers run, from the environment (settings.py is the one reader of os.environ)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.settings import training_environment
from anime_pipeline.training.environment import KohyaInstall, TrainingEnvironment
from anime_pipeline.training.errors import TrainerConfigError


def test_environment_names_the_kohya_install_and_lora_folders():
    env = training_environment({
        "ANIME_PIPELINE_KOHYA_DIR": "/opt/sd-scripts", "ANIME_PIPELINE_KOHYA_GPU": "1",
        "ANIME_PIPELINE_BASE_MODELS": "/models/checkpoints", "ANIME_PIPELINE_LORA_FOLDERS": "0=/mnt/loras, 1=/srv/loras",
        "ANIME_PIPELINE_TRAINER_GPU": "1"})
    assert env.kohya == KohyaInstall(Path("/opt/sd-scripts"), Path("/opt/sd-scripts/venv/bin/python"), "accelerate", "1")
    assert env.kohya.script(sdxl=True) == Path("/opt/sd-scripts/sdxl_train_network.py")
    assert env.lora_folder("1") == Path("/srv/loras") and env.lora_folder("2") is None
    assert (env.trainer_gpu, env.base_models) == ("1", Path("/models/checkpoints"))
    assert training_environment({}) == TrainingEnvironment()


@pytest.mark.parametrize("env, message", [
    ({"ANIME_PIPELINE_LORA_FOLDERS": "0:/mnt"}, "should look like 0=/mnt/loras"),
    ({"ANIME_PIPELINE_LORA_FOLDERS": "0=relative/path"}, "an absolute folder"),
    ({"ANIME_PIPELINE_KOHYA_DIR": "/x", "ANIME_PIPELINE_KOHYA_LAUNCHER": "torchrun"}, "not accelerate or python"),
    ({"ANIME_PIPELINE_KOHYA_DIR": "/x", "ANIME_PIPELINE_KOHYA_TIMEOUT": "soon"}, "not a positive number"),
])
def test_bad_environment_values_name_the_variable(env: dict, message: str):
    with pytest.raises(TrainerConfigError, match=message):
        training_environment(env)


def test_settings_read_the_training_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from anime_pipeline.settings import Settings

    monkeypatch.setenv("ANIME_PIPELINE_KOHYA_DIR", str(tmp_path / "sd-scripts"))
    monkeypatch.setenv("ANIME_PIPELINE_LORA_FOLDERS", f"0={tmp_path / 'loras'}")
    settings = Settings.from_env()
    assert settings.training.kohya is not None and settings.training.kohya.sd_scripts == tmp_path / "sd-scripts"
    assert settings.training.lora_folder("0") == tmp_path / "loras"
