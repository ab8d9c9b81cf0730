"""Speech for dialogue lines: backends, one distinct voice per character, a synthesis cache.

A backend turns (text, voice) into audio bytes in any format ffmpeg decodes. `SpeechCache`
calls it once per hash(text + voice + backend identity) and keeps the line as 48 kHz mono
WAV with the leading and trailing silence trimmed, so that durations and subtitle times are
those of the real speech.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import wave
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from anime_pipeline.media import espeak
from anime_pipeline.media.audio_config import CharacterVoice, SpeechBackendName
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, MediaError
from anime_pipeline.media.pcm import decode, read_wav, write_wav
from anime_pipeline.services.speech import OpenAISpeechClient, SpeechServiceError

SILENCE_THRESHOLD = 10 ** (-45 / 20)  # −45 dBFS: below it, the edge of a clip counts as silence
EDGE_KEEP = 0.02  # seconds kept around the speech, so no consonant is clipped
# espeak-ng's human-sounding variants; the others (robots, whisper, klatt) are deliberate effects.
ESPEAK_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7")
ESPEAK_PITCHES = (35, 45, 55, 65, 75)
ESPEAK_RATE = 165
# OpenAI's six names: every compatible server maps them (openedai-speech lists no voices at all).
OPENAI_VOICES = ("alloy", "echo", "fable", "onyx", "nova", "shimmer")


class SpeechError(RuntimeError):
    """A line could not be spoken; names the backend, the voice and the line."""


@dataclass(frozen=True)
class Voice:
    """How a backend speaks for one character. `derived` is True when the pipeline chose it."""

    backend: SpeechBackendName
    name: str
    pitch: int | None = None
    rate: int | None = None
    speed: float | None = None
    derived: bool = False

    @property
    def family(self) -> str:
        """What makes two voices sound different at first hearing: espeak's variant, the server voice."""
        return self.name.partition("+")[2] or self.name

    def key(self) -> str:
        fields = asdict(self)
        fields.pop("derived")
        return json.dumps(fields, sort_keys=True)


class SpeechBackend(Protocol):
    name: SpeechBackendName
    label: str  # for metadata: what produced the audio, and where
    embedded: bool
    identity: str  # part of the cache key: backend plus model or engine version

    def configured(self, voice: CharacterVoice | None) -> Voice | None: ...

    def candidates(self) -> Sequence[Voice]: ...

    def speak(self, text: str, voice: Voice) -> bytes: ...


class EspeakSpeech:
    """Embedded speech: espeak-ng on the CPU (robotic, but real and intelligible)."""

    name: SpeechBackendName = "espeak"
    embedded = True

    def __init__(self) -> None:
        self.identity = f"espeak-ng {espeak.version()}"
        self.label = f"embedded speech: {self.identity} via espeakng-loader (CPU)"

    def configured(self, voice: CharacterVoice | None) -> Voice | None:
        if voice is None or voice.espeak is None:
            return None
        return Voice("espeak", voice.espeak.voice, pitch=voice.espeak.pitch, rate=voice.espeak.rate)

    def candidates(self) -> Sequence[Voice]:
        return [Voice("espeak", f"en+{variant}", pitch=pitch, rate=ESPEAK_RATE, derived=True)
                for variant in ESPEAK_VARIANTS for pitch in ESPEAK_PITCHES]

    def speak(self, text: str, voice: Voice) -> bytes:
        try:
            speech = espeak.speak(text, voice.name, voice.pitch or 50, voice.rate or ESPEAK_RATE)
        except espeak.EspeakError as exc:
            raise SpeechError(f"{self.label}: {exc}") from exc
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(speech.sample_rate)
            out.writeframes(speech.samples.tobytes())
        return buffer.getvalue()


