"""Project sync: the assets follow the show files.

Assets are generated per show entity when the code location loads, and each asset's code
version is a hash of its entry, so every change to the show files — a new, removed or edited
character / shot / scene / episode — takes effect when the code location reloads (the CLI loads
it fresh on every command; the Dagster UI on Deployment → Reload). `plan_sync` compares two
projects entity by entity; the `project_sync` sensor reports, on every tick, whether the files
still match what the code location loaded, and `anime-pipeline sync` validates the files and
reloads a running Dagster UI's code location.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from anime_pipeline.config import ConfigError, Project
from anime_pipeline.production import STEPS, refs
from anime_pipeline.resources import ProjectResource
from anime_pipeline.services import redact_url
from anime_pipeline.services.http import (BadJSON, ConnectionFailed, HTTPTransport, MalformedResponse, Timeout,
                                          TransportError, as_object)


def entity_versions(project: Project) -> dict[str, str]:
    """Every generated asset's code version, by '<entity>/<artifact>'."""
    return {f"{key}/{step.artifact}": step.code_version(ref)
            for step in STEPS for key, ref in refs(project, step.level).items()}


@dataclass
class SyncPlan:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.edited)

    def summary(self) -> str:
        parts = [f"{len(v)} {name}" for name, v in (("new", self.added), ("removed", self.removed),
                                                     ("edited", self.edited)) if v]
        return ", ".join(parts) + " asset(s)" if parts else "in sync"


def plan_sync(loaded: dict[str, str], current: dict[str, str]) -> SyncPlan:
    return SyncPlan(added=sorted(current.keys() - loaded.keys()), removed=sorted(loaded.keys() - current.keys()),
                    edited=sorted(k for k in loaded.keys() & current.keys() if loaded[k] != current[k]))


def build_project_sync(loaded: Project) -> dg.SensorDefinition:
    loaded_versions = entity_versions(loaded)

    @dg.sensor(name="project_sync", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
               description="Says when project_configs/ no longer matches what this code location loaded, and "
                           "what a reload would add, remove or mark stale.")
    def project_sync(context: dg.SensorEvaluationContext, project: ProjectResource) -> dg.SkipReason:
        try:
            current = project.load()
        except ConfigError as exc:
            return dg.SkipReason(f"show files are invalid; the loaded definitions stay in use:\n{exc}")
        plan = plan_sync(loaded_versions, entity_versions(current))
        if plan.empty:
            return dg.SkipReason("the loaded assets match project_configs/")
        if plan.added or plan.removed:
            return dg.SkipReason(f"project_configs/ changed since this code location loaded ({plan.summary()}): "
                                 f"reload it (Deployment → Reload, or `anime-pipeline sync`) to add "
                                 f"{plan.added[:5]} / remove {plan.removed[:5]}")
        return dg.SkipReason(f"{plan.summary()} since load: reload the code location to mark them stale")

    return project_sync


RELOAD_WORKSPACE = "mutation { reloadWorkspace { __typename } }"


def reload_dagster_ui(url: str, timeout: float = 30.0) -> str:
    """Ask a running Dagster webserver to reload its code locations (new and removed entries appear);
    returns what happened, for the user."""
    shown = redact_url(url)
    try:
        response = HTTPTransport(url, Timeout(total=timeout, connect=3.0)).request(
            "POST", "/graphql", json={"query": RELOAD_WORKSPACE})
    except ConnectionFailed:
        return f"no Dagster UI answers at {shown}: it loads the current show files when it starts"
    except TransportError as exc:
        return f"the Dagster UI at {shown} did not complete the reload ({exc.reason}); use Deployment → Reload"
    try:
        answer = as_object(response.json(), "the answer")
    except (MalformedResponse, BadJSON):
        answer = {"errors": response.excerpt()}
    if response.status != 200 or "errors" in answer:
        return f"the Dagster UI at {shown} refused the reload (HTTP {response.status}); use Deployment → Reload"
    return f"reloaded the code location of the Dagster UI at {shown}"
