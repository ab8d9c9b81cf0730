"""The one factory that turns production steps into Dagster assets, one asset per show entity.

Each asset's code version is its step's version plus a hash of the show-file entry that
determines it, so Dagster's own stale status follows the YAML exactly; its deps are exactly the
entities it reads; its blocking checks are its step's gates. Production assets wait for their
show's previous phase (`phases.py`).
"""

import functools
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pydantic

from anime_pipeline.assets.keys import PHASE_GATES, asset_key, group_name, tags
from anime_pipeline.assets.phases import phase_key, require_open
from anime_pipeline.config.project import Project
from anime_pipeline.imaging import data_uri_thumbnail, load_png
from anime_pipeline.metrics.models import cuda_index
from anime_pipeline.production import refs
from anime_pipeline.production.gates import GateResult
from anime_pipeline.production.phases import PHASE_BEFORE
from anime_pipeline.production.step import (FileLink, MetadataValue, Preview, Step, StepEnv, StepFailed, Table,
                                           run_step)
from anime_pipeline.resources.gpu import Placement
from anime_pipeline.settings import Settings
from anime_pipeline.storage import sha256_file
from anime_pipeline.studio.urls import studio_base, studio_url
from anime_pipeline.training.errors import TrainingError

RESOURCES = {"project", "storage", "renderer", "trainer", "reviewer", "director", "metrics", "speech", "music",
             "jellyfin"}
# Declarative automation of the production assets: eager (runs when missing or an upstream changed),
# but only once every upstream blocking check passed, so a failed gate stops automation as it stops
# a run. A phase gate's own re-evaluation requests nothing: what waited for it is requested when
# its check passes.
GATED = (dg.AutomationCondition.eager().ignore(PHASE_GATES)
         & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label("eager once upstream gates pass")


class StepConfig(dg.Config):
    force: bool = False  # produce again even when nothing that determines the artifact changed


def config_type(step: Step) -> type[StepConfig]:
    """The run config of a step's assets: `force`, plus the step's own options (`Step.options_type`),
    so the Launchpad shows them and a sensor can ask for them."""
    return _config_type(type(step))


@functools.cache  # one class per kind of step: Dagster names config types by class
def _config_type(kind: type[Step]) -> type[StepConfig]:
    fields = kind.options_type.model_fields
    if not fields:
        return StepConfig
    return pydantic.create_model(f"{kind.__name__}Config", __base__=StepConfig,
                                 **{name: (f.annotation, f) for name, f in fields.items()})


def _pool(step: Step, settings: Settings) -> str | None:
    """The step's static pool, which Dagster's executor claims before the step starts: the metrics' GPU, or the
    renderer's device when no ComfyUI server is configured. A step that renders on ComfyUI claims a card itself
    when it starts — whichever is free in process, its bound card with Celery (`_card`)."""
    return {"renderer": settings.renderer_pool, "trainer": settings.renderer_pool, "metrics": settings.metrics_pool,
            "none": None}[step.device]


def _card(step: Step, settings: Settings, index: int = 0) -> str | None:
    """With Celery, the card a generation or training step is bound to: it is sent to that card's queue, whose
    worker runs one step at a time, and claims the card's pool slot itself on that worker. A claim made by the
    run's executor instead would be re-checked on Dagster's back-off (1 s growing to 15 s) and the task sent only
    then: the card idled ~3 s between steps (BENCHMARKS.md, "Shots through the daemon")."""
    if settings.executor != "celery":
        return None
    return {"renderer": settings.card_pool(index), "trainer": settings.trainer_pool}.get(step.device)


def _op_tags(queue: str | None, settings: Settings) -> dict[str, str]:
    """With Celery, the step's queue: its card's or the metrics GPU's, `cpu` for the rest."""
    return {"dagster-celery/queue": queue or "cpu"} if settings.executor == "celery" else {}


@dataclass(frozen=True)
class ArtifactAsset:
    """An artifact's declaration in the Dagster layer: its step and how the UI labels it."""

    step: Step
    kinds: frozenset[str]

    def build(self, project: Project, settings: Settings) -> list[dg.AssetsDefinition]:
        return [build_step_asset(self.step, ref, settings, set(self.kinds), index)
                for index, ref in enumerate(refs(project, self.step.level).values())]


def build_step_asset(step: Step, ref, settings: Settings, kinds: set[str], index: int = 0) -> dg.AssetsDefinition:
    key = asset_key(step.artifact, ref.key)
    show = ref.config.show.slug
    deps = [asset_key(u.artifact, u.key) for u in step.upstream(ref)]
    phase = PHASE_BEFORE.get(step.artifact)
    if phase is not None:
        deps.append(phase_key(show, phase))
    version = step.code_version(ref)
    studio = dg.MetadataValue.url(studio_url(step.artifact, ref.key, studio_base(settings.studio_url)))
    run_config = config_type(step)
    pool, card = _pool(step, settings), _card(step, settings, index)
    specs = [dg.AssetCheckSpec(g.name, asset=key, blocking=True,
                               description=f"{g.description} Threshold: {g.threshold_source}.") for g in step.gates]

    @dg.asset(key=key, deps=deps, code_version=version, group_name=group_name(step.level, ref.key),
              tags=tags(step.level, ref.key, "production"), kinds=kinds, pool=pool,
              op_tags=_op_tags(card or pool, settings),
              automation_condition=GATED, check_specs=specs, description=step.describe(),
              required_resource_keys=RESOURCES)
    def _asset(context: dg.AssetExecutionContext, config: run_config) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        project = context.resources.project.load()
        current = refs(project, step.level).get(ref.key)
        if current is None or step.code_version(current) != version:
            raise dg.Failure(f"{ref.key}: the show file changed since this code location loaded "
                             f"({'entry removed' if current is None else 'entry edited'}): reload the code location "
                             f"(Deployment → Reload, or `anime-pipeline sync`), then materialize again")
        if phase is not None:
            require_open(context.instance, phase, show)
        env = step_env(context, project, pool, card)
        env.options = step.options_type.model_validate(config.model_dump(exclude={"force"}))
        try:
            produced = run_step(step, current, env, force=config.force)
        # missing upstream, empty dataset, bad input files; a LoRA that cannot train, load or be served; a
        # service that refused (speech, music, Jellyfin)
        except (FileNotFoundError, ValueError, TrainingError, StepFailed) as exc:
            raise dg.Failure(f"{ref.key} {step.artifact}: {exc}") from exc
        manifest = produced.manifest
        results = step.gates.evaluate(step.gate_subject(manifest), current.config.quality)
        metadata = {**to_dagster(step.metadata(manifest, produced.folder)), "kept_unchanged": produced.kept,
                    "studio": studio}
        known = step.data_version(manifest, produced.folder)
        yield dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(known) if known else content_version(
            step.outputs(manifest, produced.folder)))
        for result in results:
            yield check_result(result)
        step.after_gates(current, manifest, results, env)

    return _asset


