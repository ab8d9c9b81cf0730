"""Offline speech on the CPU: libespeak-ng from the `espeakng-loader` wheel, driven through ctypes.

No system package and no download (protocols-more.md §1.2). The library keeps global state,
so one engine per process is initialised lazily and every synthesis holds its lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
RATE, VOLUME, PITCH = 1, 2, 3
EE_OK, EE_NOT_FOUND = 0, 2
MAX_TEXT_BYTES = 16_384  # one dialogue line; a whole script in one call is a caller error

_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or could not speak a line; the message names the voice or text."""


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # int16 mono
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class _Engine:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # a dependency of the package; missing means a broken install
            raise EspeakError("the espeakng-loader package is not installed (pip install espeakng-loader)") from exc
        self.data_path = Path(espeakng_loader.get_data_path())
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._declare()
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(),
                                                      INIT_DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data at {self.data_path}")
        self.version = self.lib.espeak_Info(None).decode()
        self._chunks: list[bytes] = []
        # ctypes keeps no reference of its own: the callback must live as long as the library uses it.
        self._callback = _Callback(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()
        self.variants = frozenset(p.name for p in (self.data_path / "voices" / "!v").iterdir())

    def _declare(self) -> None:
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, _events: ctypes.c_void_p) -> int:
        if wav and count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0

    def speak(self, text: str, voice: str, pitch: int, rate: int) -> Speech:
        encoded = text.encode("utf-8")
        if not text.strip():
            raise EspeakError("cannot speak an empty line")
        if len(encoded) > MAX_TEXT_BYTES:
            raise EspeakError(f"a line of {len(encoded)} bytes is longer than {MAX_TEXT_BYTES}: {text[:60]!r}…")
        with self.lock:
            self._select(voice)
            self.lib.espeak_SetParameter(RATE, rate, 0)
            self.lib.espeak_SetParameter(PITCH, pitch, 0)
            self._chunks = []
            status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE,
                                           None, None)
            self.lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != EE_OK:
            raise EspeakError(f"espeak_Synth failed (status {status}) for voice {voice!r}: {text[:60]!r}")
        samples = np.frombuffer(b"".join(chunks), dtype="<i2").copy()
        if not samples.size:
            raise EspeakError(f"espeak-ng produced no audio for voice {voice!r}: {text[:60]!r}")
        return Speech(samples, self.sample_rate)

    def _select(self, voice: str) -> None:
        language, _, variant = voice.partition("+")
        if variant and variant not in self.variants:
            raise EspeakError(f"espeak-ng has no voice variant {variant!r} (voice {voice!r}); "
                              f"known variants include {', '.join(sorted(self.variants)[:12])}, …")
        if self.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise EspeakError(f"espeak-ng has no voice for language {language!r} (voice {voice!r})")


@cache
def engine() -> _Engine:
    return _Engine()


def speak(text: str, voice: str = "en", pitch: int = 50, rate: int = 175) -> Speech:
    """Synthesize one line: int16 mono samples at espeak-ng's rate (22050 Hz)."""
    return engine().speak(text, voice, pitch, rate)


def version() -> str:
    return engine().version
