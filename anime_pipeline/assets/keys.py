"""Asset keys, groups and tags of the generated assets.

Keys mirror the storage layout: `<show>/<character>/<artifact>` and
`<show>/<episode>/<scene>[/<shot>]/<artifact>`; phase gates are `<show>/<phase>`.
"""

from __future__ import annotations

import dagster as dg

from anime_pipeline.config.project import dagster_name

SHOW_TAG, LEVEL_TAG, ROLE_TAG, EPISODE_TAG = "anime/show", "anime/level", "anime/role", "anime/episode"
PHASE_GATES = dg.AssetSelection.tag(ROLE_TAG, "phase_gate")


def asset_key(artifact: str, entity: str) -> dg.AssetKey:
    return dg.AssetKey([*entity.split("/"), artifact])


def entity_of(key: dg.AssetKey) -> tuple[str, str]:
    """(artifact, entity key) of one of our asset keys."""
    return key.path[-1], "/".join(key.path[:-1])


def group_name(level: str, entity: str) -> str:
    show, *rest = entity.split("/")
    part = "characters" if level == "character" else rest[0]
    return f"{dagster_name(show)}__{dagster_name(part)}"


def tags(level: str, entity: str, role: str) -> dict[str, str]:
    show, *rest = entity.split("/")
    tags = {SHOW_TAG: show, LEVEL_TAG: level, ROLE_TAG: role}
    if level != "character":
        tags[EPISODE_TAG] = rest[0]
    return tags
