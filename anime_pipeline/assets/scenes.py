"""scene_video: the scene's shots in order with transitions, an audio bed and subtitles."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import ALL, blocking, content_version, gate, preview, require_upstream
from anime_pipeline.assets.phases import GATED, require_open
from anime_pipeline.assets.show_config import scene_spec
from anime_pipeline.manifest import FINGERPRINT, read_manifest, unchanged
from anime_pipeline.media import read_frames
from anime_pipeline.production.assembly import assemble_scene_video
from anime_pipeline.resources import MetricsResource, ProjectResource, StorageResource
from anime_pipeline.storage import sha256_file, sha256_json
from anime_pipeline.settings import Settings

GROUP = "assembly"


def build(settings: Settings) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.scenes, group_name=GROUP, code_version="1", pool=settings.metrics_pool,
        automation_condition=GATED, kinds={"video"},
        deps=[scene_spec, "phase2_animation", dg.AssetDep("shot_clip", partition_mapping=ALL)],
        check_specs=blocking("scene_video", partitions.scenes, "duration_exact", "audio_present", "scene_continuity",
                             "subject_consistency", "cast_identity", descriptions={
            "cast_identity": "Phase 3 multi-character: every character keeps identity ≥ threshold in every shot.",
            "subject_consistency": "Phase 3: VBench subject consistency over the scene ≥ threshold.",
            "duration_exact": "Frames = Σ shot frames − transition overlaps.",
            "audio_present": "The scene has an AAC audio track.",
            "scene_continuity": "Continuity across shot boundaries ≥ threshold."}),
    )
    def scene_video(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource,
                    metrics: MetricsResource):
        """Transitions overlap 0.3 s (dissolve / fade / wipe); dialogue becomes subtitles; music at 30 %."""
        loaded = project.load()
        ref = loaded.scenes[context.partition_key]
        require_open(context, "scene_video", ref.config.show.slug)
        paths = storage.paths
        shot_dirs = [paths.shot(k) for k in ref.shot_keys]
        require_upstream(f"scene {ref.key}", "shot_clip",
                         {k: d / "clip.mp4" for k, d in zip(ref.shot_keys, shot_dirs, strict=True)})
        music = (loaded.files[ref.config.show.slug].parent / ref.scene.music) if ref.scene.music else None
        if music is not None and not music.exists():
            raise dg.Failure(f"scene {ref.key}: music file {music} (scenes[].music) does not exist")
        out_dir = paths.scene(ref.key)
        fingerprint = sha256_json({"spec": loaded.fingerprints()["scene"][ref.key],
                                   "clips": [sha256_file(d / "clip.mp4") for d in shot_dirs],
                                   "shot_gates": [read_manifest(d)["metrics"] for d in shot_dirs],
                                   "metrics": metrics.active_backends(),
                                   "music": sha256_file(music) if music else None})
        manifest = unchanged(out_dir, fingerprint, "scene.mp4")
        if manifest:
            context.log.info(f"{ref.key}: shots and scene spec unchanged; keeping the existing scene video")
        else:
            result = assemble_scene_video(ref, shot_dirs, out_dir, music, metrics.suite(),
                                          extra_manifest={FINGERPRINT: fingerprint})
            manifest = result.manifest
        video = manifest["video"]
        yield dg.MaterializeResult(
            metadata={"shots": len(ref.shot_keys), "frames": video["frames"], "duration_s": video["duration"],
                      "transitions": ", ".join(manifest["transitions"]) or "none",
                      "subtitle_cues": len(manifest["subtitles"]), "audio": video["audio_codec"] or "none",
                      "continuity": manifest["continuity"]["score"], "backend": manifest["backend"], "device": "cpu",
                      "video": dg.MetadataValue.path(str(out_dir / "scene.mp4")),
                      "preview": preview(read_frames(out_dir / "scene.mp4", max_frames=1)[0], "first frame")},
            data_version=content_version([out_dir / "scene.mp4", out_dir / "scene.srt"]),
        )
        yield gate("duration_exact", video["frames"] == manifest["expected_frames"], video["frames"],
                   manifest["expected_frames"], "decoded frame count", duration_s=video["duration"])
        yield gate("audio_present", video["audio_codec"] == "aac", video["audio_codec"] or "none", "aac", "ffmpeg probe")
        threshold = ref.config.quality.scene_continuity
        yield gate("scene_continuity", manifest["continuity"]["score"] >= threshold, manifest["continuity"]["score"],
                   threshold, manifest["continuity"]["backend"],
                   boundaries=dg.MetadataValue.json(manifest["continuity"]["boundaries"]))
        subject = manifest["subject_consistency"]
        threshold = ref.config.quality.subject_consistency
        yield gate("subject_consistency", subject["score"] >= threshold, subject["score"], threshold, subject["backend"])
        cast = manifest["cast_identity"]
        threshold = ref.config.quality.identity
        yield gate("cast_identity", cast["score"] >= threshold, cast["score"], threshold, cast["backend"],
                   per_character=dg.MetadataValue.json(cast["per_character"]),
                   per_shot=dg.MetadataValue.json(cast["per_shot"]))

    return [scene_video]
