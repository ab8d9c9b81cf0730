"""The Jellyfin client against the fake server: auth, libraries, targeted scans, item lookup, errors."""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web

from anime_pipeline.services.http import Deadline, HTTPTransport, Timeout
from anime_pipeline.services.jellyfin import (
    JellyfinClient,
    JellyfinProtocolError,
    JellyfinRejected,
    JellyfinTimeout,
    JellyfinUnauthorized,
    JellyfinUnavailable,
)
from tests.services.fake_jellyfin import FakeJellyfin
from tests.services.fake_ollama import BackgroundServer, unused_url

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def media(tmp_path: Path) -> Path:
    season = tmp_path / "Shows" / "My Anime (2026)" / "Season 01"
    season.mkdir(parents=True)
    (season / "My Anime S01E01 - Pilot.mp4").write_bytes(b"video")
    (season / "My Anime S01E01 - Pilot.nfo").write_text(
        "<episodedetails><title>Pilot</title><season>1</season><episode>1</episode></episodedetails>")
    return tmp_path


def fake(media: Path, **knobs) -> FakeJellyfin:
    return FakeJellyfin(KEY, {"Shows": ("/media/Shows", media / "Shows")}, **knobs)


def wait_for(condition, seconds: float = 5.0):
    deadline = Deadline(seconds)
    while not deadline.expired:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_libraries_and_the_mediabrowser_auth_header(media: Path) -> None:
    with fake(media) as server:
        folders = JellyfinClient(server.url, KEY).virtual_folders()
    assert [(f.name, f.locations, f.collection_type) for f in folders] == [("Shows", ("/media/Shows",), "tvshows")]
    header = next(h for m, p, h in server.requests if p == "/Library/VirtualFolders")["Authorization"]
    assert header.startswith('MediaBrowser Client="anime-pipeline"') and f'Token="{KEY}"' in header


def test_the_legacy_token_header_is_refused_like_jellyfin_12_does(media: Path) -> None:
    with fake(media) as server:
        reply = HTTPTransport(server.url, Timeout(total=5)).request("GET", "/Library/VirtualFolders",
                                                                    headers={"X-Emby-Token": KEY})
    assert reply.status == 401


def test_an_episode_is_listed_only_after_a_scan_for_its_path(media: Path) -> None:
    path = "/media/Shows/My Anime (2026)/Season 01/My Anime S01E01 - Pilot.mp4"
    with fake(media) as server:
        client = JellyfinClient(server.url, KEY)
        assert client.series("My Anime") == []
        client.report_media_updated([(path, "Created")])
        series = wait_for(lambda: client.series("My Anime"))
        episodes = client.episodes(series[0].id)
    assert series[0].path == "/media/Shows/My Anime (2026)"
    assert [(e.name, e.parent_index_number, e.index_number, e.path) for e in episodes] == [("Pilot", 1, 1, path)]
    assert server.reported == [{"Path": path, "UpdateType": "Created"}]


def test_full_refresh(media: Path) -> None:
    with fake(media) as server:
        client = JellyfinClient(server.url, KEY)
        client.refresh_library()
        assert wait_for(lambda: client.items(includeItemTypes="Episode", recursive=True))
    assert server.refreshes == 1


def test_wrong_key_is_one_clear_error_without_the_key(media: Path) -> None:
    with fake(media) as server:
        with pytest.raises(JellyfinUnauthorized, match="refused the API key") as caught:
            JellyfinClient(server.url, "not-the-key").virtual_folders()
    assert "not-the-key" not in str(caught.value) and KEY not in str(caught.value)


def test_a_key_without_admin_rights(media: Path) -> None:
    with fake(media, admin_key=False) as server:
        with pytest.raises(JellyfinUnauthorized, match="HTTP 403.*lacks administrator rights"):
            JellyfinClient(server.url, KEY).refresh_library()


def test_a_missing_route_keeps_its_status(media: Path) -> None:
    with fake(media, media_updated_route=False) as server:
        with pytest.raises(JellyfinRejected) as caught:
            JellyfinClient(server.url, KEY).report_media_updated([("/media/Shows/x.mp4", "Created")])
    assert caught.value.status == 404


@contextmanager
def serving(path: str, handler):
    app = web.Application()
    app.router.add_get(path, handler)
    server = BackgroundServer(app)
    try:
        yield server.start()
    finally:
        server.stop()


def test_unreachable_slow_and_malformed_servers() -> None:
    with pytest.raises(JellyfinUnavailable, match="unreachable \\(connection refused\\)"):
        JellyfinClient(unused_url(), KEY).virtual_folders()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response([])

    with serving("/Library/VirtualFolders", slow) as url:
        with pytest.raises(JellyfinTimeout, match=r"within 0\.2 s"):
            JellyfinClient(url, KEY, timeout=0.2).virtual_folders()

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy login</html>", content_type="text/html")

    with serving("/Items", html) as url:
        with pytest.raises(JellyfinProtocolError, match="non-JSON: '<html>proxy login</html>'"):
            JellyfinClient(url, KEY).series("My Anime")

    async def no_items(request: web.Request) -> web.Response:
        return web.json_response({"Items": [{"Name": "no id"}]})

    with serving("/Items", no_items) as url:
        with pytest.raises(JellyfinProtocolError, match="an item without Id and Type"):
            JellyfinClient(url, KEY).series("My Anime")


def test_public_info_needs_no_key(media: Path) -> None:
    with fake(media) as server:
        info = JellyfinClient(server.url, KEY).public_info()
        headers = next(h for m, p, h in server.requests if p == "/System/Info/Public")
    assert info["ProductName"] == "Jellyfin Server" and "Authorization" not in headers


def test_an_empty_key_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="JELLYFIN_API_KEY"):
        JellyfinClient("http://jellyfin:8096", "")
