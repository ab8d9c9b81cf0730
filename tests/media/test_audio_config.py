"""The audio, voice and Jellyfin settings the show file will carry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from anime_pipeline.media.audio_config import Audio, CharacterVoice, Jellyfin


def test_defaults_are_the_spec_numbers() -> None:
    audio = Audio()
    assert (audio.music_volume, audio.loudness.integrated_lufs, audio.loudness.true_peak_dbtp) == (0.3, -16.0, -1.0)
    assert audio.loudness.tolerance_lu == 1.0 and not audio.music_fallback


def test_voice_per_backend() -> None:
    voice = CharacterVoice.model_validate({"espeak": {"voice": "en+f3", "pitch": 70},
                                           "openai_tts": {"voice": "af_heart"}})
    assert voice.espeak.rate == 170 and voice.openai_tts.speed == 1.0


@pytest.mark.parametrize("data,field", [
    ({"espeak": {"voice": "English please"}}, "espeak.voice"),
    ({"espeak": {"voice": "en", "pitch": 101}}, "espeak.pitch"),
    ({"openai_tts": {"voice": "alloy", "speed": 9}}, "openai_tts.speed"),
    ({"piper": {"voice": "x"}}, "piper"),
])
def test_bad_voices_name_the_field(data, field) -> None:
    with pytest.raises(ValidationError) as caught:
        CharacterVoice.model_validate(data)
    assert field in ".".join(str(p) for p in caught.value.errors()[0]["loc"])


def test_jellyfin_library_path_is_an_absolute_server_path() -> None:
    assert Jellyfin(server_library_path="/media/").server_library_path == "/media"
    for bad in ("media", "/media/../etc"):
        with pytest.raises(ValidationError, match="absolute path on the server"):
            Jellyfin(server_library_path=bad)
