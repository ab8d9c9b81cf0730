"""shot_clip: one clip per shot, rendered with progressive gates and checked frame by frame."""

import dagster as dg
import numpy as np

from anime_pipeline import partitions
from anime_pipeline.assets.common import ALL, blocking, content_version, gate, preview, reference_images
from anime_pipeline.assets.phases import GATED, require_open
from anime_pipeline.assets.show_config import shot_spec
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import FINGERPRINT, unchanged
from anime_pipeline.production.adapter import load_adapter_palette
from anime_pipeline.production.characters import load_anchor
from anime_pipeline.production.shots import last_frame, render_shot
from anime_pipeline.resources import (DirectorResource, MetricsResource, ProjectResource, RendererResource,
                                      StorageResource)
from anime_pipeline.settings import Settings
from anime_pipeline.storage import sha256_file, sha256_json

GROUP = "shots"


class ShotConfig(dg.Config):
    force: bool = False  # re-render even when nothing that determines the clip has changed


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.shots, group_name=GROUP, code_version="1",
        automation_condition=GATED, pool=settings.renderer_pool,
        kinds={"video"},
        deps=[shot_spec, "phase1_stills", dg.AssetDep("character_lora", partition_mapping=ALL),
              dg.AssetDep("character_embedding", partition_mapping=ALL)],
        check_specs=blocking("shot_clip", partitions.shots, "identity", "temporal_stability", "motion_smoothness",
                             "not_a_still", "temporal_flickering", descriptions={
            "temporal_flickering": "VBench temporal flickering ≥ threshold: a flashing clip fails.",
            "identity": "Every character in the shot keeps identity ≥ threshold in every frame.",
            "temporal_stability": "Mean frame-to-frame perceptual change ≤ the temporal LPIPS threshold.",
            "motion_smoothness": "VBench motion smoothness ≥ threshold.",
            "not_a_still": "The clip moves: mean frame difference above the motion floor."}),
    )
    def shot_clip(context: dg.AssetExecutionContext, config: ShotConfig, project: ProjectResource,
                  storage: StorageResource, renderer: RendererResource, director: DirectorResource,
                  metrics: MetricsResource):
        """Keyframe-to-video for one shot (embedded: the previz renderer animates the shot's motion preset)."""
        loaded = project.load()
        ref = loaded.shots[context.partition_key]
        require_open(context, "shot_clip", ref.config.show.slug)
        paths = storage.paths
        out_dir = paths.shot(ref.key)
        anchors = {c.slug: load_anchor(paths.embedding(f"{ref.config.show.slug}/{c.slug}")) for c in ref.characters()}
        adapters = {c.slug: load_adapter_palette(paths.adapter(f"{ref.config.show.slug}/{c.slug}")) for c in ref.characters()}
        first_frame_path = None
        if ref.shot.continuity:
            first_frame_path = last_frame(paths.shot(ref.previous_key)) if ref.previous_key else None
            if first_frame_path is None:
                raise dg.Failure(f"shot {ref.key} continues from {ref.previous_key}, which has no frames yet: "
                                 f"materialize shot_clip for {ref.previous_key} first")
        fingerprint = sha256_json({
            "spec": loaded.fingerprints()["shot"][ref.key], "anchors": {s: a.as_lists() for s, a in anchors.items()},
            "adapters": adapters, "first_frame": sha256_file(first_frame_path) if first_frame_path else None,
            "metrics": metrics.active_backends(),
        })
        previous = None if config.force else unchanged(out_dir, fingerprint, "clip.mp4")
        planner = director.for_show(ref.config)
        if previous:
            context.log.info(f"{ref.key}: nothing that determines the clip changed; keeping the existing render")
            manifest, frames = previous, [load_png(out_dir / "frames" / "0000.png")]
        else:
            first = load_png(first_frame_path) if first_frame_path else None
            references = reference_images(paths, ref.config.show.slug, ref.shot.characters)
            with renderer.session(context, ref.config, references) as backend:
                result = render_shot(ref, backend, planner, anchors, adapters, first, out_dir, metrics.suite(),
                                     extra_manifest={FINGERPRINT: fingerprint})
            context.log.info(f"{ref.key}: prompt via {' → '.join(result.manifest['director_path'])}")
            for attempt in result.attempts:
                context.log.info(f"{ref.key} attempt {attempt['attempt']}: quality {attempt['scores']['quality']} "
                                 f"(threshold {attempt['threshold']}) → {'pass' if attempt['passed'] else 'retry'}")
            manifest, frames = result.manifest, result.frames
        checks = list(_results(ref, manifest, frames, out_dir))
        yield from checks
        gates = {c.check_name: c.passed for c in checks if isinstance(c, dg.AssetCheckResult)}
        if planner.send_feedback({"shot": ref.key, "metrics": manifest["metrics"], "gates": gates,
                                  "prompt": manifest["prompt"], "seed": manifest["attempts"][manifest["chosen_attempt"] - 1]["seed"]}):
            context.log.info(f"{ref.key}: gate results sent to the director")

    return [shot_clip]


