"""The show file's training settings: defaults, strictness, and the trainer/renderer pairing."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from anime_pipeline.config.loader import ConfigError, parse_show
from anime_pipeline.config.schema import DEFAULT_LORA_WEIGHT, Backends, CharacterLora, TrainerSettings

from conftest import SAMPLE, merged


def test_settings_defaults_and_strictness():
    settings = TrainerSettings()
    assert (settings.rank, settings.alpha, settings.epochs, settings.repeats) == (16, None, 10, 10)
    with pytest.raises(ValidationError, match="rank"):
        TrainerSettings(rank=0)
    with pytest.raises(ValidationError, match="extra"):
        TrainerSettings(network_dim=8)
    assert CharacterLora().weight == DEFAULT_LORA_WEIGHT and CharacterLora().clip_weight is None


def test_the_show_file_takes_training_and_each_characters_lora_weights():
    data = merged(yaml.safe_load(SAMPLE.read_text()), {"backends": {"renderer": "comfyui", "trainer": "kohya"},
                                                      "training": {"rank": 8, "epochs": 3}})
    data["characters"][0]["lora"] = {"weight": 0.6, "clip_weight": 0.4}
    config = parse_show(yaml.safe_dump(data))
    assert (config.training.rank, config.training.epochs, config.backends.trainer) == (8, 3, "kohya")
    assert config.characters[0].lora == CharacterLora(weight=0.6, clip_weight=0.4)
    assert config.characters[1].lora == CharacterLora()


def test_a_lora_trainer_needs_the_renderer_that_loads_a_lora():
    data = merged(yaml.safe_load(SAMPLE.read_text()), {"backends": {"trainer": "comfyui"}})
    with pytest.raises(ConfigError) as caught:
        parse_show(yaml.safe_dump(data), "show.yaml")
    assert "show.yaml" in str(caught.value) and "backends" in str(caught.value)
    assert "only renderer: comfyui can load one" in str(caught.value)
    assert Backends(renderer="comfyui", trainer="kohya").trainer == "kohya"
