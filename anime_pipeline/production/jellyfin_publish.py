"""jellyfin_publish: the episode in the media library, in the Jellyfin layout with NFO files and images
(embedded: a filesystem library; point ANIME_PIPELINE_LIBRARY at Jellyfin's library folder). With
`publisher: jellyfin` the server is asked first (key, library), then told about the files (a targeted
scan) and polled until it lists the episode: the `server_lists_it` gate."""

from __future__ import annotations

from pathlib import Path

from anime_pipeline.config.project import EpisodeRef, publication_spec
from anime_pipeline.manifest import Manifest, Record
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.episode_video import EpisodeManifest
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, StepFailed, Upstream
from anime_pipeline.publish.jellyfin import JellyfinPublication, JellyfinPublisher, ServerListing
from anime_pipeline.publish.library import publish_episode
from anime_pipeline.services.jellyfin import JellyfinError
from anime_pipeline.storage import sha256_file

PUBLISHER = "filesystem library (embedded, Jellyfin layout; no server configured)"
NO_SERVER = "no server to ask (publisher: filesystem)"


class ServerRecord(Record):
    """What the Jellyfin server said about the publication (its URL without credentials)."""

    url: str
    library: str
    scan: str
    listing: ServerListing


class PublishManifest(Manifest):
    publisher: str
    video: str
    nfo: str
    thumb: str
    series_dir: str
    library_files: list[str]
    episode_sha256: str
    server: ServerRecord | None  # None for the filesystem publisher


def _files_present(m: PublishManifest, _q) -> Measured:
    missing = [p for p in m.library_files if not Path(p).exists()]
    return Measured(len(m.library_files) - len(missing), "filesystem", {"missing": ", ".join(missing) or "none"},
                    threshold=len(m.library_files))


def _listed(m: PublishManifest, _q) -> Measured:
    if m.server is None:
        return Measured(True, NO_SERVER, threshold=True)
    listing = m.server.listing
    details = {"message": listing.message, "server_path": listing.server_path, "item_id": listing.item_id,
               "waited_s": round(listing.waited_seconds, 2), "polls": listing.polls}
    return Measured(listing.listed, f"Jellyfin /Items at {m.server.url}", details, threshold=True)


GATES: GateSet[PublishManifest] = GateSet((
    Gate("file_at_expected_path", "The episode, its NFO and thumbnail exist at the Jellyfin paths.", _files_present,
         "at_least"),
    Gate("server_lists_it", "publisher jellyfin: the server lists the episode at its path with its season and "
         "episode numbers, within jellyfin.wait_seconds.", _listed, "equals"),
))


class JellyfinPublish(Step[EpisodeRef, PublishManifest]):
    """Places the episode in the library with its NFO files and images, every file atomically; a retitled
    episode replaces its old files."""

    artifact = "jellyfin_publish"
    level = "episode"
    manifest_type = PublishManifest
    gates = GATES
    version = "2"

    def folder(self, ref: EpisodeRef, paths: StoragePaths) -> Path:
        return paths.publication(ref.key)

    def upstream(self, ref: EpisodeRef) -> list[Upstream]:
        return [Upstream("episode_video", ref.key)]

    def spec(self, ref: EpisodeRef) -> dict:
        return publication_spec(ref)

    def produce(self, ref: EpisodeRef, env: StepEnv, fingerprint: str | None) -> PublishManifest:
        episode_dir = env.paths.episode(ref.key)
        episode = EpisodeManifest.require(episode_dir, f"episode_video {ref.key}")
        video, thumb = episode_dir / "episode.mp4", episode_dir / "thumbnail.jpg"
        show = ref.config.show
        if ref.config.backends.publisher == "jellyfin":
            publication = self._to_server(ref, env, video, thumb, episode.duration)
            library = publication.paths
            server = ServerRecord(url=publication.server, library=publication.library, scan=publication.scan,
                                  listing=publication.listing)
            publisher = (f"Jellyfin server {publication.server} (library {publication.library!r}; "
                         f"files in {env.library})")
            env.log(f"published {ref.key} to {library.video}; {publication.scan}; {publication.listing.message}")
        else:
            library, publisher, server = publish_episode(env.library, show, ref.episode, video, thumb,
                                                         episode.duration), PUBLISHER, None
            env.log(f"published {ref.key} to {library.video}")
        manifest = PublishManifest(
            kind=self.artifact, key=ref.key, backend=publisher, device="cpu", publisher=publisher,
            video=str(library.video), nfo=str(library.nfo), thumb=str(library.thumb),
            series_dir=str(library.series_dir), library_files=[str(p) for p in library.all_files],
            episode_sha256=sha256_file(library.video), server=server)
        manifest.write(self.folder(ref, env.paths))
        return manifest

    def _to_server(self, ref: EpisodeRef, env: StepEnv, video: Path, thumb: Path, runtime: float
                   ) -> JellyfinPublication:
        """A refused key, an unknown library or an unreachable server fail the step in one line, each
        before a file is written."""
        settings = ref.config.jellyfin
        if settings is None:  # the show file's checks require the section; a hand-built config may lack it
            raise StepFailed("publisher jellyfin needs the show file's jellyfin: section")
        publisher = JellyfinPublisher(env.jellyfin(ref.config), env.library, settings.server_library_path,
                                      settings.wait_seconds, settings.poll_seconds)
        try:
            return publisher.publish(ref.config.show, ref.episode, video, thumb, runtime)
        except JellyfinError as exc:
            raise StepFailed(str(exc)) from exc

    def outputs(self, manifest: PublishManifest, folder: Path) -> list[Path]:
        return [Path(manifest.video), Path(manifest.nfo)]

    def metadata(self, manifest: PublishManifest, folder: Path) -> dict[str, MetadataValue]:
        listed = manifest.server.listing.message if manifest.server else NO_SERVER
        return {"publisher": manifest.publisher, "video": FileLink(Path(manifest.video)), "server_listing": listed,
                "series_folder": FileLink(Path(manifest.series_dir)), "files": len(manifest.library_files),
                "preview": Preview(Path(manifest.thumb), "episode thumbnail")}
