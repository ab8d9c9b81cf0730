"""Speech backends, one distinct voice per character, and the synthesis cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config.schema import CharacterVoice, EspeakVoice, OpenAIVoice
from anime_pipeline.media.ffmpeg import SAMPLE_RATE
from anime_pipeline.media.pcm import read_wav
from anime_pipeline.media.speech import (
    EspeakSpeech,
    OpenAITTSSpeech,
    SpeechCache,
    SpeechError,
    Voice,
    assign_voices,
    trim_silence,
)
from anime_pipeline.services.speech import OpenAISpeechClient
from tests.services.fake_speech import FakeSpeechServer

CAST = [("mio", None), ("hoshi", None), ("tama", None), ("ren", None)]


@pytest.fixture(scope="module")
def espeak_backend() -> EspeakSpeech:
    return EspeakSpeech()


def test_derived_voices_are_distinct_deterministic_and_stable(espeak_backend) -> None:
    voices = assign_voices(espeak_backend, CAST)
    assert len({v.family for v in voices.values()}) == len(CAST)  # four different espeak variants
    assert all(v.derived and v.backend == "espeak" for v in voices.values())
    assert assign_voices(espeak_backend, CAST) == voices
    grown = assign_voices(espeak_backend, [*CAST, ("newcomer", None)])
    assert {slug: grown[slug] for slug, _ in CAST} == voices  # an added character changes nobody's voice


def test_a_configured_voice_wins_and_is_avoided_by_the_others(espeak_backend) -> None:
    derived = assign_voices(espeak_backend, CAST)
    taken = derived["hoshi"]
    configured = CharacterVoice(espeak=EspeakVoice(voice=taken.name, pitch=taken.pitch, rate=taken.rate))
    voices = assign_voices(espeak_backend, [("mio", configured), *CAST[1:]])
    assert voices["mio"] == Voice("espeak", taken.name, pitch=taken.pitch, rate=taken.rate)
    assert voices["hoshi"].family != taken.family


def test_more_characters_than_families_still_get_distinct_voices(espeak_backend) -> None:
    crowd = [(f"extra-{i}", None) for i in range(20)]
    voices = assign_voices(espeak_backend, crowd)
    assert len({v.key() for v in voices.values()}) == 20


def test_cache_speaks_each_text_voice_backend_once(espeak_backend, tmp_path: Path) -> None:
    cache = SpeechCache(espeak_backend, tmp_path)
    voice = assign_voices(espeak_backend, CAST)["mio"]
    first = cache.line("Last bag of the night, Hoshi.", voice)
    again = cache.line("Last bag of the night, Hoshi.", voice)
    assert not first.cached and again.cached and again.path == first.path and again.duration == first.duration
    other_text = cache.line("Last bag of the night.", voice)
    other_voice = cache.line("Last bag of the night, Hoshi.", assign_voices(espeak_backend, CAST)["hoshi"])
    assert len({first.key, other_text.key, other_voice.key}) == 3
    samples, rate = read_wav(first.path)
    assert rate == SAMPLE_RATE and abs(len(samples) / rate - first.duration) < 1e-9
    assert np.abs(samples[:10]).max() < np.abs(samples).max()  # trimmed to the speech, not to silence


def test_a_damaged_cache_entry_is_spoken_again(espeak_backend, tmp_path: Path) -> None:
    cache = SpeechCache(espeak_backend, tmp_path)
    voice = assign_voices(espeak_backend, CAST)["mio"]
    first = cache.line("Kyu!", voice)
    first.path.write_bytes(b"not a wav")
    again = cache.line("Kyu!", voice)
    assert not again.cached and read_wav(again.path)[0].size


def test_trim_silence_keeps_a_little_air() -> None:
    samples = np.zeros(SAMPLE_RATE, dtype=np.float32)
    samples[24_000:24_480] = 0.5
    trimmed = trim_silence(samples)
    assert len(trimmed) == 480 + 2 * 960  # 20 ms kept each side
    assert trim_silence(np.zeros(100, dtype=np.float32)).size == 0


def test_openai_backend_decodes_any_format_and_derives_from_the_voice_list(tmp_path: Path) -> None:
    with FakeSpeechServer("kokoro") as server:
        backend = OpenAITTSSpeech(OpenAISpeechClient(server.url), "gpu 1")
        voices = assign_voices(backend, CAST)
        assert {v.name for v in voices.values()} <= set(server.voices)
        assert len({v.name for v in voices.values()}) == 4
        from tests.services.fake_speech import encoded, spoken
        server.wrong_body = encoded(spoken("Hello there.", "af_heart"), "mp3")  # mp3 although wav was asked
        line = SpeechCache(backend, tmp_path).line("Hello there.", voices["mio"])
    assert 0.5 < line.duration < 1.2  # the fake speaks 0.06 s per character
    assert "speech server" in backend.label and "gpu 1" in backend.label and not backend.embedded


def test_openai_backend_uses_the_configured_voice_and_wraps_errors(tmp_path: Path) -> None:
    with FakeSpeechServer("openedai") as server:
        backend = OpenAITTSSpeech(OpenAISpeechClient(server.url), "cpu")
        configured = CharacterVoice(openai_tts=OpenAIVoice(voice="robot", speed=1.2))
        voice = assign_voices(backend, [("mio", configured)])["mio"]
        assert voice == Voice("openai_tts", "robot", speed=1.2)
        with pytest.raises(SpeechError, match="Voice 'robot' not found"):
            SpeechCache(backend, tmp_path).line("Hi.", voice)
        derived = assign_voices(backend, CAST)  # no voice list: OpenAI's six names
        assert {v.name for v in derived.values()} <= {"alloy", "echo", "fable", "onyx", "nova", "shimmer"}
