"""The show file's schema: training settings (defaults, strictness, the trainer/renderer pairing); speech,
music, mix and Jellyfin settings (defaults, bounds, and what a backend needs)."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from anime_pipeline.config.loader import ConfigError, parse_show
from anime_pipeline.config.schema import (
    DEFAULT_LORA_WEIGHT,
    Audio,
    Backends,
    CharacterLora,
    CharacterVoice,
    Jellyfin,
    TrainerSettings,
)
from tests.worlds import SAMPLE, merged


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


# -- speech, music, the mix, Jellyfin ----------------------------------------------------------


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_show(text, "shows/bad.yaml")
    return [f"{p.field}: {p.reason}" for p in info.value.problems]


def _with(text: str, change) -> str:
    data = yaml.safe_load(text)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def test_defaults_are_the_spec_numbers() -> None:
    audio = Audio()
    assert (audio.music_volume, audio.loudness.integrated_lufs, audio.loudness.true_peak_dbtp) == (0.3, -16.0, -1.0)
    assert audio.loudness.tolerance_lu == 1.0 and not audio.music_fallback
    assert (audio.ducking.threshold_db, audio.ducking.ratio, audio.dialogue_margin_db) == (-36.0, 8.0, 10.0)


def test_voice_per_backend() -> None:
    voice = CharacterVoice.model_validate({"espeak": {"voice": "en+f3", "pitch": 70},
                                           "openai_tts": {"voice": "af_heart"}})
    assert voice.espeak.rate == 170 and voice.openai_tts.speed == 1.0


@pytest.mark.parametrize("data,field", [
    ({"espeak": {"voice": "English please"}}, "espeak.voice"),
    ({"espeak": {"voice": "en", "pitch": 101}}, "espeak.pitch"),
    ({"espeak": {"voice": "en", "rate": 20}}, "espeak.rate"),
    ({"openai_tts": {"voice": "alloy", "speed": 9}}, "openai_tts.speed"),
    ({"openai_tts": {"voice": ""}}, "openai_tts.voice"),
    ({"piper": {"voice": "x"}}, "piper"),
])
def test_bad_voices_name_the_field(data, field) -> None:
    with pytest.raises(ValidationError) as caught:
        CharacterVoice.model_validate(data)
    assert field in ".".join(str(p) for p in caught.value.errors()[0]["loc"])


def test_jellyfin_library_path_is_an_absolute_server_path() -> None:
    assert Jellyfin(server_library_path="/media/").server_library_path == "/media"
    for bad in ("media", "/media/../etc", "C:\\media"):
        with pytest.raises(ValidationError, match="absolute path on the server"):
            Jellyfin(server_library_path=bad)


def test_the_show_file_carries_voices_audio_and_backends(sample_text) -> None:
    def change(d):
        d["characters"][1]["voice"] = {"espeak": {"voice": "en+f5", "pitch": 85}}
        d["audio"] = {"music_volume": 0.25, "loudness": {"integrated_lufs": -23}}
        d.setdefault("backends", {}).update(speech="openai_tts", speech_model="kokoro", music="ace_step",
                                            publisher="jellyfin")
        d["jellyfin"] = {"server_library_path": "/media", "wait_seconds": 60}
    config = parse_show(_with(sample_text, change))
    assert config.characters[1].voice.espeak.voice == "en+f5"
    assert (config.audio.music_volume, config.audio.loudness.integrated_lufs) == (0.25, -23)
    assert (config.backends.speech, config.backends.music, config.backends.publisher) == ("openai_tts", "ace_step",
                                                                                          "jellyfin")
    assert config.jellyfin.wait_seconds == 60


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["audio"].update(music_volume=1.5), "audio.music_volume: Input should be less than or equal to 1"),
    (lambda d: d["audio"].update(loudness={"integrated_lufs": -50}), "audio.loudness.integrated_lufs: Input should be"),
    (lambda d: d["audio"].update(line_gap="short"), "audio.line_gap: Input should be a valid number"),
    (lambda d: d["audio"].update(music_fallback="yes"), "audio.music_fallback: Input should be a valid boolean"),
    (lambda d: d.setdefault("backends", {}).update(speech="piper"),
     "backends.speech: Input should be 'espeak' or 'openai_tts'"),
    (lambda d: d.setdefault("backends", {}).update(music="spotify"),
     "backends.music: Input should be 'procedural', 'ace_step'"),
])
def test_bad_audio_settings_name_the_field(sample_text, change, expected) -> None:
    def edit(d):
        d.setdefault("audio", {})
        change(d)
    problems = _problems(_with(sample_text, edit))
    assert any(p.startswith(expected) for p in problems), problems


def test_publisher_jellyfin_needs_its_section(sample_text) -> None:
    (problem,) = _problems(_with(sample_text, lambda d: d.setdefault("backends", {}).update(publisher="jellyfin")))
    assert problem.startswith("jellyfin: backends.publisher is 'jellyfin': add a jellyfin: section")


def test_music_from_files_needs_every_scenes_track(sample_text) -> None:
    def change(d):
        d.setdefault("backends", {})["music"] = "file"
        d["episodes"][0]["scenes"][0]["music"] = "night.ogg"
    (problem,) = _problems(_with(sample_text, change))
    assert problem.startswith("episodes[0].scenes[1].music: backends.music is 'file': every scene names its track")
