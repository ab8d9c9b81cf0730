"""Helpers shared by the asset modules: metadata a person can read, data versions from file contents."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import numpy as np

from anime_pipeline.imaging import data_uri_thumbnail
from anime_pipeline.paths import StoragePaths
from anime_pipeline.storage import sha256_file

ALL = dg.AllPartitionMapping()
REFERENCE_PANEL = "pose-front.png"


def preview(image: np.ndarray, caption: str = "preview") -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{caption}]({data_uri_thumbnail(image)})")


def content_version(paths: Iterable[Path]) -> dg.DataVersion:
    """Data version = hash of the output files, so an identical re-render leaves downstream fresh."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return dg.DataVersion(digest.hexdigest()[:16])


def reference_images(paths: StoragePaths, show: str, slugs: list[str]) -> dict[str, Path]:
    """IP-Adapter references: each character's front pose from its reference sheet, where one exists."""
    found = {slug: paths.reference(f"{show}/{slug}") / REFERENCE_PANEL for slug in slugs}
    return {slug: path for slug, path in found.items() if path.exists()}


def require_upstream(owner: str, asset: str, outputs: dict[str, Path]) -> None:
    """Fail the step, naming the upstream partitions to materialize, when any of their outputs is missing."""
    missing = [key for key, path in outputs.items() if not path.exists()]
    if missing:
        raise dg.Failure(f"{owner} needs {asset} for {missing}: materialize it first")


def gate(name: str, passed: bool, value: float | int | str, threshold: float | int | str, backend: str,
         **extra: object) -> dg.AssetCheckResult:
    if isinstance(value, float):
        value = round(value, 4)
    metadata = {"value": value, "threshold": threshold, "backend": backend, **extra}
    return dg.AssetCheckResult(check_name=name, passed=bool(passed), metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


def blocking(asset: str, partitions_def: dg.PartitionsDefinition, *names: str,
             descriptions: dict[str, str] | None = None) -> list[dg.AssetCheckSpec]:
    """Blocking gate specs, partitioned like their asset so each partition keeps its own check history."""
    descriptions = descriptions or {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # partitioned checks are a preview API in 1.13
        return [dg.AssetCheckSpec(n, asset=asset, blocking=True, description=descriptions.get(n),
                                  partitions_def=partitions_def) for n in names]
