"""The one place where the whole code location is assembled: assets by domain, jobs, sensors, resources."""

from __future__ import annotations

import dagster as dg

from anime_pipeline.assets import characters, dataset, episodes, lora, phases, planning, publish, scenes, shots
from anime_pipeline.assets.show_config import SPECS
from anime_pipeline.resources import (DirectorResource, EchoBrainResource, MetricsResource, OllamaResource,
                                      ProjectResource, RendererResource, ReviewerResource, StorageResource)
from anime_pipeline.sensors.sync import project_sync
from anime_pipeline.settings import Settings

CHARACTER_ASSETS = ("character_reference", "character_embedding", "approved_dataset", "character_lora")


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """One job per partition level; the demo and CLI backfills run these, in dependency order."""
    return [
        dg.define_asset_job("character_job", selection=list(CHARACTER_ASSETS),
                            description="Reference sheet → embedding → approved dataset → character adapter."),
        dg.define_asset_job("shot_job", selection=["shot_clip"]),
        dg.define_asset_job("scene_job", selection=["scene_video"]),
        dg.define_asset_job("episode_job", selection=["episode_video", "jellyfin_publish"]),
        *(dg.define_asset_job(f"{p.name}_job", selection=[p.name], description=f"{p.title} gate")
          for p in phases.PHASES),
    ]


# Off by default: a creator turns it on (Automation tab) to let show edits re-render on their own.
production_automation = dg.AutomationConditionSensorDefinition(
    "production_automation", target=dg.AssetSelection.all(), minimum_interval_seconds=30,
    description="Declarative automation: a missing or stale partition is requested once every upstream blocking "
                "check (the gates) passed; phase gates re-evaluate when their phase's partitions change.")


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    ollama = OllamaResource(base_url=settings.ollama_url, device=settings.reviewer_gpu)
    return {
        "project": ProjectResource(configs_dir=str(settings.configs_dir)),
        "storage": StorageResource(root=str(settings.storage_root), library_root=str(settings.library_root)),
        "renderer": RendererResource(device=settings.renderer_gpu, comfyui_urls=dict(settings.comfyui_urls)),
        "reviewer": ReviewerResource(ollama=ollama),
        "director": DirectorResource(ollama=ollama, echo_brain=EchoBrainResource(base_url=settings.echo_brain_url)),
        "metrics": MetricsResource(models_dir=str(settings.models.root), torch_home=str(settings.models.torch_home),
                                   device=settings.models.device, face_pack=settings.models.face_pack),
    }


def build_definitions(settings: Settings) -> dg.Definitions:
    assets = [*SPECS.values(), *characters.build(settings), *dataset.build(settings), *lora.build(settings),
              *shots.build(settings), *scenes.build(settings), *episodes.build(), *publish.build(), *planning.build(),
              *phases.build()]
    return dg.Definitions(
        assets=assets, jobs=build_jobs(), sensors=[project_sync, production_automation], resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(Settings.from_env())