class OpenAITTSSpeech:
    """Any OpenAI-compatible speech server (Kokoro-FastAPI, openedai-speech, LocalAI, …)."""

    name: SpeechBackendName = "openai_tts"
    embedded = False

    def __init__(self, client: OpenAISpeechClient, device: str) -> None:
        self.client = client
        self.identity = f"openai_tts model {client.model}"
        self.label = f"speech server {client.url} (model {client.model}, {device})"

    def configured(self, voice: CharacterVoice | None) -> Voice | None:
        if voice is None or voice.openai_tts is None:
            return None
        return Voice("openai_tts", voice.openai_tts.voice, speed=voice.openai_tts.speed)

    def candidates(self) -> Sequence[Voice]:
        try:
            listed = self.client.voices()
        except SpeechServiceError as exc:
            raise SpeechError(str(exc)) from exc
        return [Voice("openai_tts", name, speed=1.0, derived=True) for name in sorted(listed or OPENAI_VOICES)]

    def speak(self, text: str, voice: Voice) -> bytes:
        try:
            return self.client.synthesize(text, voice.name, voice.speed or 1.0).data
        except SpeechServiceError as exc:
            raise SpeechError(str(exc)) from exc


def _hash_order(slug: str, voices: Iterable[Voice]) -> list[Voice]:
    return sorted(voices, key=lambda v: hashlib.sha256(f"{slug}|{v.key()}".encode()).hexdigest())


def assign_voices(backend: SpeechBackend, characters: Sequence[tuple[str, CharacterVoice | None]]) -> dict[str, Voice]:
    """A voice per character slug: the YAML's where given, else derived from the slug — a voice
    family no other character uses while one is free, then at least a distinct pitch. Characters
    are served in show order, so appending one never changes the others' voices."""
    chosen = {slug: voice for slug, configured in characters if (voice := backend.configured(configured))}
    for slug, _ in characters:
        if slug in chosen:
            continue
        taken = {voice.key() for voice in chosen.values()}
        families = {voice.family for voice in chosen.values()}
        ordered = [v for v in _hash_order(slug, backend.candidates()) if v.key() not in taken]
        if not ordered:
            raise SpeechError(f"{backend.label}: no voice left for character {slug!r}; give it one under voice:")
        chosen[slug] = next((v for v in ordered if v.family not in families), ordered[0])
    return chosen


@dataclass(frozen=True)
class SpokenLine:
    path: Path  # 48 kHz mono 16-bit WAV, silence trimmed
    duration: float
    key: str
    cached: bool


def trim_silence(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > SILENCE_THRESHOLD)
    if not loud.size:
        return samples[:0]
    keep = round(EDGE_KEEP * rate)
    return samples[max(0, loud[0] - keep): loud[-1] + 1 + keep]


class SpeechCache:
    """Lines spoken by `backend`, stored under `folder/<hash>.wav`."""

    def __init__(self, backend: SpeechBackend, folder: Path) -> None:
        self.backend, self.folder = backend, Path(folder)

    def key(self, text: str, voice: Voice) -> str:
        return hashlib.sha256(f"{self.backend.identity}\n{voice.key()}\n{text}".encode()).hexdigest()

    def line(self, text: str, voice: Voice) -> SpokenLine:
        key = self.key(text, voice)
        path = self.folder / key[:2] / f"{key}.wav"
        if path.is_file():
            try:
                samples, rate = read_wav(path)
                return SpokenLine(path, len(samples) / rate, key, cached=True)
            except MediaError:
                pass  # a damaged cache entry is spoken again below
        audio = self.backend.speak(text, voice)
        samples = trim_silence(self._decode(audio, text, voice))
        if not samples.size:
            raise SpeechError(f"{self.backend.label} returned only silence for voice {voice.name!r}: {text[:60]!r}")
        write_wav(path, samples)
        return SpokenLine(path, len(samples) / SAMPLE_RATE, key, cached=False)

    def _decode(self, audio: bytes, text: str, voice: Voice) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="speech-") as work:
            raw = Path(work) / "line.audio"
            raw.write_bytes(audio)
            try:
                return decode(raw)
            except MediaError as exc:
                raise SpeechError(f"{self.backend.label}: the audio for voice {voice.name!r} does not decode "
                                  f"({text[:40]!r}): {exc}") from exc