def step_env(context: dg.AssetExecutionContext, project: Project, pool: str | None = None,
             card: str | None = None) -> StepEnv:
    """`pool`: the step's static pool, which a service session must not claim a second time; `card`: the card
    the step is bound to (with Celery), whose pool slot a service session claims."""
    r = context.resources
    on = Placement(held_pool=pool, card=card, scores_on_gpu=cuda_index(r.metrics.device) is not None)
    return StepEnv(paths=r.storage.paths, library=r.storage.library, project=project, metrics=r.metrics.suite(),
                   metric_backends=r.metrics.active_backends(),
                   open_renderer=lambda config, references, loras=(): r.renderer.session(context, config, references,
                                                                                         loras, on),
                   open_trainer=lambda config: r.trainer.session(context, config, on),
                   reviewer=r.reviewer.for_show, director=r.director.for_show,
                   open_speech=lambda config: r.speech.session(context, config, on),
                   open_music=lambda config: r.music.session(context, config, project.music_dir, on),
                   jellyfin=r.jellyfin.client, log=context.log.info)


def check_result(result: GateResult) -> dg.AssetCheckResult:
    metadata = {"value": result.value, "threshold": result.threshold, "direction": result.direction,
                "backend": result.backend, "margin": result.margin,
                **{k: _metadata_value(Table(v) if isinstance(v, (dict, list)) else v) for k, v in result.details.items()}}
    return dg.AssetCheckResult(check_name=result.name, passed=result.passed, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR)


def to_dagster(metadata: Mapping[str, MetadataValue]) -> dict[str, object]:
    return {key: _metadata_value(value) for key, value in metadata.items() if value is not None}


def _metadata_value(value: MetadataValue) -> object:
    if isinstance(value, Preview):
        return dg.MetadataValue.md(f"![{value.caption}]({data_uri_thumbnail(load_png(value.path))})")
    if isinstance(value, FileLink):
        return dg.MetadataValue.path(str(value.path))
    if isinstance(value, Table):
        return dg.MetadataValue.json(value.data)
    return value


def content_version(paths: Iterable[Path]) -> dg.DataVersion:
    """Data version = hash of the output files, so an identical re-render leaves downstream fresh."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return dg.DataVersion(digest.hexdigest()[:16])
