"""A Jellyfin-layout media library on the filesystem (protocols.md §3): naming, NFO files, images.

`Shows/{Show} ({year})/Season 01/{Show} S01E01 - {Title}.mp4` with `tvshow.nfo`,
`season.nfo`, the episode's `.nfo` sidecar and its `-thumb.jpg`.
"""

from __future__ import annotations

import re
import shutil
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from xml.sax.saxutils import escape

from anime_pipeline.config.schema import Episode, Show
from anime_pipeline.storage import atomic_path, outputs, write_text

RESERVED = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
SEASON = 1
XML_HEAD = '<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n'


def safe_name(text: str) -> str:
    """Strip characters Jellyfin (and Windows shares) reserve; collapse whitespace; no leading dots."""
    cleaned = re.sub(r"\s+", " ", RESERVED.sub("", text)).strip().lstrip(".")
    if not cleaned:
        raise ValueError(f"{text!r} has no characters left for a file name")
    return cleaned


@dataclass(frozen=True)
class LibraryPaths:
    series_dir: Path
    season_dir: Path
    video: Path
    nfo: Path
    thumb: Path
    removed: tuple[Path, ...] = ()  # files of this episode under an old title, deleted by the publication

    @property
    def all_files(self) -> list[Path]:
        return [self.series_dir / "tvshow.nfo", self.series_dir / "poster.jpg", self.season_dir / "season.nfo",
                self.video, self.nfo, self.thumb]


def library_paths(library_root: Path, show: Show, episode: Episode) -> LibraryPaths:
    series = safe_name(f"{show.title} ({show.year})")
    season_dir = library_root / "Shows" / series / f"Season {SEASON:02d}"
    base = safe_name(f"{show.title} S{SEASON:02d}E{episode.number:02d} - {episode.title}")
    return LibraryPaths(season_dir.parent, season_dir, season_dir / f"{base}.mp4", season_dir / f"{base}.nfo",
                        season_dir / f"{base}-thumb.jpg")


def _tag(name: str, value: object) -> str:
    return f"  <{name}>{escape(str(value))}</{name}>\n"


def tvshow_nfo(show: Show) -> str:
    body = _tag("title", show.title) + _tag("plot", show.storyline.strip()) + _tag("year", show.year)
    body += _tag("premiered", f"{show.year}-01-01") + "".join(_tag("genre", g) for g in show.genres)
    body += _tag("studio", show.studio) + _tag("lockdata", "false")
    return f"{XML_HEAD}<tvshow>\n{body}</tvshow>\n"


def season_nfo(show: Show) -> str:
    body = _tag("title", f"Season {SEASON}") + _tag("seasonnumber", SEASON) + _tag("showtitle", show.title)
    return f"{XML_HEAD}<season>\n{body}</season>\n"


def episode_nfo(show: Show, episode: Episode, runtime_seconds: float) -> str:
    body = _tag("title", episode.title) + _tag("showtitle", show.title) + _tag("season", SEASON)
    body += _tag("episode", episode.number) + _tag("plot", episode.synopsis.strip())
    if episode.aired:
        body += _tag("aired", episode.aired)
    body += _tag("runtime", max(1, round(runtime_seconds / 60)))
    return f"{XML_HEAD}<episodedetails>\n{body}</episodedetails>\n"


def publish_episode(library_root: Path, show: Show, episode: Episode, video: Path, thumbnail: Path,
                    runtime_seconds: float) -> LibraryPaths:
    """Write (or replace) one episode and the series/season metadata.

    Every file is staged under a temporary name beside its target first; only once all of them
    are staged are they renamed into place (the video last, so a scanner that sees it finds its
    NFO and thumbnail). A failure before that — a missing thumbnail, a full disk — leaves the
    library exactly as it was.
    """
    paths = library_paths(library_root, show, episode)
    texts = {paths.nfo: episode_nfo(show, episode, runtime_seconds), paths.series_dir / "tvshow.nfo": tvshow_nfo(show),
             paths.season_dir / "season.nfo": season_nfo(show)}
    poster = paths.series_dir / "poster.jpg"
    with ExitStack() as stage:  # contexts rename on a clean exit, last entered first
        shutil.copyfile(video, stage.enter_context(atomic_path(paths.video)))
        shutil.copyfile(thumbnail, stage.enter_context(atomic_path(paths.thumb)))
        if not poster.exists():
            shutil.copyfile(thumbnail, stage.enter_context(atomic_path(poster)))
        for target, text in texts.items():
            write_text(stage.enter_context(atomic_path(target)), text)
    return replace(paths, removed=_remove_renamed(paths, episode))


def _remove_renamed(paths: LibraryPaths, episode: Episode) -> tuple[Path, ...]:
    """A retitled episode must not show up twice: drop this episode number's files under an old title."""
    keep = {paths.video, paths.nfo, paths.thumb}
    removed = []
    for old in outputs(paths.season_dir, f"* S{SEASON:02d}E{episode.number:02d} - *"):
        if old not in keep:
            old.unlink()
            removed.append(old)
    return tuple(removed)
