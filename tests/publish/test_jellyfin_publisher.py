"""publisher: jellyfin against the fake server: files, targeted scan, server_lists_it, and every way it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.publish.jellyfin import JellyfinLibraryUnknown, JellyfinPublisher
from anime_pipeline.services.jellyfin import (
    JellyfinClient,
    JellyfinUnauthorized,
    JellyfinUnavailable,
)
from tests.services.fake_jellyfin import FakeJellyfin, item_id
from tests.services.fake_ollama import unused_url

KEY = "f00dcafe" * 4
SERVER_ROOT = "/srv/media"


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    video, thumb = tmp_path / "episode.mp4", tmp_path / "thumbnail.jpg"
    video.write_bytes(b"episode video v1")
    thumb.write_bytes(b"jpeg")
    return video, thumb


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return tmp_path / "library"


def server(library: Path, **knobs) -> FakeJellyfin:
    return FakeJellyfin(KEY, {"Shows": (f"{SERVER_ROOT}/Shows", library / "Shows")}, **knobs)


def publisher(url: str, library: Path, key: str = KEY, **kwargs) -> JellyfinPublisher:
    kwargs.setdefault("wait_seconds", 10)
    return JellyfinPublisher(JellyfinClient(url, key), library, SERVER_ROOT, poll_seconds=0.02, **kwargs)


def test_publish_is_listed_by_the_server(show, files, library) -> None:
    episode = show.episodes[0]
    with server(library) as fake:
        result = publisher(fake.url, library).publish(show.show, episode, *files, runtime_seconds=95)
    expected = f"{SERVER_ROOT}/Shows/Lantern Post (2026)/Season 01/Lantern Post S01E01 - {episode.title}.mp4"
    assert result.listing.listed, result.listing.message
    assert result.listing.server_path == expected and result.listing.item_id == item_id(expected)
    assert (result.listing.season, result.listing.episode) == (1, 1)
    assert fake.reported == [{"Path": expected, "UpdateType": "Created"}]
    assert result.library == "Shows" and result.scan.startswith("targeted scan")
    assert all(p.exists() for p in result.paths.all_files)
    assert result.paths.video.read_bytes() == b"episode video v1"


@pytest.mark.parametrize("make_publisher,error,text", [
    (lambda url, lib: publisher(url, lib, key="wrong-key"), JellyfinUnauthorized, "refused the API key"),
    (lambda url, lib: JellyfinPublisher(JellyfinClient(url, KEY), lib, "/mnt/elsewhere"), JellyfinLibraryUnknown,
     "no library containing /mnt/elsewhere/Shows/Lantern Post (2026)"),
    (lambda url, lib: publisher(unused_url(), lib), JellyfinUnavailable, "unreachable"),
])
def test_failures_before_publishing_leave_nothing_behind(show, files, library, make_publisher, error, text) -> None:
    with server(library) as fake:
        with pytest.raises(error) as caught:
            make_publisher(fake.url, library).publish(show.show, show.episodes[0], *files, runtime_seconds=95)
    message = str(caught.value)
    assert text in message and "\n" not in message and KEY not in message and "wrong-key" not in message
    assert not library.exists() or list(library.rglob("*")) == []
    assert fake.reported == []


def test_a_retitled_episode_replaces_the_old_item(show, files, library) -> None:
    episode = show.episodes[0]
    renamed = episode.model_copy(update={"title": "A New Title"})
    with server(library) as fake:
        first = publisher(fake.url, library).publish(show.show, episode, *files, runtime_seconds=95)
        second = publisher(fake.url, library).publish(show.show, renamed, *files, runtime_seconds=95)
        episodes = fake.listed("Episode")
    assert first.listing.listed and second.listing.listed, second.listing.message
    assert [e.path for e in episodes] == [second.listing.server_path]
    assert {"Path": first.listing.server_path, "UpdateType": "Deleted"} in fake.reported
    assert not first.paths.video.exists()


def test_a_changed_episode_keeps_its_item(show, files, library) -> None:
    video, thumb = files
    with server(library) as fake:
        first = publisher(fake.url, library).publish(show.show, show.episodes[0], video, thumb, runtime_seconds=95)
        video.write_bytes(b"episode video v2")
        second = publisher(fake.url, library).publish(show.show, show.episodes[0], video, thumb, runtime_seconds=95)
        assert len(fake.listed("Episode")) == 1
    assert second.listing.item_id == first.listing.item_id
    assert fake.reported[-1]["UpdateType"] == "Modified"
    assert second.paths.video.read_bytes() == b"episode video v2"


def test_a_server_without_the_targeted_route_gets_a_full_refresh(show, files, library) -> None:
    with server(library, media_updated_route=False) as fake:
        result = publisher(fake.url, library).publish(show.show, show.episodes[0], *files, runtime_seconds=95)
    assert result.listing.listed and fake.refreshes == 1
    assert result.scan.startswith("full library scan")


def test_not_listed_within_the_wait_fails_the_gate_with_a_clear_message(show, files, library, tmp_path) -> None:
    # The server's library folder is not where the files went (a wrong volume mount): it never sees them.
    wrong_mount = FakeJellyfin(KEY, {"Shows": (f"{SERVER_ROOT}/Shows", tmp_path / "empty")})
    with wrong_mount as fake:
        result = publisher(fake.url, library, wait_seconds=0.3).publish(show.show, show.episodes[0], *files,
                                                                        runtime_seconds=95)
    listing = result.listing
    assert not listing.listed and listing.polls >= 2
    assert listing.message.startswith(f"Jellyfin {fake.url} did not list S01E01 at {SERVER_ROOT}/Shows/")
    assert "within 0.3 s: no series at" in listing.message
