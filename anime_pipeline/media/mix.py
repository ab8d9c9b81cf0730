"""The scene mix: dialogue at 100 %, the music bed at 30 % with fades, ducked under the dialogue,
loudness-normalised to a target and then measured on the encoded result.

Three ffmpeg passes, all audio-only:
1. the pre-mix: music looped and cut to the scene, faded, sidechain-compressed by the
   dialogue, summed with it and measured (EBU R128); the ducked music is also written as a
   stem, for the `dialogue_audible` gate;
2. the gain to the target, a plain gain whenever the true peak allows it, a gain into a peak
   limiter otherwise, then AAC;
3. ebur128 on the encoded file: the number the `loudness` gate judges is the file's own.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anime_pipeline.media.audio_config import Audio
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, checked_output, mp4_output_args, run_ffmpeg
from anime_pipeline.media.loudness import (AudibilityVerdict, Loudness, LoudnessVerdict, audibility, loudness_verdict,
                                           measure, parse_summary)
from anime_pipeline.media.pcm import read_wav
from anime_pipeline.storage import atomic_path

# AAC's own overshoot: aim this far below the true-peak limit so the encoded file stays under it.
PEAK_MARGIN_DB = 0.5
LIMITER_MARGIN_DB = 1.0  # a sample-peak limiter lets peaks between samples through; they stay below this
# Every scene mix starts and ends with this fade, so the episode's stream-copied joins (aac_splice)
# fall on silence: longer than the 1.5 AAC packets a join may add or drop.
EDGE_FADE = 0.05
STEREO = f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"


@dataclass(frozen=True)
class MixResult:
    path: Path  # AAC in MP4 (.m4a), exactly `duration` long
    duration: float
    loudness: Loudness  # measured on `path`
    loudness_gate: LoudnessVerdict
    dialogue_gate: AudibilityVerdict
    premix: Loudness  # before normalisation
    normalization: str  # what reached the target: a plain gain, or a gain into a peak limiter


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def _duck(settings: Audio) -> str:
    duck = settings.ducking
    threshold = max(0.000976563, 10 ** (duck.threshold_db / 20))  # the filter's smallest threshold
    return (f"sidechaincompress=threshold={threshold:.6f}:ratio={duck.ratio:g}:attack={duck.attack_ms:g}"
            f":release={duck.release_ms:g}:level_sc=1:makeup=1")


def _music_chain(duration: float, settings: Audio) -> str:
    fade = min(settings.music_fade, duration / 2)
    chain = f"[1:a]{STEREO},atrim=end_sample={_samples(duration)},volume={settings.music_volume:g}"
    if fade > 0:
        chain += f",afade=t=in:st=0:d={fade:.6f},afade=t=out:st={duration - fade:.6f}:d={fade:.6f}"
    return chain


def _premix(dialogue: Path, music: Path | None, duration: float, settings: Audio, work: Path
            ) -> tuple[Path, Path, Loudness]:
    """The summed pre-mix (float WAV), the ducked-music stem (16-bit WAV; silence without music)
    and the pre-mix's loudness, measured on the way in the same pass."""
    premix, stem = work / "premix.wav", work / "music_stem.wav"
    total = _samples(duration)
    speech = f"[0:a]{STEREO},apad,atrim=end_sample={total}"
    inputs = ["-i", str(dialogue)]
    if music is None:
        chains = [f"{speech}[raw]", f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={total}[stem]"]
    else:
        # Loop the bed forever and let atrim cut it: the bed may be shorter than the scene.
        inputs += ["-stream_loop", "-1", "-i", str(music)]
        chains = [f"{speech},asplit=2[d][key]", f"{_music_chain(duration, settings)}[m]",
                  f"[m][key]{_duck(settings)},asplit=2[ducked][stem]",
                  "[d][ducked]amix=inputs=2:duration=first:normalize=0[raw]"]
    chains.append("[raw]ebur128=peak=true:framelog=quiet[pre]")
    outputs = ["-map", "[pre]", "-c:a", "pcm_f32le", "-f", "wav", "-y", str(premix),
               "-map", "[stem]", "-c:a", "pcm_s16le", "-f", "wav", "-y", str(stem)]
    proc = run_ffmpeg([*inputs, "-filter_complex", ";".join(chains), *outputs], premix, "pre-mix failed",
                      loglevel="info")
    return premix, stem, parse_summary(proc.stderr.decode(errors="replace"), premix)


def _gain(measured: Loudness, settings: Audio) -> float:
    return settings.loudness.integrated_lufs - measured.integrated_lufs


def normalize(premix: Path, measured: Loudness, settings: Audio, work: Path) -> tuple[Path, str, str]:
    """(the file to encode, the filter chain that brings it to the target, what was done).

    A plain gain when the true peak allows it. Otherwise the gain goes into a peak limiter,
    which takes a little loudness off the peaks it holds down; the limited signal is measured
    and the shortfall made up with a final gain, small enough to stay inside the limiter's margin.
    """
    gain = _gain(measured, settings)
    ceiling = settings.loudness.true_peak_dbtp - PEAK_MARGIN_DB
    if measured.true_peak_dbtp + gain <= ceiling:
        return premix, f"volume={gain:.2f}dB", f"linear gain {gain:+.1f} dB"
    # The limiter works on samples; the margin leaves room for peaks between them.
    limit = ceiling - LIMITER_MARGIN_DB
    limiter = f"alimiter=limit={10 ** (limit / 20):.5f}:attack=5:release=80:level=0:latency=1"
    limited = work / "limited.wav"
    proc = run_ffmpeg(["-i", str(premix), "-af", f"volume={gain:.2f}dB,{limiter},ebur128=peak=true:framelog=quiet",
                       "-c:a", "pcm_f32le", "-f", "wav", "-y", str(limited)], limited, "peak limiting failed",
                      loglevel="info")
    after = parse_summary(proc.stderr.decode(errors="replace"), limited)
    makeup = min(LIMITER_MARGIN_DB / 2, max(-LIMITER_MARGIN_DB, _gain(after, settings)))
    return limited, f"volume={makeup:.2f}dB", f"gain {gain:+.1f} dB into a {limit:.1f} dBFS peak limiter, " \
                                               f"then {makeup:+.1f} dB"


def _encode(source: Path, out: Path, duration: float, chain: str) -> None:
    fade_out = max(0.0, duration - EDGE_FADE)
    edges = f"afade=t=in:d={EDGE_FADE}:curve=hsin,afade=t=out:st={fade_out:.6f}:d={EDGE_FADE}:curve=hsin"
    with atomic_path(out) as tmp:
        args = ["-i", str(source), "-map", "0:a:0", "-af",
                f"{chain},{STEREO},atrim=end_sample={_samples(duration)},{edges}"]
        run_ffmpeg([*args, *mp4_output_args(tmp)], out, "loudness normalisation failed")
        checked_output(tmp, out, None)


def _mono(path: Path) -> np.ndarray:
    samples, _ = read_wav(path)
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def mix_scene(duration: float, out: Path, dialogue: Path, segments: tuple[tuple[float, float], ...],
              music: Path | None, settings: Audio, what: str) -> MixResult:
    """Mix `dialogue` (the 16-bit speech stem, spoken at `segments`) over `music` into `out` (.m4a)."""
    out = Path(out)
    if duration <= 0:
        raise ValueError(f"{what}: duration must be positive, got {duration}")
    with tempfile.TemporaryDirectory(prefix="mix-") as folder:
        premix, stem, before = _premix(Path(dialogue), music, duration, settings, Path(folder))
        source, chain, mode = (premix, "anull", "none (silent)") if before.silent else \
            normalize(premix, before, settings, Path(folder))
        _encode(source, out, duration, chain)
        audible = audibility(_mono(Path(dialogue)), _mono(stem), segments, settings.dialogue_margin_db)
    loudness = measure(out)
    verdict = loudness_verdict(loudness, settings.loudness, what)
    return MixResult(out, duration, loudness, verdict, audible, before, mode)
