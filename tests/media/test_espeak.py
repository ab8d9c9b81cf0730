"""espeak-ng from the espeakng-loader wheel, through ctypes: real speech, voices, errors."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.media import espeak


def test_speaks_a_line_as_real_audio() -> None:
    speech = espeak.speak("Last bag of the night, Hoshi.", "en+f3", pitch=60, rate=165)
    assert speech.sample_rate == 22050 and speech.samples.dtype == np.int16
    assert 1.0 < speech.duration < 4.0
    rms = float(np.sqrt(np.mean(speech.samples.astype(np.float64) ** 2)))
    assert rms > 1000  # speech, not silence
    assert espeak.version().startswith("1.")


def test_voice_variant_pitch_and_rate_change_the_audio() -> None:
    text = "Lead the way. I will keep up."
    base = espeak.speak(text, "en+m3", pitch=50, rate=170)
    assert not np.array_equal(base.samples, espeak.speak(text, "en+f2", pitch=50, rate=170).samples)
    assert not np.array_equal(base.samples, espeak.speak(text, "en+m3", pitch=80, rate=170).samples)
    assert espeak.speak(text, "en+m3", pitch=50, rate=300).duration < 0.75 * base.duration


def test_same_input_same_samples() -> None:
    first = espeak.speak("Kyu!", "en+f4", 70, 160)
    assert np.array_equal(first.samples, espeak.speak("Kyu!", "en+f4", 70, 160).samples)


def test_other_languages_speak_too() -> None:
    assert espeak.speak("こんにちは", "ja").duration > 0.3


@pytest.mark.parametrize("voice,text", [("en+nobody", "no voice variant 'nobody'"),
                                        ("zz", "no voice for language 'zz'")])
def test_unknown_voices_are_named(voice: str, text: str) -> None:
    with pytest.raises(espeak.EspeakError, match=text):
        espeak.speak("Hello.", voice)


def test_empty_and_huge_lines_are_refused() -> None:
    with pytest.raises(espeak.EspeakError, match="empty line"):
        espeak.speak("   ")
    with pytest.raises(espeak.EspeakError, match="longer than"):
        espeak.speak("word " * 5000)
