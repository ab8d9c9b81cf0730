"""jellyfin_publish with `publisher: jellyfin` through the Dagster graph, against the fake Jellyfin server:
server_lists_it, a changed episode replacing its item, and each way the server refuses (one line, nothing
published)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.jellyfin_publish import PUBLISHER, PublishManifest
from tests.production.audio_runs import EPISODE, edit_show, run_artifact
from tests.services.fake_jellyfin import FakeJellyfin, item_id
from tests.services.fake_ollama import unused_url

KEY = "5ecret0123456789abcdef0123456789"
SERVER_ROOT = "/srv/media"
SEASON = f"{SERVER_ROOT}/Shows/Lantern Post (2026)/Season 01"


def _use_jellyfin(world, server_library_path: str = SERVER_ROOT, wait_seconds: float = 20) -> None:
    def change(d):
        d.setdefault("backends", {})["publisher"] = "jellyfin"
        d["jellyfin"] = {"server_library_path": server_library_path, "wait_seconds": wait_seconds,
                         "poll_seconds": 0.05}
    edit_show(world, change)


def _server(world) -> FakeJellyfin:
    return FakeJellyfin(KEY, {"Shows": (f"{SERVER_ROOT}/Shows", world.storage / "library" / "Shows")})


def _publication(world) -> PublishManifest:
    return PublishManifest.require(StoragePaths(world.storage).publication(EPISODE), EPISODE)


def _library(world) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (world.storage / "library").rglob("*") if p.is_file()}


def _events_text(world, run_id: str) -> str:
    with world.instance() as instance:
        run = instance.get_run_by_id(run_id)
        return repr(run.run_config) + "".join(repr(e) for e in instance.all_logs(run_id))


def _failures(world, run_id: str) -> list[str]:
    """The error messages of the run's failed steps, whole."""
    with world.instance() as instance:
        return [e.dagster_event.step_failure_data.error.message for e in instance.all_logs(run_id)
                if e.dagster_event is not None and e.dagster_event.is_step_failure]


def test_the_server_lists_the_published_episode_and_a_changed_one_replaces_it(produced, monkeypatch):
    _use_jellyfin(produced)
    with _server(produced) as fake:
        # the deployment's way: URL and key in the environment, read through dg.EnvVar
        monkeypatch.setenv("JELLYFIN_URL", fake.url)
        monkeypatch.setenv("JELLYFIN_API_KEY", KEY)
        from_env = frozenset({"JELLYFIN_URL", "JELLYFIN_API_KEY"})
        first = run_artifact(produced, "jellyfin_publish", EPISODE, jellyfin_url=fake.url, from_environment=from_env)
        assert first.success, first.error or first.failed_checks
        listed = _publication(produced).server.listing
        expected = f"{SEASON}/Lantern Post S01E01 - The Letter Past the Last Lantern.mp4"
        assert listed.listed and listed.server_path == expected and listed.item_id == item_id(expected)
        assert (listed.season, listed.episode) == (1, 1)
        assert {"Path": expected, "UpdateType": "Modified"} in fake.reported  # the demo had published the file

        edit_show(produced, lambda d: d["episodes"][0].update(title="The Last Lantern"))
        assert run_artifact(produced, "episode_video", EPISODE).success
        second = run_artifact(produced, "jellyfin_publish", EPISODE, jellyfin_url=fake.url, from_environment=from_env)
        episodes = fake.listed("Episode")
    assert second.success, second.error or second.failed_checks
    renamed = f"{SEASON}/Lantern Post S01E01 - The Last Lantern.mp4"
    assert [e.path for e in episodes] == [renamed] and _publication(produced).server.listing.server_path == renamed
    assert {"Path": expected, "UpdateType": "Deleted"} in fake.reported
    assert not Path(_publication(produced).video).with_name(Path(expected).name).exists()
    for run in (first, second):
        assert KEY not in _events_text(produced, run.run_id)


@pytest.mark.parametrize(("setup", "reason"), [
    (dict(key="wrong-key-0123456789"), "refused the API key (HTTP 401 on GET /Library/VirtualFolders)"),
    (dict(server_library_path="/mnt/elsewhere"), "has no library containing /mnt/elsewhere/Shows/Lantern Post (2026)"),
    (dict(url=unused_url()), "is unreachable (connection refused)"),
])
def test_a_refusing_server_fails_in_one_line_and_nothing_is_published(produced, setup, reason):
    _use_jellyfin(produced, setup.get("server_library_path", SERVER_ROOT))
    before, record = _library(produced), _publication(produced)
    with _server(produced) as fake:
        outcome = run_artifact(produced, "jellyfin_publish", EPISODE, jellyfin_url=setup.get("url", fake.url),
                               jellyfin_api_key=setup.get("key", KEY))
        reported = list(fake.reported)
    assert not outcome.success and reason in outcome.error
    (message,) = _failures(produced, outcome.run_id)
    assert "\n" not in message.strip() and message.strip().endswith(outcome.error.split(": ", 1)[1])
    assert outcome.error.split(": ", 1)[1].startswith(f"{EPISODE} jellyfin_publish: Jellyfin ")
    assert KEY not in outcome.error and "wrong-key" not in outcome.error
    assert _library(produced) == before and reported == []  # not one file touched, nothing asked to scan
    assert _publication(produced) == record and record.publisher == PUBLISHER  # the filesystem one, as it was


def test_no_server_configured_names_the_variable(produced):
    _use_jellyfin(produced)
    outcome = run_artifact(produced, "jellyfin_publish", EPISODE)
    assert not outcome.success and "JELLYFIN_URL is not set" in outcome.error


def test_not_listed_within_the_wait_fails_server_lists_it(produced, tmp_path):
    _use_jellyfin(produced, wait_seconds=0.3)
    # the server's library folder is not where the files go (a wrong volume mount): it never sees them
    with FakeJellyfin(KEY, {"Shows": (f"{SERVER_ROOT}/Shows", tmp_path / "elsewhere")}) as fake:
        outcome = run_artifact(produced, "jellyfin_publish", EPISODE, jellyfin_url=fake.url, jellyfin_api_key=KEY)
    assert not outcome.success and outcome.failed_checks == [f"{EPISODE}/jellyfin_publish.server_lists_it"]
    listing = _publication(produced).server.listing
    assert not listing.listed and listing.message.startswith(f"Jellyfin {fake.url} did not list S01E01 at {SEASON}/")
    assert "within 0.3 s" in listing.message
