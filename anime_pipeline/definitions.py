"""The one place where the code location is assembled: the show files' entities become assets, with their
jobs, sensors and resources. Built lazily (`@dg.definitions`) from the environment (`Settings.from_env`)."""

from __future__ import annotations

import dagster as dg

from anime_pipeline.assets import ARTIFACT_ASSETS
from anime_pipeline.assets.keys import LEVEL_TAG, SHOW_TAG
from anime_pipeline.assets.phases import build_phase_gates
from anime_pipeline.assets.planning import build_story_breakdowns
from anime_pipeline.config.project import EpisodeRef, Project, dagster_name
from anime_pipeline.resources import (DirectorResource, EchoBrainResource, JellyfinResource, MetricsResource,
                                      MusicResource, OllamaResource, ProjectResource, RendererResource,
                                      ReviewerResource, SpeechResource, StorageResource, TrainerResource)
from anime_pipeline.sensors.dataset_replenishment import build_replenishment_job, build_replenishment_sensor
from anime_pipeline.sensors.sync import build_project_sync
from anime_pipeline.settings import (CELERY_BACKEND_VARIABLE, CELERY_BROKER_VARIABLE, Settings, format_gpu_folders,
                                     format_gpu_urls)

# The Celery app's settings, the same for the run's submitter and the workers (celery.yaml repeats them; a test
# holds the two equal). Late acknowledgement: a task is acknowledged when it ends, so the broker redelivers
# the task of a worker killed mid-step; one task per worker process and none prefetched, so a card's queue
# runs one step at a time and a waiting step can go to whichever worker frees up.
CELERY_APP_CONFIG = {"task_acks_late": True, "task_reject_on_worker_lost": True, "worker_prefetch_multiplier": 1,
                     "worker_concurrency": 1, "task_default_queue": "cpu"}

# Off by default: a creator turns it on (Automation tab) to let show edits re-render on their own.
production_automation = dg.AutomationConditionSensorDefinition(
    "production_automation", target=dg.AssetSelection.all(), minimum_interval_seconds=30,
    description="Declarative automation: a missing or stale asset is requested once every upstream blocking check "
                "(the gates) passed; phase gates re-evaluate when their entities change.")


def characters_job_name(show: str) -> str:
    return f"{dagster_name(show)}__characters"


def episode_job_name(ref: EpisodeRef) -> str:
    return f"{dagster_name(ref.config.show.slug)}__episode_{ref.episode.number:02d}"


def build_jobs(project: Project) -> list[dg.UnresolvedAssetJobDefinition]:
    """Per show, its characters; per episode, everything the episode needs (from the UI: Jobs → Launch)."""
    jobs = [dg.define_asset_job(characters_job_name(show), selection=dg.AssetSelection.tag(SHOW_TAG, show)
                                & dg.AssetSelection.tag(LEVEL_TAG, "character"),
                                description=f"{show}: reference sheet → embedding → approved dataset → adapter, "
                                            "for every character")
            for show in project.shows]
    jobs += [dg.define_asset_job(episode_job_name(ref), selection=dg.AssetSelection.assets(
                 dg.AssetKey([*key.split("/"), "jellyfin_publish"])).upstream(),
                                 description=f"{key}: everything the episode needs, through its publication")
             for key, ref in project.episodes.items()]
    return jobs


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    def service(field: str) -> object:
        """A URL or key from the environment is read through dg.EnvVar: never shown in the resource config."""
        variable = settings.environment_variable(field)
        value = getattr(settings, field)
        return dg.EnvVar(variable) if variable else (value if isinstance(value, str) else format_gpu_urls(value))

    ollama = OllamaResource(base_url=service("ollama_url"), device=settings.reviewer_gpu)
    return {
        "project": ProjectResource(configs_dir=str(settings.configs_dir)),
        "storage": StorageResource(root=str(settings.storage_root), library_root=str(settings.library_root)),
        "renderer": RendererResource(device=settings.renderer_gpu, comfyui_urls=service("comfyui_urls"),
                                     lora_folders=format_gpu_folders(settings.training.lora_folders),
                                     reconnect_window=settings.comfyui_reconnect_window),
        "trainer": _trainer(settings, service("comfyui_urls")),
        "reviewer": ReviewerResource(ollama=ollama),
        "director": DirectorResource(ollama=ollama, echo_brain=EchoBrainResource(base_url=service("echo_brain_url"))),
        "metrics": MetricsResource(models_dir=str(settings.models.root), torch_home=str(settings.models.torch_home),
                                   device=settings.models.device, face_pack=settings.models.face_pack,
                                   ccip_model=settings.models.ccip_model, anime_detector=settings.models.anime_detector),
        "speech": SpeechResource(urls=service("speech_urls"), api_key=service("speech_api_key")),
        "music": MusicResource(acestep_urls=service("acestep_urls"), api_key=service("acestep_api_key")),
        "jellyfin": JellyfinResource(url=service("jellyfin_url"), api_key=service("jellyfin_api_key")),
        # Dagster's own step outputs: on the shared storage (every worker reads them), apart from the artifacts
        "io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_dir)),
    }


def build_executor(settings: Settings) -> dg.ExecutorDefinition:
    """In-process by default (no broker); `ANIME_PIPELINE_EXECUTOR=multiprocess`: a run's steps in processes of
    their own, forked from a server that imported the project once, `Settings.step_processes` at a time;
    `ANIME_PIPELINE_EXECUTOR=celery`: each step is a Celery task on its card's queue (`dagster-celery/queue` = its
    pool), for the workers of README "Deployment"."""
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "multiprocess":
        return dg.multiprocess_executor.configured({
            "max_concurrent": settings.step_processes,
            "start_method": {"forkserver": {"preload_modules": [__name__]}}})
    # imported only where used: the embedded default needs no broker
    from dagster_celery import celery_executor
    return celery_executor.configured({"broker": {"env": CELERY_BROKER_VARIABLE},
                                       "backend": {"env": CELERY_BACKEND_VARIABLE},
                                       "config_source": CELERY_APP_CONFIG})


def _trainer(settings: Settings, comfyui_urls: object) -> TrainerResource:
    training, kohya = settings.training, settings.training.kohya
    install = {"kohya_dir": str(kohya.sd_scripts), "kohya_python": str(kohya.python), "kohya_launcher": kohya.launcher,
               "kohya_gpu": kohya.gpu, "kohya_timeout_s": str(kohya.timeout_s)} if kohya else {}
    return TrainerResource(comfyui_urls=comfyui_urls, trainer_gpu=training.trainer_gpu or "",
                           base_models=str(training.base_models or ""), **install)


def build_assets(project: Project, settings: Settings) -> list[dg.AssetsDefinition]:
    return [*(a for declared in ARTIFACT_ASSETS for a in declared.build(project, settings)),
            *build_phase_gates(project), *build_story_breakdowns(project)]


def build_definitions(settings: Settings, project: Project | None = None) -> dg.Definitions:
    project = project or Project.load(settings.configs_dir)
    replenish = build_replenishment_job(project)
    return dg.Definitions(assets=build_assets(project, settings), jobs=[*build_jobs(project), replenish],
                          sensors=[build_project_sync(project), production_automation,
                                   build_replenishment_sensor(project, replenish)],
                          resources=build_resources(settings), executor=build_executor(settings))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())
