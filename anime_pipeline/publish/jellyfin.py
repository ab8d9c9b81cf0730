"""`publisher: jellyfin`: the filesystem library's files, then the server told and asked.

1. Before any file is touched: the server answers, the key is accepted and one of its
   libraries holds the series folder (as the server sees it). Any of these failing is one
   clear `JellyfinError`, and the library on disk is left as it was.
2. The files land as `publish/library.py` writes them: staged, then renamed into place.
3. A targeted `POST /Library/Media/Updated` for the episode's path (and for the file of a
   renamed episode, so its item goes); `/Library/Refresh` when the server lacks that route.
4. `/Items` polled until the series lists exactly one episode with the season and episode
   numbers at the expected path: the `server_lists_it` gate's result, with how long it took,
   or a clear message after the configured wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from anime_pipeline.config.schema import Episode, Show
from anime_pipeline.publish.library import SEASON, LibraryPaths, library_paths, publish_episode
from anime_pipeline.services.bounded_http import Deadline
from anime_pipeline.services.jellyfin import Item, JellyfinClient, JellyfinError, JellyfinRejected, VirtualFolder

MISSING_ROUTE = (404, 405)


class JellyfinLibraryUnknown(JellyfinError):
    """No library of the server contains the folder the publisher writes to."""


@dataclass(frozen=True)
class ServerListing:
    """Gate `server_lists_it`."""

    listed: bool
    message: str
    server_path: str
    season: int
    episode: int
    item_id: str | None
    waited_seconds: float
    polls: int


@dataclass(frozen=True)
class JellyfinPublication:
    paths: LibraryPaths
    server: str  # the server's URL, without credentials
    library: str  # the Jellyfin library that holds the series
    scan: str  # which request asked the server to look
    listing: ServerListing


class JellyfinPublisher:
    """Publishes into `library_root` (this machine's view of the library), which the server
    sees as `server_library_path`."""

    def __init__(self, client: JellyfinClient, library_root: Path, server_library_path: str,
                 wait_seconds: float = 300.0, poll_seconds: float = 5.0) -> None:
        self.client, self.library_root = client, Path(library_root)
        self.server_root = PurePosixPath(server_library_path)
        self.wait_seconds, self.poll_seconds = wait_seconds, poll_seconds

    def server_path(self, local: Path) -> str:
        return str(self.server_root.joinpath(*Path(local).relative_to(self.library_root).parts))

    def check_library(self, show: Show, episode: Episode) -> VirtualFolder:
        """The server library that will hold the series; raises before anything is written."""
        series = PurePosixPath(self.server_path(library_paths(self.library_root, show, episode).series_dir))
        folders = self.client.virtual_folders()
        for folder in folders:
            if any(series.is_relative_to(PurePosixPath(location)) for location in folder.locations):
                return folder
        known = "; ".join(f"{f.name}: {', '.join(f.locations) or 'no folders'}" for f in folders) or "none"
        raise JellyfinLibraryUnknown(
            f"Jellyfin {self.client.url} has no library containing {series} (the series folder as the server sees "
            f"it, from server_library_path {self.server_root}); its libraries: {known}")

    def publish(self, show: Show, episode: Episode, video: Path, thumbnail: Path,
                runtime_seconds: float) -> JellyfinPublication:
        folder = self.check_library(show, episode)
        existed = library_paths(self.library_root, show, episode).video.exists()
        paths = publish_episode(self.library_root, show, episode, video, thumbnail, runtime_seconds)
        updates = [(self.server_path(paths.video), "Modified" if existed else "Created")]
        updates += [(self.server_path(old), "Deleted") for old in paths.removed if old.suffix == paths.video.suffix]
        scan = self._notify(updates)
        listing = self.wait_listed(show, episode, paths)
        return JellyfinPublication(paths, self.client.url, folder.name, scan, listing)

    def _notify(self, updates: list[tuple[str, str]]) -> str:
        try:
            self.client.report_media_updated(updates)
            return f"targeted scan (POST /Library/Media/Updated, {len(updates)} path(s))"
        except JellyfinRejected as exc:
            if exc.status not in MISSING_ROUTE:
                raise
        self.client.refresh_library()
        return "full library scan (POST /Library/Refresh; this server has no /Library/Media/Updated)"

    def wait_listed(self, show: Show, episode: Episode, paths: LibraryPaths) -> ServerListing:
        expected = self.server_path(paths.video)
        series_path = self.server_path(paths.series_dir)
        started, polls = time.monotonic(), 0
        deadline = Deadline(self.wait_seconds)
        while True:
            polls += 1
            found, problem = self._look(show.title, series_path, expected, episode.number)
            waited = time.monotonic() - started
            if found is not None:
                return ServerListing(True, f"listed as item {found.id} at {expected} after {waited:.1f} s",
                                     expected, SEASON, episode.number, found.id, waited, polls)
            if deadline.remaining() <= 0:
                return ServerListing(False, f"Jellyfin {self.client.url} did not list S{SEASON:02d}E"
                                     f"{episode.number:02d} at {expected} within {self.wait_seconds:g} s: {problem}",
                                     expected, SEASON, episode.number, None, waited, polls)
            deadline.sleep(self.poll_seconds)

    def _look(self, title: str, series_path: str, expected: str, number: int) -> tuple[Item | None, str]:
        series = [item for item in self.client.series(title) if item.path == series_path]
        if not series:
            return None, f"no series at {series_path} yet"
        matches = [item for item in self.client.episodes(series[0].id)
                   if (item.parent_index_number, item.index_number) == (SEASON, number)]
        if not matches:
            return None, f"the series lists no S{SEASON:02d}E{number:02d} yet"
        if len(matches) > 1:
            listed = ", ".join(str(m.path) for m in matches)
            return None, f"{len(matches)} items for S{SEASON:02d}E{number:02d} ({listed})"
        if matches[0].path != expected:
            return None, f"S{SEASON:02d}E{number:02d} is still listed at {matches[0].path}"
        return matches[0], ""
