"""An in-process Jellyfin server that behaves like the real one for a publisher (protocols.md §3,
protocols-more.md §3): API-key auth in the `Authorization: MediaBrowser … Token=` header (the
legacy forms refused, as Jellyfin 12 does by default), case-insensitive routes, libraries with
folders, and a library that lists an episode only once a scan covering its path has run —
after `/Library/Media/Updated` for that path (debounced by `monitor_delay`, walking up to the
nearest folder the library knows) or `/Library/Refresh`. Scans read the real files: the fake
is told which local folder each server path is."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tests.services.fake_ollama import Served

VIDEO_SUFFIXES = {".mp4", ".mkv", ".m4v", ".avi", ".webm"}
EPISODE_TOKEN = re.compile(r"S(\d{1,3})E(\d{1,4})", re.I)
SEASON_FOLDER = re.compile(r"^Season (\d+)$", re.I)
AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def item_id(path: str) -> str:
    """Jellyfin derives an item's id from its path: the same path is the same item."""
    return hashlib.md5(path.encode()).hexdigest()


@dataclass
class FakeItem:
    id: str
    name: str
    type: str
    path: str
    parent_id: str | None
    index_number: int | None = None
    parent_index_number: int | None = None
    series_id: str | None = None
    series_name: str | None = None

    def to_api(self, fields: set[str]) -> dict[str, Any]:
        entry: dict[str, Any] = {"Name": self.name, "ServerId": "fake-server", "Id": self.id, "Type": self.type,
                                 "IsFolder": self.type != "Episode"}
        if self.index_number is not None:
            entry["IndexNumber"] = self.index_number
        if self.parent_index_number is not None:
            entry["ParentIndexNumber"] = self.parent_index_number
        if self.series_id:
            entry.update(SeriesId=self.series_id, SeriesName=self.series_name)
        if "path" in fields:
            entry["Path"] = self.path
        if "providerids" in fields:
            entry["ProviderIds"] = {}
        return entry


@dataclass
class Library:
    name: str
    location: str  # as the server sees it
    local: Path  # where that folder is on this machine


