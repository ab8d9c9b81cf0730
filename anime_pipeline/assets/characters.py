"""character_reference and character_embedding: the reference sheet and the identity anchor."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import blocking, content_version, gate, preview, require_upstream
from anime_pipeline.assets.phases import GATED
from anime_pipeline.assets.show_config import character_spec
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import MANIFEST_NAME, read_manifest
from anime_pipeline.production.characters import build_reference_sheet, compute_embedding
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES
from anime_pipeline.resources import MetricsResource, ProjectResource, RendererResource, StorageResource
from anime_pipeline.settings import Settings

GROUP = "characters"


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.characters, deps=[character_spec], group_name=GROUP, code_version="1",
        automation_condition=GATED,
        pool=settings.renderer_pool, kinds={"image"},
        check_specs=blocking("character_reference", partitions.characters, "faces_found", "sheet_complete", descriptions={
            "faces_found": "A face is found in every panel that should show one.",
            "sheet_complete": f"{len(REFERENCE_POSES)} poses + {len(REFERENCE_EXPRESSIONS)} expressions present."}),
    )
    def character_reference(context: dg.AssetExecutionContext, project: ProjectResource,
                            storage: StorageResource, renderer: RendererResource, metrics: MetricsResource):
        """Reference sheet per character: 8 poses and 6 expressions (plus any images given in the YAML)."""
        loaded = project.load()
        ref = loaded.characters[context.partition_key]
        out_dir = storage.paths.reference(ref.key)
        with renderer.session(context, ref.config) as backend:
            context.log.info(f"rendering the reference sheet of {ref.character.name} on {backend.backend}")
            faces = metrics.suite().face_model(backend.backend)
            sheet = build_reference_sheet(ref, backend, out_dir, seed=1000,
                                          show_dir=loaded.files[ref.config.show.slug].parent, faces=faces)
        missing_faces, missing_panels = sheet.faces_missing, sheet.missing_panels()
        yield dg.MaterializeResult(
            metadata={"panels": len(sheet.panels), "faces_found": sum(p.face_box is not None for p in sheet.panels),
                      "backend": backend.backend, "device": backend.device, "folder": dg.MetadataValue.path(str(out_dir)),
                      "preview": preview(load_png(sheet.sheet_path), "reference sheet"),
                      "render_seconds": sheet.manifest["timings"].get("render", 0.0)},
            data_version=content_version(p.path for p in sheet.panels),
        )
        expected = [p for p in sheet.panels if p.face_expected]
        yield gate("faces_found", not missing_faces, len(expected) - len(missing_faces), len(expected),
                   sheet.manifest["face_detector"], panels_without_face=", ".join(missing_faces) or "none")
        yield gate("sheet_complete", not missing_panels, len(sheet.panels), len(REFERENCE_POSES) + len(REFERENCE_EXPRESSIONS),
                   "count", missing=", ".join(missing_panels) or "none")

    @dg.asset(
        partitions_def=partitions.characters, deps=[character_reference], group_name=GROUP, code_version="1",
        automation_condition=GATED,
        kinds={"numpy"},
        check_specs=blocking("character_embedding", partitions.characters, "references_agree", descriptions={
            "references_agree": "Every reference face agrees with the anchor (cosine ≥ identity threshold)."}),
    )
    def character_embedding(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource,
                            metrics: MetricsResource):
        """512-d identity anchors (normalised mean) and per-image vectors of the reference faces:
        palette signatures always, ArcFace embeddings too on rendered (not previz) references."""
        ref = project.load().characters[context.partition_key]
        sheet_dir = storage.paths.reference(ref.key)
        require_upstream(f"character_embedding {ref.key}", "character_reference", {ref.key: sheet_dir / MANIFEST_NAME})
        sheet = read_manifest(sheet_dir)
        out_dir = storage.paths.embedding(ref.key)
        embedding = compute_embedding(ref, sheet_dir, sheet["faces"], out_dir,
                                      metrics.suite().face_model(sheet["backend"]))
        threshold = ref.config.quality.identity
        worst = min(embedding.similarities)
        yield dg.MaterializeResult(
            metadata={"images": len(embedding.names), "dimensions": embedding.manifest["dimensions"],
                      "min_similarity": worst, "backend": embedding.manifest["backend"],
                      "device": embedding.manifest["device"],
                      "similarities": dg.MetadataValue.json(embedding.manifest["similarities"])},
            data_version=content_version(out_dir / entry["path"] for entry in embedding.manifest["files"]),
        )
        below = [n for n, s in zip(embedding.names, embedding.similarities, strict=True) if s < threshold]
        yield gate("references_agree", not below, worst, threshold, embedding.manifest["backend"],
                   disagreeing=", ".join(below) or "none")

    return [character_reference, character_embedding]
