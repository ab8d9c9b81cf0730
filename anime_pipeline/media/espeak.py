"""Offline speech on the CPU: libespeak-ng from the `espeakng-loader` wheel, driven through ctypes.

No system package and no download (protocols-more.md §1.2). Each line is spoken by
`espeak_worker.py` in a fresh process: the library's state carries over between syntheses, so
only a fresh process gives the same samples for the same line every time (and lines can be
spoken in parallel, which the library's global state forbids within one process).
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("espeak_worker.py")
MAX_TEXT_BYTES = 16_384  # one dialogue line; a whole script in one call is a caller error
DEADLINE = 60.0  # seconds for one line, process start included
BAD_REQUEST, UNKNOWN_VOICE = 2, 3


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or could not speak a line; the message names the voice or text."""


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # int16 mono
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class _Install:
    library: Path
    data: Path
    version: str
    variants: frozenset[str]


@cache
def _install() -> _Install:
    try:
        import espeakng_loader
    except ImportError as exc:  # a dependency of the package; missing means a broken install
        raise EspeakError("the espeakng-loader package is not installed (pip install espeakng-loader)") from exc
    library, data = Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())
    lib = ctypes.CDLL(str(library))
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    variants = frozenset(p.name for p in (data / "voices" / "!v").iterdir())
    return _Install(library, data, lib.espeak_Info(None).decode(), variants)


def version() -> str:
    return _install().version


def check_voice(voice: str) -> None:
    language, _, variant = voice.partition("+")
    known = _install().variants
    if variant and variant not in known:
        raise EspeakError(f"espeak-ng has no voice variant {variant!r} (voice {voice!r}); "
                          f"known variants include {', '.join(sorted(known)[:12])}, …")


def speak(text: str, voice: str = "en", pitch: int = 50, rate: int = 175) -> Speech:
    """Synthesize one line: int16 mono samples at espeak-ng's rate (22050 Hz)."""
    encoded = text.encode("utf-8")
    if not text.strip():
        raise EspeakError("cannot speak an empty line")
    if len(encoded) > MAX_TEXT_BYTES:
        raise EspeakError(f"a line of {len(encoded)} bytes is longer than {MAX_TEXT_BYTES}: {text[:60]!r}…")
    check_voice(voice)
    install = _install()
    request = json.dumps({"library": str(install.library), "data": str(install.data), "text": text, "voice": voice,
                          "pitch": pitch, "rate": rate}).encode()
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", str(WORKER)], input=request, capture_output=True,
                              timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        raise EspeakError(f"espeak-ng took over {DEADLINE:g} s for voice {voice!r}: {text[:60]!r}") from None
    reason = proc.stderr.decode(errors="replace").strip()
    if proc.returncode == UNKNOWN_VOICE:
        raise EspeakError(f"espeak-ng has no voice for language {voice.partition('+')[0]!r} (voice {voice!r})")
    if proc.returncode != 0 or len(proc.stdout) < 4:
        raise EspeakError(f"espeak-ng failed for voice {voice!r} (exit {proc.returncode}): "
                          f"{reason.splitlines()[-1] if reason else 'no output'}")
    samples = np.frombuffer(proc.stdout[4:], dtype="<i2").copy()
    if not samples.size:
        raise EspeakError(f"espeak-ng produced no audio for voice {voice!r}: {text[:60]!r}")
    return Speech(samples, int.from_bytes(proc.stdout[:4], "little"))
