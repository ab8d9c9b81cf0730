"""The embedded music bed: deterministic, shaped by mood and time of day, and music rather than a tone."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.media import procedural_music as pm
from anime_pipeline.media.ffmpeg import SAMPLE_RATE


def spectrum(samples: np.ndarray, start: float, seconds: float = 1.0) -> np.ndarray:
    mono = samples.mean(axis=1)[round(start * SAMPLE_RATE): round((start + seconds) * SAMPLE_RATE)]
    return np.abs(np.fft.rfft(mono * np.hanning(len(mono))))


def peaks(magnitudes: np.ndarray, floor_db: float = -30) -> list[float]:
    """Frequencies (Hz, 1 s windows) of local maxima within `floor_db` of the strongest."""
    level = 20 * np.log10(magnitudes + 1e-12)
    top = level.max()
    return [i for i in range(1, len(level) - 1) if level[i] > top + floor_db
            and level[i] >= level[i - 1] and level[i] >= level[i + 1]]


def centroid(samples: np.ndarray) -> float:
    """Spectral centroid (Hz) of seconds 1-3: where the energy sits."""
    mags = spectrum(samples, 1.0, 2.0)
    return float((mags * np.arange(len(mags))).sum() / mags.sum()) / 2.0


def test_same_scene_same_samples_and_exact_length() -> None:
    first, info = pm.render("cosy, curious", "dusk", 7.25, "abc123")
    again, _ = pm.render("cosy, curious", "dusk", 7.25, "abc123")
    assert np.array_equal(first, again)
    assert first.shape == (round(7.25 * SAMPLE_RATE), 2) and first.dtype == np.float32
    assert np.abs(first).max() == pytest.approx(pm.PEAK, rel=1e-3)
    assert info.feel == "calm" and info.light == "evening"


@pytest.mark.parametrize("mood,feel", [("cheerful and bright", "bright"), ("hushed, hopeful", "calm"),
                                       ("melancholy", "sad"), ("tense standoff", "tense"),
                                       ("a mysterious glow", "mysterious"), ("", "calm"), ("purple", "calm")])
def test_the_first_mood_word_that_names_a_feel_decides(mood: str, feel: str) -> None:
    assert pm.arrangement(mood, "", "x")[0].feel == feel


def test_time_of_day_sets_register_and_brightness() -> None:
    night, _ = pm.render("calm", "night", 4.0, "same")
    noon, _ = pm.render("calm", "noon", 4.0, "same")
    assert centroid(night) < 0.8 * centroid(noon)


def test_a_chord_progression_not_a_tone() -> None:
    samples, info = pm.render("calm", "day", 16.0, "prog")
    bar = 4 * 60 / info.tempo
    chords = [set(peaks(spectrum(samples, bar * i + bar / 2, 1.0))[:8]) for i in range(4)]
    assert all(len(c) >= 6 for c in chords)  # several partials sounding at once
    assert len({frozenset(c) for c in chords}) >= 3  # and they change from bar to bar
    assert len(set(info.chords)) >= 3
    left, right = samples[:, 0], samples[:, 1]
    assert not np.allclose(left, right)  # a stereo image, not one channel copied


def test_different_scenes_get_different_beds() -> None:
    a, _ = pm.render("calm", "day", 3.0, "scene-a")
    b, _ = pm.render("calm", "day", 3.0, "scene-b")
    c, _ = pm.render("tense", "day", 3.0, "scene-a")
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_needs_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="positive duration"):
        pm.render("calm", "day", 0, "x")
