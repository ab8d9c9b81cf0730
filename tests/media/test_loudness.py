"""EBU R128 loudness with ffmpeg's ebur128, and the loudness / dialogue_audible verdicts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config.schema import LoudnessTarget
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, MediaError
from anime_pipeline.media.loudness import (
    Loudness,
    audibility,
    loudness_verdict,
    measure,
    parse_summary,
)
from anime_pipeline.media.pcm import write_wav

SUMMARY = """[Parsed_ebur128_0 @ 0x7f] Summary:

  Integrated loudness:
    I:         -16.2 LUFS
    Threshold: -26.5 LUFS

  Loudness range:
    LRA:         3.1 LU
    Threshold:  -36.6 LUFS
    LRA low:    -18.9 LUFS
    LRA high:   -15.8 LUFS

  True peak:
    Peak:        -1.4 dBFS
"""


def sine(path: Path, amplitude: float, seconds: float = 4.0, freq: float = 997.0) -> Path:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return write_wav(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32))


def test_parses_the_summary() -> None:
    assert parse_summary("noise\n" + SUMMARY, Path("x.m4a")) == Loudness(-16.2, -26.5, 3.1, -1.4)
    with pytest.raises(MediaError, match="no ebur128 summary"):
        parse_summary("nothing here", Path("x.m4a"))


def test_measures_a_known_tone(tmp_path: Path) -> None:
    # BS.1770: a 997 Hz sine at full scale in one channel reads −3.01 LUFS; amplitude 0.1 is −20 dB below.
    loud = measure(sine(tmp_path / "tone.wav", 0.1))
    assert loud.integrated_lufs == pytest.approx(-23.0, abs=0.2)
    assert loud.true_peak_dbtp == pytest.approx(-20.0, abs=0.2)
    assert loud.range_lu == pytest.approx(0.0, abs=0.2)


def test_silence_reads_as_the_floor(tmp_path: Path) -> None:
    loud = measure(write_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE * 2, dtype=np.float32)))
    assert loud.silent and loud.true_peak_dbtp == -math.inf


@pytest.mark.parametrize("measured,passed,words", [
    (Loudness(-16.4, -26, 3, -1.3), True, []),
    (Loudness(-17.2, -27, 3, -1.5), False, ["-1.2 LU from the -16 LUFS target"]),
    (Loudness(-16.0, -26, 3, -0.6), False, ["true peak -0.6 dBTP is above the -1 dBTP limit"]),
])
def test_loudness_verdict(measured, passed, words) -> None:
    verdict = loudness_verdict(measured, LoudnessTarget(), "scene sc01")
    assert verdict.passed is passed
    assert verdict.message.startswith(f"scene sc01: {measured.integrated_lufs:.1f} LUFS integrated")
    assert all(word in verdict.message for word in words)


def test_broadcast_target_is_configurable() -> None:
    target = LoudnessTarget(integrated_lufs=-23, true_peak_dbtp=-1, tolerance_lu=0.5)
    assert loudness_verdict(Loudness(-23.4, -33, 4, -6), target, "ep").passed
    assert not loudness_verdict(Loudness(-22.4, -33, 4, -6), target, "ep").passed


def test_audibility_compares_speech_and_music_inside_each_line() -> None:
    t = np.arange(4 * SAMPLE_RATE) / SAMPLE_RATE
    speech = np.zeros_like(t, dtype=np.float32)
    speech[SAMPLE_RATE: 2 * SAMPLE_RATE] = 0.3 * np.sin(2 * np.pi * 220 * t[:SAMPLE_RATE])
    music = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # 29.5 dB under the speech
    verdict = audibility(speech, music, [(1.0, 2.0)], required_db=10)
    assert verdict.passed and verdict.worst_margin_db == pytest.approx(29.54, abs=0.05)
    loud_music = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    failing = audibility(speech, loud_music, [(1.0, 2.0)], required_db=10)
    assert not failing.passed and "1 of 1 lines stand less than 10 dB above the music: 1.00-2.00 s at 3.5 dB" \
        in failing.message
    assert audibility(speech, np.zeros_like(music), [(1.0, 2.0)], 10).worst_margin_db == math.inf
    assert audibility(speech, music, [], 10).message == "no dialogue in this mix"