def _results(ref, manifest: dict, frames: list[np.ndarray], out_dir):
    metrics, q = manifest["metrics"], ref.config.quality
    yield dg.MaterializeResult(
        metadata={"frames": manifest["frames"], "duration_s": manifest["duration"], "attempts": len(manifest["attempts"]),
                  "chosen_attempt": manifest["chosen_attempt"], "quality": metrics["quality"],
                  "identity": dg.MetadataValue.json(metrics["identity"]), "temporal_change": metrics["temporal_change"],
                  "motion_smoothness": metrics["motion_smoothness"], "temporal_flickering": metrics["temporal_flickering"],
                  "backend": manifest["backend"], "device": manifest["device"], "director": manifest["director"],
                  "metric_fallbacks": dg.MetadataValue.json(manifest["metric_fallbacks"]),
                  "director_path": " → ".join(manifest.get("director_path", [])),
                  "prompt_before_refinement": manifest.get("prompt_before_refinement", ""), "prompt": manifest["prompt"], "seed": manifest["attempts"][manifest["chosen_attempt"] - 1]["seed"],
                  "clip": dg.MetadataValue.path(str(out_dir / "clip.mp4")), "preview": preview(frames[0], "first frame")},
        data_version=content_version([out_dir / "clip.mp4"]),
    )
    chosen = manifest["attempts"][manifest["chosen_attempt"] - 1]["scores"]
    identity, worst = metrics["identity"], chosen["worst_frames"]
    lowest = min(identity.values(), default=1.0)
    yield gate("identity", lowest >= q.identity, lowest, q.identity, metrics["backends"].get("identity", "n/a"),
               per_character=dg.MetadataValue.json(identity), worst_frames=dg.MetadataValue.json(worst["identity"]))
    yield gate("temporal_stability", chosen["temporal_change"] <= q.temporal_lpips, chosen["temporal_change"],
               q.temporal_lpips, metrics["backends"]["temporal_change"],
               worst_frames=dg.MetadataValue.json(worst["temporal_change"]))
    yield gate("motion_smoothness", chosen["motion_smoothness"] >= q.motion_smoothness, chosen["motion_smoothness"],
               q.motion_smoothness, metrics["backends"]["motion_smoothness"],
               worst_frames=dg.MetadataValue.json(worst["motion_smoothness"]))
    yield gate("temporal_flickering", chosen["temporal_flickering"] >= q.temporal_flickering,
               chosen["temporal_flickering"], q.temporal_flickering, metrics["backends"]["temporal_flickering"],
               worst_frames=dg.MetadataValue.json(worst["temporal_flickering"]))
    yield gate("not_a_still", chosen["mean_motion"] >= q.min_motion, chosen["mean_motion"], q.min_motion,
               metrics["backends"]["dynamic_degree"], dynamic_degree=chosen["dynamic_degree"])
