"""The scene mix on real parts: espeak dialogue over a procedural bed, ducked, normalised, measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config.schema import Audio, Ducking, LoudnessTarget
from anime_pipeline.media.dialogue import (
    DialogueTrack,
    LineRequest,
    ShotSpan,
    place_dialogue,
)
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, probe
from anime_pipeline.media.loudness import measure
from anime_pipeline.media.mix import mix_scene
from anime_pipeline.media.music import MusicRequest, MusicSource, ProceduralMusic
from anime_pipeline.media.pcm import decode, write_wav
from anime_pipeline.media.speech import EspeakSpeech, SpeechCache, assign_voices

DURATION = 6.0


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[DialogueTrack, Path]:
    work = tmp_path_factory.mktemp("mix")
    cache = SpeechCache(EspeakSpeech(), work / "speech")
    voices = assign_voices(cache.backend, [("mio", None), ("hoshi", None)])
    lines = [LineRequest("sh01", 0, "mio", "Mio", "Last bag of the night, Hoshi.", voices["mio"]),
             LineRequest("sh02", 0, "hoshi", "Hoshi", "Kyu!", voices["hoshi"])]
    spans = [ShotSpan("sh01", 0.0, 3.0), ShotSpan("sh02", 3.3, DURATION)]
    track = place_dialogue(spans, lines, cache, DURATION, work / "dialogue.wav")
    bed = MusicSource(ProceduralMusic(), work / "music").bed(MusicRequest("sc", "cosy", "dusk", DURATION, "mixfp"))
    return track, bed.path


def test_default_mix_meets_the_streaming_target(parts, tmp_path: Path) -> None:
    track, bed = parts
    result = mix_scene(DURATION, tmp_path / "audio.m4a", track.path, track.segments, bed, Audio(), "scene sc01")
    assert result.loudness_gate.passed, result.loudness_gate.message
    assert abs(result.loudness.integrated_lufs + 16) <= 1.0 and result.loudness.true_peak_dbtp <= -1.0
    assert result.loudness == measure(result.path)  # the gate judges the encoded file itself
    assert result.dialogue_gate.passed, result.dialogue_gate.message
    assert len(result.dialogue_gate.segments) == 2
    info = probe(result.path)
    assert info.audio_codec == "aac" and info.video_codec is None
    assert len(decode(result.path)) == round(DURATION * SAMPLE_RATE)
    assert result.premix.integrated_lufs < result.loudness.integrated_lufs  # the quiet pre-mix was raised


def test_broadcast_target(parts, tmp_path: Path) -> None:
    track, bed = parts
    settings = Audio(loudness=LoudnessTarget(integrated_lufs=-23.0, true_peak_dbtp=-2.0))
    result = mix_scene(DURATION, tmp_path / "audio.m4a", track.path, track.segments, bed, settings, "scene")
    assert result.loudness_gate.passed and abs(result.loudness.integrated_lufs + 23) <= 1.0
    assert result.normalization.startswith("linear gain")  # at −23 the peaks need no limiter


def test_ducking_lowers_the_bed_under_speech(parts, tmp_path: Path) -> None:
    track, bed = parts
    ducked = mix_scene(DURATION, tmp_path / "a.m4a", track.path, track.segments, bed, Audio(), "s")
    flat = mix_scene(DURATION, tmp_path / "b.m4a", track.path, track.segments, bed,
                     Audio(ducking=Ducking(ratio=1)), "s")
    assert ducked.dialogue_gate.worst_margin_db > flat.dialogue_gate.worst_margin_db + 3


def test_a_bed_too_loud_fails_dialogue_audible(parts, tmp_path: Path) -> None:
    track, bed = parts
    settings = Audio(music_volume=1.0, ducking=Ducking(ratio=1), dialogue_margin_db=20)
    result = mix_scene(DURATION, tmp_path / "a.m4a", track.path, track.segments, bed, settings, "s")
    assert not result.dialogue_gate.passed and "stand less than 20 dB above the music" in result.dialogue_gate.message


def test_the_bed_fades_in_and_loops_under_a_long_scene(tmp_path: Path) -> None:
    short_bed = MusicSource(ProceduralMusic(), tmp_path / "m").bed(MusicRequest("s", "calm", "day", 1.5, "short"))
    silence = write_wav(tmp_path / "silent.wav", np.zeros(round(DURATION * SAMPLE_RATE), dtype=np.float32))
    result = mix_scene(DURATION, tmp_path / "music_only.m4a", silence, (), short_bed.path, Audio(), "s")
    samples = decode(result.path)
    def rms(a, b):
        return float(np.sqrt(np.mean(samples[round(a * SAMPLE_RATE): round(b * SAMPLE_RATE)] ** 2)))
    assert rms(0, 0.05) < 0.1 * rms(2.0, 4.0)  # fade-in
    assert rms(3.5, 4.5) > 0.01  # the 1.5 s bed was looped past its end
    assert result.loudness_gate.passed  # music alone is brought to the target too


def test_dialogue_without_music(parts, tmp_path: Path) -> None:
    track, _ = parts
    result = mix_scene(DURATION, tmp_path / "a.m4a", track.path, track.segments, None, Audio(), "s")
    assert result.loudness_gate.passed and result.dialogue_gate.passed


def test_a_silent_scene_stays_silent_and_fails_loudness(tmp_path: Path) -> None:
    silence = write_wav(tmp_path / "silent.wav", np.zeros(SAMPLE_RATE * 2, dtype=np.float32))
    result = mix_scene(2.0, tmp_path / "a.m4a", silence, (), None, Audio(), "scene sc09")
    assert result.normalization == "none (silent)" and result.loudness.silent
    assert not result.loudness_gate.passed and "scene sc09" in result.loudness_gate.message
