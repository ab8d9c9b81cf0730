"""Audio as numpy arrays: decode any file ffmpeg reads, write and read 16-bit WAV atomically.

The speech, music and mix code work on float32 samples in [-1, 1] at the pipeline's rate;
WAV is their interchange format because it is exact and needs no encoder.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from anime_pipeline.media.ffmpeg import SAMPLE_RATE, MediaError, run_ffmpeg
from anime_pipeline.storage import atomic_path

INT16_SCALE = 32767.0


def decode(path: Path | str, channels: int = 1, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The file's first audio stream as float32 at `rate`: shape (n,) for mono, (n, channels) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    args = ["-i", str(path), "-map", "0:a:0", "-f", "f32le", "-ac", str(channels), "-ar", str(rate), "pipe:1"]
    proc = run_ffmpeg(args, path, "cannot decode audio")
    samples = np.frombuffer(proc.stdout, dtype="<f4")
    if not samples.size:
        raise MediaError(path, "has no audio samples")
    return samples if channels == 1 else samples.reshape(-1, channels)


def to_int16(samples: np.ndarray) -> np.ndarray:
    return np.round(np.clip(samples, -1.0, 1.0) * INT16_SCALE).astype("<i2")


def write_wav(path: Path | str, samples: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Float samples (n,) or (n, channels) as 16-bit PCM WAV, written under a temporary name first."""
    path = Path(path)
    frames = to_int16(samples) if samples.dtype != np.int16 else samples
    channels = 1 if frames.ndim == 1 else frames.shape[1]
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(np.ascontiguousarray(frames).tobytes())
    return path


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """A 16-bit WAV written by `write_wav`: float32 samples and the sample rate."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as src:
            if src.getsampwidth() != 2:
                raise MediaError(path, f"is {8 * src.getsampwidth()}-bit; expected 16-bit PCM")
            channels, rate = src.getnchannels(), src.getframerate()
            data = src.readframes(src.getnframes())
    except (wave.Error, EOFError, FileNotFoundError) as exc:
        raise MediaError(path, f"is not a readable WAV file ({exc})") from exc
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / INT16_SCALE
    return (samples if channels == 1 else samples.reshape(-1, channels)), rate


def rms_db(samples: np.ndarray) -> float:
    """RMS level in dBFS (−inf for digital silence)."""
    if not samples.size:
        return float("-inf")
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    return float(10 * np.log10(power)) if power > 0 else float("-inf")
