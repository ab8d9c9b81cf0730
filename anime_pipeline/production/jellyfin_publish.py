"""jellyfin_publish: the episode in the media library, in the Jellyfin layout with NFO files and images
(embedded: a filesystem library; point ANIME_PIPELINE_LIBRARY at Jellyfin's library folder)."""

from __future__ import annotations

from pathlib import Path

from anime_pipeline.config.project import EpisodeRef, episode_spec
from anime_pipeline.manifest import Manifest
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.episode_video import EpisodeManifest
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Upstream
from anime_pipeline.publish.library import publish_episode
from anime_pipeline.storage import sha256_file

PUBLISHER = "filesystem library (embedded, Jellyfin layout; no server configured)"


class PublishManifest(Manifest):
    publisher: str
    video: str
    nfo: str
    thumb: str
    series_dir: str
    library_files: list[str]
    episode_sha256: str


def _files_present(m: PublishManifest, _q) -> Measured:
    missing = [p for p in m.library_files if not Path(p).exists()]
    return Measured(len(m.library_files) - len(missing), "filesystem", {"missing": ", ".join(missing) or "none"},
                    threshold=len(m.library_files))


GATES: GateSet[PublishManifest] = GateSet((
    Gate("file_at_expected_path", "The episode, its NFO and thumbnail exist at the Jellyfin paths.", _files_present,
         "at_least"),
))


class JellyfinPublish(Step[EpisodeRef, PublishManifest]):
    """Places the episode in the library with its NFO files and images, every file atomically; a retitled
    episode replaces its old files."""

    artifact = "jellyfin_publish"
    level = "episode"
    manifest_type = PublishManifest
    gates = GATES

    def folder(self, ref: EpisodeRef, paths: StoragePaths) -> Path:
        return paths.publication(ref.key)

    def upstream(self, ref: EpisodeRef) -> list[Upstream]:
        return [Upstream("episode_video", ref.key)]

    def spec(self, ref: EpisodeRef) -> dict:
        return episode_spec(ref)

    def produce(self, ref: EpisodeRef, env: StepEnv, fingerprint: str | None) -> PublishManifest:
        episode_dir = env.paths.episode(ref.key)
        episode = EpisodeManifest.require(episode_dir, f"episode_video {ref.key}")
        library = publish_episode(env.library, ref.config.show, ref.episode, episode_dir / "episode.mp4",
                                  episode_dir / "thumbnail.jpg", episode.duration)
        env.log(f"published {ref.key} to {library.video}")
        manifest = PublishManifest(
            kind=self.artifact, key=ref.key, backend=PUBLISHER, device="cpu", publisher=PUBLISHER,
            video=str(library.video), nfo=str(library.nfo), thumb=str(library.thumb),
            series_dir=str(library.series_dir), library_files=[str(p) for p in library.all_files],
            episode_sha256=sha256_file(library.video))
        manifest.write(self.folder(ref, env.paths))
        return manifest

    def outputs(self, manifest: PublishManifest, folder: Path) -> list[Path]:
        return [Path(manifest.video), Path(manifest.nfo)]

    def metadata(self, manifest: PublishManifest, folder: Path) -> dict[str, MetadataValue]:
        return {"publisher": manifest.publisher, "video": FileLink(Path(manifest.video)),
                "series_folder": FileLink(Path(manifest.series_dir)), "files": len(manifest.library_files),
                "preview": Preview(Path(manifest.thumb), "episode thumbnail")}
