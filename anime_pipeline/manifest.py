"""Manifests: the full parameters of every generated artifact (SPEC §6), written atomically as JSON."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from anime_pipeline import __version__
from anime_pipeline.storage import read_json, sha256_file, write_json

MANIFEST_NAME = "manifest.json"
FINGERPRINT = "inputs_fingerprint"  # hash of everything that determines an output


def base_manifest(kind: str, partition: str, backend: str, device: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "partition": partition,
        "backend": backend,
        "device": device,
        "pipeline_version": __version__,
        "host": platform.node(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
    }


def file_entry(path: Path, relative_to: Path) -> dict[str, Any]:
    return {"path": str(path.relative_to(relative_to)), "sha256": sha256_file(path), "bytes": path.stat().st_size}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    return write_json(folder / MANIFEST_NAME, manifest)


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST_NAME
    return read_json(path) if path.exists() else None


def unchanged(folder: Path, fingerprint: str, output: str) -> dict[str, Any] | None:
    """The folder's manifest when its output exists and was made from exactly these inputs, else None:
    only what changed is made again."""
    manifest = read_manifest(folder)
    if manifest and manifest.get(FINGERPRINT) == fingerprint and (folder / output).exists():
        return manifest
    return None


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
