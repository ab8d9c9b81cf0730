"""jellyfin_publish: the episode in a Jellyfin-layout library, with NFO files and images."""

import dagster as dg

from anime_pipeline import partitions
from anime_pipeline.assets.common import blocking, content_version, gate, preview, require_upstream
from anime_pipeline.assets.phases import GATED
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import MANIFEST_NAME, read_manifest
from anime_pipeline.publish.library import publish_episode
from anime_pipeline.resources import ProjectResource, StorageResource

GROUP = "publish"
PUBLISHER = "filesystem library (embedded, Jellyfin layout; no server configured)"


def build() -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions.episodes, deps=["episode_video"], group_name=GROUP, code_version="1",
        automation_condition=GATED,
        kinds={"folder"},
        check_specs=blocking("jellyfin_publish", partitions.episodes, "file_at_expected_path", descriptions={
            "file_at_expected_path": "The episode, its NFO and thumbnail exist at the Jellyfin paths."}),
    )
    def jellyfin_publish(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource):
        ref = project.load().episodes[context.partition_key]
        episode_dir = storage.paths.episode(ref.key)
        require_upstream(f"jellyfin_publish {ref.key}", "episode_video", {ref.key: episode_dir / MANIFEST_NAME})
        manifest = read_manifest(episode_dir)
        library = publish_episode(storage.library, ref.config.show, ref.episode, episode_dir / "episode.mp4",
                                  episode_dir / "thumbnail.jpg", manifest["duration"])
        context.log.info(f"published {ref.key} to {library.video}")
        yield dg.MaterializeResult(
            metadata={"publisher": PUBLISHER, "video": dg.MetadataValue.path(str(library.video)),
                      "series_folder": dg.MetadataValue.path(str(library.series_dir)), "files": len(library.all_files),
                      "preview": preview(load_png(library.thumb), "episode thumbnail")},
            data_version=content_version([library.video, library.nfo]),
        )
        missing = [str(p) for p in library.all_files if not p.exists()]
        yield gate("file_at_expected_path", not missing, len(library.all_files) - len(missing), len(library.all_files),
                   "filesystem", missing=", ".join(missing) or "none")

    return [jellyfin_publish]
