"""A music bed per scene: procedural (embedded), ACE-Step, or a track from the music folder.

`MusicSource.bed` caches by the fingerprint the caller gives (the scene's: mood, time of
day, duration, backend settings), and falls back to the procedural bed only when the show
allows it, saying so in the result.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from anime_pipeline.media import procedural_music
from anime_pipeline.config.checks import outside_problem
from anime_pipeline.media.audio_config import MusicBackendName
from anime_pipeline.media.ffmpeg import MediaError, probe
from anime_pipeline.media.pcm import write_wav
from anime_pipeline.services.ace_step import MAX_DURATION, MIN_DURATION, AceStepClient, AceStepError, MusicTask
from anime_pipeline.storage import write_bytes, write_text

SEED_MODULUS = 2**31 - 1
FINGERPRINT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class MusicError(RuntimeError):
    """No bed for a scene: names the scene, the backend and the reason."""


@dataclass(frozen=True)
class MusicRequest:
    scene: str  # the scene's key, for messages
    mood: str
    time_of_day: str
    duration: float
    fingerprint: str
    track: str | None = None  # `music:` of the scene, for the file backend

    def __post_init__(self) -> None:
        if not FINGERPRINT.match(self.fingerprint):
            raise ValueError(f"scene {self.scene}: music fingerprint {self.fingerprint!r} must be 1-128 letters, "
                             "digits, '-' or '_' (it names cache files)")
        if self.duration <= 0:
            raise ValueError(f"scene {self.scene}: a music bed needs a positive duration, got {self.duration}")


@dataclass(frozen=True)
class MusicBed:
    path: Path
    backend: MusicBackendName
    label: str
    embedded: bool
    seed: str | None = None
    prompt: str | None = None
    arrangement: str | None = None  # the procedural bed's feel, key and chords
    fallback_reason: str | None = None  # set when this bed replaces a failed backend's


class MusicBackend(Protocol):
    name: MusicBackendName
    label: str
    embedded: bool

    def compose(self, request: MusicRequest, out: Path) -> MusicBed: ...


class ProceduralMusic:
    name: MusicBackendName = "procedural"
    label = "embedded procedural music bed (pad, bass and bells from the scene's mood and time of day; CPU)"
    embedded = True

    def compose(self, request: MusicRequest, out: Path) -> MusicBed:
        samples, played = procedural_music.render(request.mood, request.time_of_day, request.duration,
                                                  request.fingerprint)
        write_wav(out, samples)
        summary = f"{played.feel} / {played.light}: {played.key}, {played.tempo:g} bpm, {' – '.join(played.chords)}"
        return MusicBed(out, self.name, self.label, True, seed=str(played.seed), arrangement=summary)


def ace_step_prompt(mood: str, time_of_day: str) -> str:
    """ACE-Step's caption: tags describing an instrumental bed for the scene."""
    tags = ["instrumental anime background score"]
    tags += [mood.strip()] if mood.strip() else ["gentle"]
    tags += [f"{time_of_day.strip()} atmosphere"] if time_of_day.strip() else []
    return ", ".join([*tags, "soft", "no vocals"])


def seed_for(fingerprint: str) -> int:
    return int.from_bytes(hashlib.sha256(f"ace_step|{fingerprint}".encode()).digest()[:4], "big") % SEED_MODULUS


class AceStepMusic:
    name: MusicBackendName = "ace_step"
    embedded = False

    def __init__(self, client: AceStepClient, device: str) -> None:
        self.client = client
        self.label = f"ACE-Step 1.5 API server {client.url} ({device})"

    def compose(self, request: MusicRequest, out: Path) -> MusicBed:
        seed = seed_for(request.fingerprint)
        duration = min(MAX_DURATION, max(MIN_DURATION, request.duration))  # the mix trims or loops the rest
        task = MusicTask(ace_step_prompt(request.mood, request.time_of_day), duration, seed)
        try:
            track = self.client.generate(task)
        except AceStepError as exc:
            raise MusicError(f"scene {request.scene}: {exc}") from exc
        target = out.with_suffix(f".{track.format}")
        write_bytes(target, track.data)
        return MusicBed(target, self.name, self.label, False, seed=track.seed or str(seed), prompt=task.prompt)


class FileMusic:
    name: MusicBackendName = "file"
    embedded = False

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.label = f"music track from {self.folder}"

    def resolve(self, request: MusicRequest) -> Path:
        if not request.track:
            raise MusicError(f"scene {request.scene}: music backend 'file' needs the scene's music: track name")
        # Checked again here, not only when the show was loaded: a link may have changed since.
        problem = outside_problem(request.track, self.folder)
        if problem:
            raise MusicError(f"scene {request.scene}: music track {request.track!r} {problem}")
        resolved = (self.folder / request.track).resolve()
        if not resolved.is_file():
            raise MusicError(f"scene {request.scene}: music track {request.track!r} not found in {self.folder}")
        return resolved

    def compose(self, request: MusicRequest, out: Path) -> MusicBed:
        track = self.resolve(request)
        try:
            info = probe(track)
        except MediaError as exc:
            raise MusicError(f"scene {request.scene}: music track {request.track!r} is not playable: {exc}") from exc
        if info.audio_codec is None:
            raise MusicError(f"scene {request.scene}: music track {request.track!r} has no audio stream")
        return MusicBed(track, self.name, f"{self.label}: {request.track}", False)


class MusicSource:
    """`backend`'s beds, cached under `cache_dir`; `fallback` (procedural) stands in for a failed
    non-embedded backend only when given."""

    def __init__(self, backend: MusicBackend, cache_dir: Path, fallback: ProceduralMusic | None = None) -> None:
        self.backend, self.cache_dir, self.fallback = backend, Path(cache_dir), fallback

    def bed(self, request: MusicRequest) -> MusicBed:
        if isinstance(self.backend, FileMusic):  # the file is its own cache
            return self.backend.compose(request, self.cache_dir)
        cached = self._cached(self.backend.name, request.fingerprint)
        if cached:
            return cached
        try:
            return self._compose(self.backend, request)
        except MusicError as exc:
            if self.fallback is None or self.backend.embedded:
                raise
            fallback = self._cached(self.fallback.name, request.fingerprint) or self._compose(self.fallback, request)
            return replace(fallback, fallback_reason=f"{self.backend.name} failed: {exc}")

    def _compose(self, backend: MusicBackend, request: MusicRequest) -> MusicBed:
        bed = backend.compose(request, self.cache_dir / f"{backend.name}-{request.fingerprint}.wav")
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(bed).items()}
        write_text(self._record(backend.name, request.fingerprint), json.dumps(record, indent=2) + "\n")
        return bed

    def _record(self, backend: str, fingerprint: str) -> Path:
        return self.cache_dir / f"{backend}-{fingerprint}.json"

    def _cached(self, backend: str, fingerprint: str) -> MusicBed | None:
        record = self._record(backend, fingerprint)
        try:
            fields = json.loads(record.read_text(encoding="utf-8"))
            bed = MusicBed(**{**fields, "path": Path(fields["path"])})
        except (OSError, ValueError, TypeError, KeyError):
            return None  # absent or damaged: made again
        return bed if bed.path.is_file() else None
