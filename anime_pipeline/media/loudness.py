"""Loudness measured with ffmpeg's ebur128 filter (EBU R128 / ITU-R BS.1770), and the two audio gates.

`measure` parses the filter's summary: integrated loudness, its gating threshold, loudness
range and true peak (4× oversampled). `loudness_verdict` judges a measurement against the
target; `audibility` checks that every spoken line stands above the ducked music bed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anime_pipeline.media.audio_config import LoudnessTarget
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, MediaError, run_ffmpeg
from anime_pipeline.media.pcm import rms_db

SILENT_LUFS = -70.0  # ebur128's floor: what it reports for silence
_SUMMARY = re.compile(
    r"Integrated loudness:\s*I:\s*(?P<i>-?[\d.]+|-inf) LUFS\s*Threshold:\s*(?P<ti>-?[\d.]+|-inf) LUFS\s*"
    r"Loudness range:\s*LRA:\s*(?P<lra>-?[\d.]+) LU\s*Threshold:\s*(?P<tl>-?[\d.]+|-inf) LUFS\s*"
    r"LRA low:\s*(?P<low>-?[\d.]+|-inf) LUFS\s*LRA high:\s*(?P<high>-?[\d.]+|-inf) LUFS\s*"
    r"True peak:\s*Peak:\s*(?P<tp>-?[\d.]+|-inf|inf) dBFS",
    re.S,
)


@dataclass(frozen=True)
class Loudness:
    integrated_lufs: float
    threshold_lufs: float  # the relative gate used for the integrated value
    range_lu: float
    true_peak_dbtp: float

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= SILENT_LUFS


def parse_summary(stderr: str, path: Path) -> Loudness:
    """The last ebur128 summary in ffmpeg's log."""
    matches = list(_SUMMARY.finditer(stderr))
    if not matches:
        raise MediaError(path, "ffmpeg printed no ebur128 summary", stderr)
    found = matches[-1]
    return Loudness(float(found["i"]), float(found["ti"]), float(found["lra"]), float(found["tp"]))


def measure(path: Path | str, stream: str = "0:a:0") -> Loudness:
    """EBU R128 loudness of an audio stream of `path`."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    proc = run_ffmpeg(["-i", str(path), "-map", stream, "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"],
                      path, "loudness measurement failed", loglevel="info")
    return parse_summary(proc.stderr.decode(errors="replace"), path)


@dataclass(frozen=True)
class LoudnessVerdict:
    """Gate `loudness`: integrated within ±tolerance of the target and true peak at or below the limit."""

    passed: bool
    measured: Loudness
    target: LoudnessTarget
    message: str


def loudness_verdict(measured: Loudness, target: LoudnessTarget, what: str) -> LoudnessVerdict:
    off = measured.integrated_lufs - target.integrated_lufs
    problems = []
    if abs(off) > target.tolerance_lu:
        problems.append(f"integrated {measured.integrated_lufs:.1f} LUFS is {off:+.1f} LU from the "
                        f"{target.integrated_lufs:g} LUFS target (±{target.tolerance_lu:g} LU allowed)")
    if measured.true_peak_dbtp > target.true_peak_dbtp:
        problems.append(f"true peak {measured.true_peak_dbtp:.1f} dBTP is above the {target.true_peak_dbtp:g} dBTP "
                        "limit")
    summary = (f"{what}: {measured.integrated_lufs:.1f} LUFS integrated, true peak {measured.true_peak_dbtp:.1f} dBTP, "
               f"LRA {measured.range_lu:.1f} LU")
    return LoudnessVerdict(not problems, measured, target, summary + ("; " + "; ".join(problems) if problems else ""))


@dataclass(frozen=True)
class SegmentAudibility:
    start: float
    end: float
    speech_db: float
    music_db: float

    @property
    def margin_db(self) -> float:
        if math.isinf(self.music_db):
            return math.inf
        return self.speech_db - self.music_db


@dataclass(frozen=True)
class AudibilityVerdict:
    """Gate `dialogue_audible`: in each spoken segment, the speech stem's RMS stands at least
    `required_db` above the ducked music stem's RMS over the same samples (both stems at their
    level in the mix, before the common loudness gain, which changes neither difference)."""

    passed: bool
    required_db: float
    segments: tuple[SegmentAudibility, ...]
    message: str

    @property
    def worst_margin_db(self) -> float:
        return min((s.margin_db for s in self.segments), default=math.inf)


def audibility(speech: np.ndarray, music: np.ndarray, segments: Sequence[tuple[float, float]], required_db: float,
               rate: int = SAMPLE_RATE) -> AudibilityVerdict:
    """`speech` and `music`: mono float stems of the mix, sample-aligned."""
    measured = []
    for start, end in segments:
        first, last = round(start * rate), round(end * rate)
        measured.append(SegmentAudibility(start, end, rms_db(speech[first:last]), rms_db(music[first:last])))
    low = [s for s in measured if s.margin_db < required_db]
    worst = min(measured, key=lambda s: s.margin_db, default=None)
    if worst is None:
        message = "no dialogue in this mix"
    elif low:
        where = ", ".join(f"{s.start:.2f}-{s.end:.2f} s at {s.margin_db:.1f} dB" for s in low[:5])
        message = f"{len(low)} of {len(measured)} lines stand less than {required_db:g} dB above the music: {where}"
    else:
        message = f"every line stands at least {worst.margin_db:.1f} dB above the music (required {required_db:g} dB)"
    return AudibilityVerdict(not low, required_db, tuple(measured), message)
