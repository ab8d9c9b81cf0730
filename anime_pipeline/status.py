"""`anime-pipeline status`: per character and per shot, what is materialized and how its gates went."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter

from anime_pipeline.config import Project
from anime_pipeline.assets.phases import GATES
from anime_pipeline.definitions import CHARACTER_ASSETS



def _materialized(instance: dg.DagsterInstance, asset: str, partition: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1).records
    return bool(records)


def _gates(instance: dg.DagsterInstance, asset: str, partition: str) -> str:
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for name in GATES[asset]]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        keys, partition_filter=PartitionKeyFilter(key=partition))
    parts = []
    for key in keys:
        record = latest.get(key)
        if record is None or record.event is None:
            parts.append(f"{key.name} –")
            continue
        evaluation = record.event.dagster_event.event_specific_data
        value = evaluation.metadata.get("value")
        shown = f"={value.value}" if value is not None else ""
        parts.append(f"{key.name}{shown} {'✓' if evaluation.passed else '✗'}")
    return ", ".join(parts)


def _line(instance: dg.DagsterInstance, asset: str, partition: str) -> str:
    if not _materialized(instance, asset, partition):
        return f"    {asset:<20} not materialized"
    return f"    {asset:<20} materialized  {_gates(instance, asset, partition)}"


def collect_status(instance: dg.DagsterInstance, project: Project, show: str | None = None) -> Iterator[str]:
    def wanted(key: str) -> bool:
        return show is None or key.startswith(f"{show}/")

    yield "characters:"
    for key in filter(wanted, project.characters):
        yield f"  {key}"
        for asset in CHARACTER_ASSETS:
            yield _line(instance, asset, key)
    yield "shots:"
    for key in filter(wanted, project.shots):
        yield f"  {key}"
        yield _line(instance, "shot_clip", key)
    yield "scenes:"
    for key in filter(wanted, project.scenes):
        yield f"  {key}"
        yield _line(instance, "scene_video", key)
    yield "episodes:"
    for key in filter(wanted, project.episodes):
        yield f"  {key}"
        yield _line(instance, "episode_video", key)
        yield _line(instance, "jellyfin_publish", key)
