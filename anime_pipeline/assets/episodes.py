"""episode_video: the episode's scenes in order, a thumbnail from the first frame, chapters."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import ALL, blocking, content_version, gate, preview, require_upstream
from anime_pipeline.assets.phases import GATED, require_open
from anime_pipeline.assets.show_config import episode_spec
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import FINGERPRINT, unchanged
from anime_pipeline.media import MediaError, decode_check
from anime_pipeline.production.assembly import assemble_episode_video
from anime_pipeline.resources import ProjectResource, StorageResource
from anime_pipeline.storage import sha256_file, sha256_json

GROUP = "assembly"


def build() -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.episodes, group_name=GROUP, code_version="1",
        automation_condition=GATED, kinds={"video"},
        deps=[episode_spec, "phase3_video", dg.AssetDep("scene_video", partition_mapping=ALL)],
        check_specs=blocking("episode_video", partitions.episodes, "decodes", "duration", descriptions={
            "decodes": "The episode decodes end to end without an error.",
            "duration": "Duration = the sum of its scenes (within one frame)."}),
    )
    def episode_video(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource):
        loaded = project.load()
        ref = loaded.episodes[context.partition_key]
        require_open(context, "episode_video", ref.config.show.slug)
        paths = storage.paths
        scene_dirs = [paths.scene(k) for k in ref.scene_keys]
        require_upstream(f"episode {ref.key}", "scene_video",
                         {k: d / "scene.mp4" for k, d in zip(ref.scene_keys, scene_dirs, strict=True)})
        out_dir = paths.episode(ref.key)
        fingerprint = sha256_json({"spec": loaded.fingerprints()["episode"][ref.key],
                                   "scenes": [sha256_file(d / "scene.mp4") for d in scene_dirs]})
        manifest = unchanged(out_dir, fingerprint, "episode.mp4")
        if manifest:
            context.log.info(f"{ref.key}: scenes unchanged; keeping the existing episode video")
        else:
            manifest = assemble_episode_video(ref, scene_dirs, out_dir, extra_manifest={FINGERPRINT: fingerprint}).manifest
        video_path = out_dir / "episode.mp4"
        try:
            decode_check(video_path)
            decode_error = ""
        except MediaError as exc:
            decode_error = str(exc)
        fps = ref.config.show.video.fps
        yield dg.MaterializeResult(
            metadata={"scenes": len(ref.scene_keys), "duration_s": manifest["duration"], "frames": manifest["frames"],
                      "chapters": dg.MetadataValue.json(manifest["chapters"]), "backend": manifest["backend"],
                      "device": "cpu", "video": dg.MetadataValue.path(str(video_path)),
                      "preview": preview(load_png(out_dir / "thumbnail.jpg"), "thumbnail")},
            data_version=content_version([video_path]),
        )
        yield gate("decodes", not decode_error, decode_error or "ok", "no decode errors", "ffmpeg full decode")
        yield gate("duration", abs(manifest["duration"] - manifest["expected_duration"]) <= 1.0 / fps,
                   manifest["duration"], manifest["expected_duration"], "decoded duration vs Σ scenes")

    return [episode_video]
