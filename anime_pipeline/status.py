"""`anime-pipeline status [--json]`: every artifact of every show as the Dagster instance records it —
materialized or not, Dagster's own stale status and its causes, each gate's latest value,
threshold and verdict. Nothing is recomputed: what the UI shows, in a terminal or as JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Literal

import dagster as dg
from pydantic import BaseModel

from anime_pipeline import dagster_compat
from anime_pipeline.assets.keys import LEVEL_TAG, ROLE_TAG, SHOW_TAG
from anime_pipeline.production.gates import SYMBOL

Stale = Literal["FRESH", "STALE", "MISSING"]


class GateStatus(BaseModel):
    name: str
    evaluated: bool
    passed: bool | None = None
    value: float | int | str | bool | None = None
    threshold: float | int | str | bool | None = None
    direction: str | None = None
    backend: str | None = None


class ArtifactStatus(BaseModel):
    key: str  # the Dagster asset key
    artifact: str
    entity: str  # the show-file entity: show/character, show/episode/scene/shot, …, or the show for gates
    show: str
    role: str  # production, phase_gate or planning
    level: str | None  # character, shot, scene or episode for production artifacts
    materialized: bool
    last_materialized: str | None
    run_id: str | None
    stale: bool  # Dagster says STALE: something that determines it changed since it was materialized
    stale_status: Stale
    stale_causes: list[str]
    gates: list[GateStatus]


def collect_status(instance: dg.DagsterInstance, defs: dg.Definitions, show: str | None = None) -> list[ArtifactStatus]:
    graph = defs.resolve_asset_graph()
    resolver = dagster_compat.stale_resolver(instance, graph)
    out = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        tags = node.tags
        if show is not None and tags.get(SHOW_TAG) != show:
            continue
        out.append(_artifact(instance, resolver, key, sorted(node.check_keys, key=str), tags))
    return out


def _artifact(instance: dg.DagsterInstance, resolver, key: dg.AssetKey, check_keys, tags) -> ArtifactStatus:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
    record = records[0] if records else None
    evaluations = dagster_compat.latest_check_evaluations(instance, check_keys)
    status = resolver.get_status(key)
    causes = [f"{c.reason}" + (f" ({c.dependency.asset_key.to_user_string()})" if c.dependency else "")
              for c in resolver.get_stale_causes(key)]
    return ArtifactStatus(
        key=key.to_user_string(), artifact=key.path[-1], entity="/".join(key.path[:-1]), show=tags.get(SHOW_TAG, ""),
        role=tags.get(ROLE_TAG, ""), level=tags.get(LEVEL_TAG), materialized=record is not None,
        last_materialized=dt.datetime.fromtimestamp(record.timestamp, dt.UTC).isoformat() if record else None,
        run_id=record.run_id if record else None, stale=status == dagster_compat.StaleStatus.STALE,
        stale_status=status.value.upper(), stale_causes=causes,
        gates=[_gate(k.name, evaluations[k]) for k in check_keys])


def _gate(name: str, evaluation: dg.AssetCheckEvaluation | None) -> GateStatus:
    if evaluation is None:
        return GateStatus(name=name, evaluated=False)
    meta = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    return GateStatus(name=name, evaluated=True, passed=evaluation.passed, value=meta.get("value"),
                      threshold=meta.get("threshold"), direction=meta.get("direction"), backend=meta.get("backend"))


def render_status(statuses: list[ArtifactStatus]) -> Iterator[str]:
    """The same data as `--json`, one line per artifact, grouped by show."""
    for show in sorted({s.show for s in statuses}):
        yield f"{show}:"
        for s in sorted((s for s in statuses if s.show == show), key=_order):
            state = "materialized" if s.materialized else "not materialized"
            stale = f"STALE ({'; '.join(s.stale_causes)})" if s.stale else s.stale_status
            gates = ", ".join(_gate_text(g) for g in s.gates)
            yield f"  {s.entity:<34} {s.artifact:<20} {state:<17} {stale}" + (f"  {gates}" if gates else "")


LEVELS = ("character", "shot", "scene", "episode")


def _order(s: ArtifactStatus) -> tuple:
    """Production artifacts in graph order (characters, shots, scenes, episodes), then gates and planning."""
    level = next((i for i, name in enumerate(LEVELS) if s.level == name), len(LEVELS))
    return s.role != "production", level, s.entity, s.artifact


def _gate_text(gate: GateStatus) -> str:
    if not gate.evaluated:
        return f"{gate.name} –"
    symbol = SYMBOL.get(gate.direction or "", "vs")
    return f"{gate.name} {gate.value} {symbol} {gate.threshold} {'✓' if gate.passed else '✗'}"
