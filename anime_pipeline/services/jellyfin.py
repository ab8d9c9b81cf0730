"""Client for the parts of the Jellyfin API a publisher needs (protocols.md §3, protocols-more.md §3).

Auth is the `Authorization: MediaBrowser … Token="<key>"` header, the one form every version
accepts (Jellyfin 12 turns the X-Emby-Token and api_key forms off by default). The key is
never part of a URL, a log line or a message. Every failure is a `JellyfinError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from anime_pipeline.services.bounded_http import (Deadline, DeadlineExceeded, Endpoint, Reply, TooLarge,
                                                  TransportError, exchange)

CLIENT_NAME = "anime-pipeline"
MAX_JSON_BYTES = 32 * 2**20  # a large library's /Items page
UpdateType = Literal["Created", "Modified", "Deleted"]


class JellyfinError(RuntimeError):
    """Anything that kept the Jellyfin server from doing what the publisher asked."""


class JellyfinUnavailable(JellyfinError):
    pass


class JellyfinTimeout(JellyfinError):
    pass


class JellyfinUnauthorized(JellyfinError):
    """HTTP 401/403: the API key is wrong, revoked, or lacks the rights."""


class JellyfinRejected(JellyfinError):
    """Another HTTP 4xx: a bad request, or a route this server does not have (404/405)."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class JellyfinServerError(JellyfinError):
    pass


class JellyfinProtocolError(JellyfinError):
    """An answer without the documented shape."""


@dataclass(frozen=True)
class VirtualFolder:
    name: str
    locations: tuple[str, ...]
    collection_type: str


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    type: str
    path: str | None
    index_number: int | None  # episode number for an Episode
    parent_index_number: int | None  # season number for an Episode
    series_id: str | None

    @classmethod
    def from_api(cls, entry: Any) -> Item:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("Id", "Type")):
            raise ValueError(f"an item without Id and Type: {str(entry)[:120]!r}")
        return cls(entry["Id"], str(entry.get("Name") or ""), entry["Type"], entry.get("Path"),
                   _int(entry.get("IndexNumber")), _int(entry.get("ParentIndexNumber")), entry.get("SeriesId"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quoted(value: str) -> str:
    return value.replace("\\", "").replace('"', "")


class JellyfinClient:
    def __init__(self, url: str, api_key: str, timeout: float = 30.0, device_id: str = "anime-pipeline-publisher",
                 version: str = "1.0") -> None:
        if not api_key:
            raise ValueError("a Jellyfin API key is needed (Dashboard → API Keys); set JELLYFIN_API_KEY")
        self.endpoint = Endpoint.parse(url)
        self.timeout = timeout
        self._headers = {"Authorization": (
            f'MediaBrowser Client="{CLIENT_NAME}", Device="{_quoted(device_id)}", DeviceId="{_quoted(device_id)}", '
            f'Version="{_quoted(version)}", Token="{_quoted(api_key)}"')}

    @property
    def url(self) -> str:
        return self.endpoint.display

    def public_info(self) -> dict[str, Any]:
        """GET /System/Info/Public (no auth): server name, version, id."""
        data = self._json("GET", "/System/Info/Public", auth=False)
        if not isinstance(data, dict):
            raise JellyfinProtocolError(f"Jellyfin {self.url}: /System/Info/Public is not an object")
        return data

    def virtual_folders(self) -> list[VirtualFolder]:
        data = self._json("GET", "/Library/VirtualFolders")
        if not isinstance(data, list):
            raise JellyfinProtocolError(f"Jellyfin {self.url}: /Library/VirtualFolders is not a list")
        folders = []
        for entry in data:
            locations = entry.get("Locations") if isinstance(entry, dict) else None
            if not isinstance(locations, list) or not all(isinstance(x, str) for x in locations):
                raise JellyfinProtocolError(f"Jellyfin {self.url}: a library without a Locations list: "
                                            f"{str(entry)[:120]!r}")
            folders.append(VirtualFolder(str(entry.get("Name") or ""), tuple(locations),
                                         str(entry.get("CollectionType") or "")))
        return folders

    def report_media_updated(self, updates: list[tuple[str, UpdateType]]) -> None:
        """POST /Library/Media/Updated: a targeted scan of these paths (as the server sees them)."""
        body = {"Updates": [{"Path": path, "UpdateType": kind} for path, kind in updates]}
        self._no_content("POST", "/Library/Media/Updated", body)

    def refresh_library(self) -> None:
        """POST /Library/Refresh: queue a full library scan."""
        self._no_content("POST", "/Library/Refresh", None)

    def items(self, **query: str | int | bool) -> list[Item]:
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items()}
        data = self._json("GET", "/Items", params=params)
        entries = data.get("Items") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise JellyfinProtocolError(f"Jellyfin {self.url}: /Items answered without an Items list")
        try:
            return [Item.from_api(entry) for entry in entries]
        except ValueError as exc:
            raise JellyfinProtocolError(f"Jellyfin {self.url}: /Items: {exc}") from None

    def series(self, title: str) -> list[Item]:
        return self.items(searchTerm=title, includeItemTypes="Series", recursive=True, fields="Path,ProviderIds")

    def episodes(self, series_id: str) -> list[Item]:
        return self.items(parentId=series_id, includeItemTypes="Episode", recursive=True, fields="Path")

    # HTTP

    def _no_content(self, method: str, path: str, body: Any) -> None:
        reply = self._send(method, path, json_body=body)
        if reply.status not in (200, 204):
            raise self._status_error(reply, f"{method} {path}")

    def _json(self, method: str, path: str, auth: bool = True, params: dict[str, Any] | None = None) -> Any:
        reply = self._send(method, path, auth=auth, params=params)
        if reply.status != 200:
            raise self._status_error(reply, f"{method} {path}")
        try:
            return reply.json()
        except ValueError:
            raise JellyfinProtocolError(f"Jellyfin {self.url}: {method} {path} answered non-JSON: "
                                        f"{reply.excerpt()[:120]!r}") from None

    def _send(self, method: str, path: str, auth: bool = True, **kwargs: Any) -> Reply:
        try:
            return exchange(self.endpoint, method, path, deadline=Deadline(self.timeout), max_bytes=MAX_JSON_BYTES,
                            headers=self._headers if auth else {}, **kwargs)
        except DeadlineExceeded:
            raise JellyfinTimeout(f"Jellyfin {self.url}: no answer to {method} {path} within {self.timeout:g} s") \
                from None
        except TooLarge as exc:
            raise JellyfinProtocolError(f"Jellyfin {self.url}: {method} {path}: {exc.reason}") from None
        except TransportError as exc:
            raise JellyfinUnavailable(f"Jellyfin server {self.url} is unreachable ({exc.reason}); check JELLYFIN_URL "
                                      "and that the server is running") from None

    def _status_error(self, reply: Reply, what: str) -> JellyfinError:
        detail = reply.excerpt() or "no body"
        if reply.status == 401:
            return JellyfinUnauthorized(f"Jellyfin {self.url} refused the API key (HTTP 401 on {what}); "
                                        "create one under Dashboard → API Keys and set JELLYFIN_API_KEY")
        if reply.status == 403:
            return JellyfinUnauthorized(f"Jellyfin {self.url} denied {what} (HTTP 403): the API key lacks "
                                        "administrator rights")
        if 400 <= reply.status < 500:
            return JellyfinRejected(f"Jellyfin {self.url}: {what} answered HTTP {reply.status}: {detail}", reply.status)
        return JellyfinServerError(f"Jellyfin {self.url}: {what} failed with HTTP {reply.status}: {detail}")
