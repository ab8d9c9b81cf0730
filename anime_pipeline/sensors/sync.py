"""Project sync: dynamic partitions and config data versions follow the show files.

`plan_sync` is the pure part (what to add, remove and observe); the sensor returns it as a
SensorResult and `anime-pipeline sync` applies it to the instance directly. A partition
removed from the YAML is deleted from Dagster; its files under the storage root are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.show_config import SPECS
from anime_pipeline.config import ConfigError, Project
from anime_pipeline.resources import ProjectResource

DATA_VERSION_TAG = "dagster/data_version"
PAGE = 10_000  # Dagster's maximum page size


@dataclass
class SyncPlan:
    add: dict[str, list[str]] = field(default_factory=dict)
    remove: dict[str, list[str]] = field(default_factory=dict)
    observe: dict[str, dict[str, str]] = field(default_factory=dict)  # level -> key -> fingerprint

    @property
    def empty(self) -> bool:
        return not any([*self.add.values(), *self.remove.values(), *self.observe.values()])

    def summary(self) -> str:
        parts = [f"+{len(v)} {k}" for k, v in self.add.items() if v] + [f"-{len(v)} {k}" for k, v in self.remove.items() if v]
        changed = sum(len(v) for v in self.observe.values())
        return ", ".join(parts + ([f"{changed} spec versions"] if changed else [])) or "in sync"


def plan_sync(project: Project, existing: dict[str, set[str]], observed: dict[str, dict[str, str]]) -> SyncPlan:
    plan = SyncPlan()
    for level, fingerprints in project.fingerprints().items():
        have = existing.get(level, set())
        plan.add[level] = [k for k in fingerprints if k not in have]
        plan.remove[level] = sorted(have - set(fingerprints))
        seen = observed.get(level, {})
        plan.observe[level] = {k: v for k, v in fingerprints.items() if seen.get(k) != v}
    return plan


def instance_state(instance: dg.DagsterInstance) -> tuple[dict[str, set[str]], dict[str, dict[str, str]]]:
    existing = {level: set(instance.get_dynamic_partitions(p.name)) for level, p in partitions.BY_LEVEL.items()}
    observed: dict[str, dict[str, str]] = {}
    for level, spec in SPECS.items():
        observed[level] = _latest_versions(instance, spec.key)
    return existing, observed


def _latest_versions(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str]:
    latest: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=key), limit=PAGE, cursor=cursor)
        for record in page.records:  # newest first
            observation = record.asset_observation
            if record.partition_key and record.partition_key not in latest and observation:
                version = observation.tags.get(DATA_VERSION_TAG)
                if version:
                    latest[record.partition_key] = version
        if not page.has_more:
            return latest
        cursor = page.cursor


def observations(plan: SyncPlan) -> list[dg.AssetObservation]:
    return [dg.AssetObservation(SPECS[level].key, partition=key, tags={DATA_VERSION_TAG: version})
            for level, changed in plan.observe.items() for key, version in changed.items()]


def apply_sync(instance: dg.DagsterInstance, plan: SyncPlan) -> None:
    for level, keys in plan.add.items():
        if keys:
            instance.add_dynamic_partitions(partitions.BY_LEVEL[level].name, keys)
    for level, keys in plan.remove.items():
        for key in keys:
            instance.delete_dynamic_partition(partitions.BY_LEVEL[level].name, key)
    for event in observations(plan):
        instance.report_runless_asset_event(event)


def sync_instance(instance: dg.DagsterInstance, configs_dir: Path | str) -> SyncPlan:
    plan = plan_sync(Project.load(configs_dir), *instance_state(instance))
    apply_sync(instance, plan)
    return plan


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Keeps the character/shot/scene/episode partitions and spec versions in step with project_configs/.")
def project_sync(context: dg.SensorEvaluationContext, project: ProjectResource):
    try:
        loaded = project.load()
    except ConfigError as exc:
        return dg.SkipReason(f"show files are invalid, nothing synced:\n{exc}")
    plan = plan_sync(loaded, *instance_state(context.instance))
    if plan.empty:
        return dg.SkipReason("partitions and spec versions already match project_configs/")
    requests = [partitions.BY_LEVEL[level].build_add_request(keys) for level, keys in plan.add.items() if keys]
    requests += [partitions.BY_LEVEL[level].build_delete_request(keys) for level, keys in plan.remove.items() if keys]
    context.log.info(f"sync: {plan.summary()}")
    return dg.SensorResult(dynamic_partitions_requests=requests, asset_events=observations(plan))
