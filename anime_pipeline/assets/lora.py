"""character_lora: the character adapter trained on the approved dataset (embedded: a previz palette adapter)."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import blocking, content_version, gate, preview, reference_images
from anime_pipeline.assets.phases import GATED
from anime_pipeline.imaging import load_png
from anime_pipeline.production.adapter import ADAPTER_FILE, TRAINER, train_adapter
from anime_pipeline.production.characters import load_anchor
from anime_pipeline.resources import MetricsResource, ProjectResource, RendererResource, StorageResource
from anime_pipeline.settings import Settings

GROUP = "characters"


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.characters, deps=["approved_dataset"], group_name=GROUP, code_version="1",
        automation_condition=GATED,
        pool=settings.renderer_pool, kinds={"json"},
        check_specs=blocking("character_lora", partitions.characters, "loss_fell", "keeps_identity", descriptions={
            "loss_fell": "Training loss at the end is below the loss at the start.",
            "keeps_identity": "A render with the adapter keeps identity ≥ the identity threshold."}),
    )
    def character_lora(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource,
                       renderer: RendererResource, metrics: MetricsResource):
        """Fits the adapter, renders a validation image with it, measures identity."""
        ref = project.load().characters[context.partition_key]
        paths = storage.paths
        out_dir = paths.adapter(ref.key)
        references = reference_images(paths, ref.config.show.slug, [ref.character.slug])
        with renderer.session(context, ref.config, references) as backend:
            result = train_adapter(ref, paths.dataset(ref.key), backend, load_anchor(paths.embedding(ref.key)),
                                   out_dir, seed=7, faces=metrics.suite().face_model(backend.backend))
        losses = result.adapter.loss_history
        context.log.info(f"{TRAINER}: loss {losses[0]:.2f} → {losses[-1]:.2f} over {len(losses)} iterations")
        yield dg.MaterializeResult(
            metadata={"trainer": TRAINER, "device": "cpu", "images": result.adapter.n_images,
                      "loss_start": losses[0], "loss_end": losses[-1], "iterations": len(losses),
                      "validation_identity": result.validation_identity, "palette": dg.MetadataValue.json(result.adapter.palette),
                      "preview": preview(load_png(result.validation_path), "validation render")},
            data_version=content_version([out_dir / ADAPTER_FILE]),
        )
        yield gate("loss_fell", losses[-1] < losses[0], losses[-1], losses[0], TRAINER)
        threshold = ref.config.quality.identity
        yield gate("keeps_identity", result.validation_identity >= threshold, result.validation_identity, threshold,
                   result.identity_backend)

    return [character_lora]
