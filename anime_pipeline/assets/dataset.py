"""approved_dataset: generated candidates → review → auto / human approval → images + captions + manifest."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import blocking, content_version, gate, preview, reference_images
from anime_pipeline.assets.phases import GATED
from anime_pipeline.imaging import load_png
from anime_pipeline.production.characters import load_anchor
from anime_pipeline.production.dataset import DecisionLog, assemble_dataset, dataset_state, generate_batch
from anime_pipeline.resources import (MetricsResource, ProjectResource, RendererResource, ReviewerResource,
                                      StorageResource)
from anime_pipeline.settings import Settings

GROUP = "characters"


class DatasetConfig(dg.Config):
    batch_size: int = 3
    max_batches: int = 4


def _verdict_summary(candidate) -> dict:
    verdict = candidate.record["verdict"]
    return {"id": candidate.id, "reasons": verdict["reasons"][:3],
            **{k: verdict[k] for k in ("decision", "score", "character_match", "solo")}}


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.characters, deps=["character_embedding"], group_name=GROUP, code_version="1",
        automation_condition=GATED,
        pool=settings.renderer_pool, kinds={"image"},
        check_specs=blocking("approved_dataset", partitions.characters, "enough_approved", "identity", "no_near_duplicates",
                             "aesthetic", "style_adherence", descriptions={
            "aesthetic": "Phase 1 stills: every approved image's aesthetic score ≥ quality.aesthetic (0-10).",
            "style_adherence": "Phase 1 stills: every approved image adheres to the show's style ≥ threshold.",
            "enough_approved": "Approved images ≥ the character's dataset_target.",
            "identity": "Every approved image matches the identity anchor (≥ identity threshold).",
            "no_near_duplicates": "No two approved images are near-duplicates."}),
    )
    def approved_dataset(context: dg.AssetExecutionContext, config: DatasetConfig, project: ProjectResource,
                         storage: StorageResource, renderer: RendererResource, reviewer: ReviewerResource,
                         metrics: MetricsResource):
        """Candidates are generated in batches until approved + awaiting review reach the target."""
        ref = project.load().characters[context.partition_key]
        paths = storage.paths
        anchor = load_anchor(paths.embedding(ref.key))
        log = DecisionLog(paths.decisions_log(ref.key))
        review = reviewer.for_show(ref.config)
        target = ref.character.dataset_target
        batches, verdicts = 0, []
        state = dataset_state(paths.candidates(ref.key), log)
        references = reference_images(paths, ref.config.show.slug, [ref.character.slug])
        with renderer.session(context, ref.config, references) as render:
            while len(state.approved) + len(state.pending) < target and batches < config.max_batches:
                made = generate_batch(ref, render, review, anchor, paths.candidates(ref.key), log,
                                      config.batch_size, seed=50_000)
                batches += 1
                verdicts += [_verdict_summary(c) for c in made]
                state = dataset_state(paths.candidates(ref.key), log)
                context.log.info(f"batch {batches}: {[(c.id, c.record['verdict']['decision']) for c in made]}; "
                                 f"{len(state.approved)}/{target} approved, {len(state.pending)} await review")
            renderer_name, device = render.backend, render.device
        result = assemble_dataset(ref, state, log, anchor, paths.dataset(ref.key), review.name, batches,
                                  metrics.suite())
        dataset_dir = paths.dataset(ref.key)
        first = load_png(state.approved[0].image_path) if state.approved else None
        metadata = {"approved": len(state.approved), "target": target, "awaiting_review": len(state.pending),
                    "rejected": len(state.rejected), "new_batches": batches, "reviewer": review.name,
                    "renderer": renderer_name, "device": device, "folder": dg.MetadataValue.path(str(dataset_dir))}
        if verdicts:
            metadata["new_verdicts"] = dg.MetadataValue.json(verdicts)
        if first is not None:
            metadata["preview"] = preview(first, "first approved image")
        if state.pending:
            metadata["next_step"] = f"anime-pipeline review list {ref.key}"
        yield dg.MaterializeResult(metadata=metadata, data_version=content_version(sorted(dataset_dir.glob("*.*"))))
        q = ref.config.quality
        worst = min(result.identities.values(), default=1.0)  # no approved image: enough_approved fails instead
        yield gate("enough_approved", len(state.approved) >= target, len(state.approved), target, "count",
                   awaiting_review=len(state.pending),
                   hint=f"review with `anime-pipeline review list {ref.key}`" if state.pending else "")
        yield gate("identity", worst >= q.identity, worst, q.identity, result.identity_backend,
                   below=", ".join(k for k, v in result.identities.items() if v < q.identity) or "none")
        yield gate("no_near_duplicates", not result.duplicates, len(result.duplicates), 0,
                   f"SSIM ≥ {q.near_duplicate_similarity} on thumbnails",
                   pairs=dg.MetadataValue.json([list(d) for d in result.duplicates]))
        worst_aesthetic = min(result.aesthetic.values(), default=10.0)
        yield gate("aesthetic", worst_aesthetic >= q.aesthetic, worst_aesthetic, q.aesthetic, result.aesthetic_backend,
                   per_image=dg.MetadataValue.json(result.aesthetic))
        worst_style = min(result.style.values(), default=1.0)
        yield gate("style_adherence", worst_style >= q.style_adherence, worst_style, q.style_adherence,
                   result.style_backend, per_image=dg.MetadataValue.json(result.style))

    return [approved_dataset]
