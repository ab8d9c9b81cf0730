"""Dialogue placement: lines inside their shot's span, cues timed to the real speech, misfits named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.media.dialogue import (
    MAX_LEAD,
    DialogueDoesNotFit,
    DialogueTrack,
    LineRequest,
    ShotSpan,
    place_dialogue,
    shot_spans,
)
from anime_pipeline.media.ffmpeg import SAMPLE_RATE
from anime_pipeline.media.pcm import read_wav
from anime_pipeline.media.speech import EspeakSpeech, SpeechCache, assign_voices


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> SpeechCache:
    return SpeechCache(EspeakSpeech(), tmp_path_factory.mktemp("speech"))


@pytest.fixture(scope="module")
def voices(cache: SpeechCache):
    return assign_voices(cache.backend, [("mio", None), ("hoshi", None)])


def line(voices, shot: str, index: int, speaker: str, text: str) -> LineRequest:
    return LineRequest(shot, index, speaker, speaker.title(), text, voices[speaker])


def test_spans_start_after_the_incoming_transition() -> None:
    spans = shot_spans(["a", "b", "c"], [60, 60, 48], fps=24, overlap_frames=7)
    assert spans[0] == ShotSpan("a", 0.0, 2.5)
    assert spans[1] == ShotSpan("b", (53 + 7) / 24, (53 + 60) / 24)  # b starts at frame 53, its lines at 60
    assert spans[2].start == pytest.approx((106 + 7) / 24) and spans[2].end == pytest.approx((106 + 48) / 24)
    assert all(earlier.end <= later.start for earlier, later in zip(spans, spans[1:]))


def test_lines_are_placed_in_their_shots_and_the_cues_are_the_speech(cache, voices, tmp_path: Path) -> None:
    spans = shot_spans(["sh01", "sh02"], [96, 120], fps=24, overlap_frames=7)
    duration = (96 + 120 - 7) / 24
    lines = [line(voices, "sh01", 0, "mio", "Last bag of the night."), line(voices, "sh02", 0, "hoshi", "Kyu!"),
             line(voices, "sh02", 1, "mio", "Lead the way.")]
    track = place_dialogue(spans, lines, cache, duration, tmp_path / "dialogue.wav", gap=0.25)
    assert isinstance(track, DialogueTrack)
    for placed in track.lines:
        span = next(s for s in spans if s.shot == placed.request.shot)
        assert span.start <= placed.start and placed.end <= span.end + 1e-9
    second, third = track.lines[1:]
    assert third.start >= second.end + 0.25  # in order, a gap apart
    assert track.lines[0].start - spans[0].start <= MAX_LEAD + 1e-9
    assert [(c.start, c.end) for c in track.cues] == [(round(p.start, 3), round(p.end, 3)) for p in track.lines]
    assert [c.text for c in track.cues] == ["Mio: Last bag of the night.", "Hoshi: Kyu!", "Mio: Lead the way."]
    samples, rate = read_wav(track.path)
    assert rate == SAMPLE_RATE and len(samples) == round(duration * SAMPLE_RATE)
    for placed in track.lines:  # speech where a line is, silence between the lines
        inside = samples[round(placed.start * rate): round(placed.end * rate)]
        assert np.sqrt(np.mean(inside ** 2)) > 0.02
    quiet = samples[round(track.lines[0].end * rate) + 100: round(spans[1].start * rate)]
    assert np.abs(quiet).max() == 0.0
    assert track.embedded and "espeak" in track.backend


def test_a_line_longer_than_its_shot_is_named_with_both_durations(cache, voices, tmp_path: Path) -> None:
    spans = shot_spans(["sh01", "sh02"], [60, 24], fps=24, overlap_frames=7)
    text = "This address... nobody has lived there for ten years."
    lines = [line(voices, "sh01", 0, "mio", "Hello."), line(voices, "sh02", 0, "mio", text)]
    result = place_dialogue(spans, lines, cache, 77 / 24, tmp_path / "dialogue.wav")
    assert isinstance(result, DialogueDoesNotFit)
    (misfit,) = result.misfits
    assert (misfit.shot, misfit.index, misfit.speaker, misfit.text) == ("sh02", 0, "mio", text)
    assert misfit.available == pytest.approx(spans[1].length)
    assert misfit.line_duration > misfit.available
    assert result.message.startswith(f"shot sh02: line 1 (mio: {text!r}) lasts {misfit.line_duration:.2f} s but only "
                                     f"{misfit.available:.2f} s of the shot are left for it")
    assert not (tmp_path / "dialogue.wav").exists()


def test_lines_that_fit_alone_but_not_together(cache, voices, tmp_path: Path) -> None:
    first = cache.line("Lead the way.", voices["mio"]).duration
    spans = [ShotSpan("sh01", 0.0, first + 0.6)]
    lines = [line(voices, "sh01", 0, "mio", "Lead the way."), line(voices, "sh01", 1, "hoshi", "Kyu, kyu!")]
    result = place_dialogue(spans, lines, cache, 5.0, tmp_path / "d.wav", gap=0.25)
    assert isinstance(result, DialogueDoesNotFit)
    assert result.misfits[0].index == 1 and result.misfits[0].available == pytest.approx(0.35)


def test_a_scene_without_dialogue_is_a_silent_track(cache, tmp_path: Path) -> None:
    track = place_dialogue([ShotSpan("sh01", 0, 2)], [], cache, 2.0, tmp_path / "d.wav")
    samples, _ = read_wav(track.path)
    assert track.lines == () and track.cues == () and not samples.any() and len(samples) == 2 * SAMPLE_RATE


def test_dialogue_for_an_unknown_shot_is_an_error(cache, voices, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shots \['sh09'\] that are not in the scene"):
        place_dialogue([ShotSpan("sh01", 0, 2)], [line(voices, "sh09", 0, "mio", "Hi.")], cache, 2.0,
                       tmp_path / "d.wav")
