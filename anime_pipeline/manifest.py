"""Manifests: the full parameters of every generated artifact (SPEC §6), as typed models written atomically.

Each production step declares its manifest as a subclass of `Manifest`; the same type comes back
whether the step produced the artifact now or kept it because nothing that determines it changed.
A manifest on disk that does not parse as its model (written by an older version, or edited by
hand) is not reused: the step produces the artifact again.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anime_pipeline import __version__
from anime_pipeline.storage import read_json, sha256_file, write_json

MANIFEST_NAME = "manifest.json"


class Record(BaseModel):
    """A typed part of a manifest: unknown keys are errors, values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(Record):
    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: Path, relative_to: Path) -> FileEntry:
        return cls(path=str(path.relative_to(relative_to)), sha256=sha256_file(path), bytes=path.stat().st_size)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Manifest(Record):
    """What every artifact records: which step made it, for which entity, on which backend and device."""

    kind: str
    key: str
    backend: str
    device: str
    pipeline_version: str = __version__
    host: str = Field(default_factory=platform.node)
    created_at: str = Field(default_factory=_now)
    inputs_fingerprint: str | None = None  # hash of everything that determines the artifact
    files: list[FileEntry] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)

    def write(self, folder: Path) -> Path:
        return write_json(folder / MANIFEST_NAME, self.model_dump(mode="json"))

    @classmethod
    def load(cls, folder: Path) -> Self | None:
        """The folder's manifest, or None when there is none or it is not a valid `cls`."""
        path = folder / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            return cls.model_validate(read_json(path))
        except (ValidationError, ValueError):
            return None

    @classmethod
    def require(cls, folder: Path, what: str) -> Self:
        manifest = cls.load(folder)
        if manifest is None:
            raise MissingArtifact(f"{what} has no valid {MANIFEST_NAME} in {folder}: materialize it first")
        return manifest

    def kept_if(self, folder: Path, fingerprint: str) -> bool:
        """Whether this manifest's artifact can be kept: made from exactly these inputs, files intact."""
        return self.inputs_fingerprint == fingerprint and all((folder / f.path).exists() for f in self.files)


class MissingArtifact(FileNotFoundError):
    """An upstream artifact a step needs is not there (never materialized, or removed)."""


class Timings:
    """Wall time per named phase, recorded into manifests and metadata."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)