@dataclass
class FakeJellyfin(Served):
    """Knobs: `api_key`; `libraries` {name: (server path, local folder)}; `monitor_delay` and
    `scan_delay` (seconds before a reported path / a full refresh is scanned); `media_updated_route`
    (False: the route answers 404, like a server without it); `fail_status` (every authorised call
    answers it); `legacy_auth` (accept X-Emby-Token and ?api_key=); `admin_key` (False: a key
    without elevation, refused with 403 where Jellyfin requires it). Records `requests`, `reported`
    (paths from /Library/Media/Updated) and `refreshes`."""

    api_key: str
    libraries: dict[str, tuple[str, Path]]
    monitor_delay: float = 0.05
    scan_delay: float = 0.05
    media_updated_route: bool = True
    fail_status: int | None = None
    legacy_auth: bool = False
    admin_key: bool = True
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    reported: list[dict[str, Any]] = field(default_factory=list)
    refreshes: int = 0
    scans: int = 0

    def __post_init__(self) -> None:
        self._libraries = [Library(name, str(PurePosixPath(loc)), Path(local))
                           for name, (loc, local) in self.libraries.items()]
        self._items: dict[str, FakeItem] = {}
        self._lock = threading.Lock()
        app = web.Application(middlewares=[self._lowercase])
        app.router.add_get("/system/info/public", self._public_info)
        app.router.add_get("/library/virtualfolders", self._virtual_folders)
        app.router.add_post("/library/media/updated", self._media_updated)
        app.router.add_post("/library/refresh", self._refresh)
        app.router.add_get("/items", self._items_route)
        self.serve(app)

    # state, for tests

    def listed(self, kind: str = "Episode") -> list[FakeItem]:
        with self._lock:
            return [item for item in self._items.values() if item.type == kind]

    # middleware and auth

    @web.middleware
    async def _lowercase(self, request: web.Request, handler):
        self.requests.append((request.method, request.path, dict(request.headers)))
        if request.path != request.path.lower():  # ASP.NET routes ignore case
            lowered = request.rel_url.with_path(request.path.lower()).with_query(request.query)
            return await self._app_handler(request.clone(rel_url=lowered))
        return await handler(request)

    async def _app_handler(self, request: web.Request):
        match = await request.app.router.resolve(request)
        return await match.handler(request)

    def _token(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme == "MediaBrowser" or (scheme == "Emby" and self.legacy_auth):
            fields = {k.lower(): unquote(v) for k, v in AUTH_FIELD.findall(rest)}
            if fields.get("token"):
                return fields["token"]
        if request.query.get("ApiKey"):
            return request.query["ApiKey"]
        if self.legacy_auth:
            return request.headers.get("X-Emby-Token") or request.query.get("api_key")
        return None

    def _deny(self, request: web.Request, elevation: bool = False) -> web.Response | None:
        if self._token(request) != self.api_key:
            return web.Response(status=401)
        if elevation and not self.admin_key:
            return web.Response(status=403)
        if self.fail_status is not None:
            return web.json_response({"type": "https://tools.ietf.org/html/rfc9110", "title": "Fake failure",
                                      "status": self.fail_status}, status=self.fail_status)
        return None

    # routes

    async def _public_info(self, request: web.Request) -> web.Response:
        return web.json_response({"LocalAddress": self.url, "ServerName": "fake-jellyfin", "Version": "12.0.0",
                                  "ProductName": "Jellyfin Server", "Id": "fake-server",
                                  "StartupWizardCompleted": True})

    async def _virtual_folders(self, request: web.Request) -> web.Response:
        if denied := self._deny(request, elevation=True):
            return denied
        return web.json_response([{"Name": lib.name, "Locations": [lib.location], "CollectionType": "tvshows",
                                   "ItemId": item_id(lib.location), "RefreshStatus": "Idle"}
                                  for lib in self._libraries])

    async def _media_updated(self, request: web.Request) -> web.Response:
        if denied := self._deny(request):
            return denied
        if not self.media_updated_route:
            return web.Response(status=404)
        body = await request.json()
        updates = body.get("Updates") if isinstance(body, dict) else None
        if not isinstance(updates, list) or any(not isinstance(u, dict) or not u.get("Path") for u in updates):
            return web.json_response({"title": "One or more validation errors occurred.", "status": 400}, status=400)
        loop = asyncio.get_running_loop()
        for update in updates:
            self.reported.append(update)
            loop.call_later(self.monitor_delay, self._scan_near, update["Path"])
        return web.Response(status=204)

    async def _refresh(self, request: web.Request) -> web.Response:
        if denied := self._deny(request, elevation=True):
            return denied
        self.refreshes += 1
        asyncio.get_running_loop().call_later(self.scan_delay, self._scan_all)
        return web.Response(status=204)

    async def _items_route(self, request: web.Request) -> web.Response:
        if denied := self._deny(request):
            return denied
        query = {k.lower(): v for k, v in request.query.items()}
        fields = {f.strip().lower() for f in query.get("fields", "").split(",") if f.strip()}
        with self._lock:
            found = [item for item in self._items.values() if self._matches(item, query)]
        found.sort(key=lambda i: (i.type, i.parent_index_number or 0, i.index_number or 0, i.name))
        return web.json_response({"Items": [item.to_api(fields) for item in found], "TotalRecordCount": len(found),
                                  "StartIndex": 0})

    def _matches(self, item: FakeItem, query: dict[str, str]) -> bool:
        types = {t.strip().lower() for t in query.get("includeitemtypes", "").split(",") if t.strip()}
        if types and item.type.lower() not in types:
            return False
        term = query.get("searchterm", "").lower()
        if term and term not in item.name.lower():
            return False
        parent = query.get("parentid")
        if parent:
            recursive = query.get("recursive", "false").lower() == "true"
            return item.parent_id == parent or (recursive and self._descends(item, parent))
        return True

    def _descends(self, item: FakeItem, ancestor: str) -> bool:
        parent = item.parent_id
        while parent is not None:
            if parent == ancestor:
                return True
            parent = self._items[parent].parent_id if parent in self._items else None
        return False

    # scanning

    def _library_of(self, path: PurePosixPath) -> Library | None:
        return next((lib for lib in self._libraries if path.is_relative_to(lib.location)), None)

    def _scan_near(self, reported: str) -> None:
        """What the library monitor does after its delay: the nearest existing folder item above the
        path (or the library root) is refreshed. Paths outside every library are ignored."""
        path = PurePosixPath(reported)
        library = self._library_of(path)
        if library is None:
            return
        relative = path.relative_to(library.location).parts
        series_dir = PurePosixPath(library.location, *relative[:1]) if relative else None
        with self._lock:
            known = series_dir is not None and item_id(str(series_dir)) in self._items
        self._scan(library, series_dir if known else None)

    def _scan_all(self) -> None:
        for library in self._libraries:
            self._scan(library, None)

    def _scan(self, library: Library, series_dir: PurePosixPath | None) -> None:
        """Rescan one series folder, or the whole library: add what is on disk, drop what is gone."""
        with self._lock:
            self.scans += 1
            targets = [series_dir] if series_dir else [
                PurePosixPath(library.location, p.name) for p in sorted(library.local.glob("*")) if p.is_dir()
                and not p.name.startswith(".")]
            scope = str(series_dir) if series_dir else library.location
            for old in [i for i in self._items.values() if i.path == scope or i.path.startswith(scope + "/")]:
                del self._items[old.id]
            for target in targets:
                self._add_series(library, target)

    def _local(self, library: Library, path: PurePosixPath) -> Path:
        return library.local.joinpath(*path.relative_to(library.location).parts)

    def _add_series(self, library: Library, series_dir: PurePosixPath) -> None:
        local = self._local(library, series_dir)
        if not local.is_dir():
            return
        name = _nfo_title(local / "tvshow.nfo") or re.sub(r"\s*\(\d{4}\)\s*$", "", series_dir.name)
        series = FakeItem(item_id(str(series_dir)), name, "Series", str(series_dir), item_id(library.location))
        self._items[series.id] = series
        for season_folder in sorted(local.iterdir()):
            number = SEASON_FOLDER.match(season_folder.name)
            if not season_folder.is_dir() or not number:
                continue
            season_path = series_dir / season_folder.name
            season = FakeItem(item_id(str(season_path)), f"Season {int(number[1])}", "Season", str(season_path),
                              series.id, index_number=int(number[1]), series_id=series.id, series_name=name)
            self._items[season.id] = season
            for video in sorted(season_folder.iterdir()):
                self._add_episode(video, season_path / video.name, season, series)

    def _add_episode(self, video: Path, path: PurePosixPath, season: FakeItem, series: FakeItem) -> None:
        token = EPISODE_TOKEN.search(video.stem)
        if video.name.startswith(".") or video.suffix.lower() not in VIDEO_SUFFIXES or not token:
            return
        title = _nfo_title(video.with_suffix(".nfo")) or video.stem
        episode = FakeItem(item_id(str(path)), title, "Episode", str(path), season.id,
                           index_number=int(token[2]), parent_index_number=int(token[1]), series_id=series.id,
                           series_name=series.name)
        self._items[episode.id] = episode


def _nfo_title(nfo: Path) -> str | None:
    try:
        return ET.parse(nfo).getroot().findtext("title")
    except (OSError, ET.ParseError):
        return None
