"""Music beds: procedural, ACE-Step (against the fake task API), a file from the music folder; cache, fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anime_pipeline.media.ffmpeg import probe
from anime_pipeline.media.music import (
    AceStepMusic,
    FileMusic,
    MusicError,
    MusicRequest,
    MusicSource,
    ProceduralMusic,
    ace_step_prompt,
    seed_for,
)
from anime_pipeline.services.ace_step import AceStepClient
from tests.services.fake_ace_step import FakeAceStep
from tests.services.fake_ollama import unused_url
from tests.services.fake_speech import encoded, spoken

REQUEST = MusicRequest("lantern-post/ep01/sc01", "cosy, curious", "dusk", 6.0, "f1nger-print")


def ace(url: str) -> AceStepMusic:
    return AceStepMusic(AceStepClient(url, poll_interval=0.01), "gpu 0")


def test_procedural_bed_is_labelled_and_cached(tmp_path: Path) -> None:
    source = MusicSource(ProceduralMusic(), tmp_path)
    bed = source.bed(REQUEST)
    assert bed.backend == "procedural" and bed.embedded and "embedded" in bed.label
    assert bed.arrangement.startswith("calm / evening:") and bed.fallback_reason is None
    assert abs(probe(bed.path).duration - 6.0) < 0.01
    stamp = bed.path.stat().st_mtime_ns
    assert source.bed(REQUEST) == bed and bed.path.stat().st_mtime_ns == stamp  # from the cache, not made again
    record = json.loads((tmp_path / "procedural-f1nger-print.json").read_text())
    assert record["backend"] == "procedural" and record["seed"] == bed.seed


def test_a_damaged_cache_record_is_made_again(tmp_path: Path) -> None:
    source = MusicSource(ProceduralMusic(), tmp_path)
    bed = source.bed(REQUEST)
    (tmp_path / "procedural-f1nger-print.json").write_text("{torn")
    assert source.bed(REQUEST) == bed


def test_ace_step_bed(tmp_path: Path) -> None:
    with FakeAceStep() as server:
        bed = MusicSource(ace(server.url), tmp_path).bed(REQUEST)
    sent = server.released[0]
    assert sent["prompt"] == ace_step_prompt("cosy, curious", "dusk") == \
        "instrumental anime background score, cosy, curious, dusk atmosphere, soft, no vocals"
    assert sent["audio_duration"] == 10.0  # the server's minimum; the mix cuts it to the scene
    assert sent["seed"] == seed_for("f1nger-print") and bed.seed == str(sent["seed"])
    assert bed.backend == "ace_step" and not bed.embedded and "ACE-Step" in bed.label and bed.prompt == sent["prompt"]
    assert bed.path.suffix == ".wav" and abs(probe(bed.path).duration - 10.0) < 0.01


def test_a_failing_service_degrades_only_when_allowed(tmp_path: Path) -> None:
    with FakeAceStep(fail_with="model not loaded") as server:
        with pytest.raises(MusicError, match="scene lantern-post/ep01/sc01: .*failed: model not loaded"):
            MusicSource(ace(server.url), tmp_path / "strict").bed(REQUEST)
        bed = MusicSource(ace(server.url), tmp_path / "lenient", fallback=ProceduralMusic()).bed(REQUEST)
    assert bed.backend == "procedural" and bed.embedded
    assert bed.fallback_reason.startswith("ace_step failed: scene lantern-post/ep01/sc01:")
    assert "model not loaded" in bed.fallback_reason


def test_an_unreachable_service_degrades_too(tmp_path: Path) -> None:
    bed = MusicSource(ace(unused_url()), tmp_path, fallback=ProceduralMusic()).bed(REQUEST)
    assert bed.backend == "procedural" and "unreachable" in bed.fallback_reason


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    music = tmp_path / "music"
    (music / "calm").mkdir(parents=True)
    (music / "calm" / "theme.mp3").write_bytes(encoded(spoken("a long enough theme", "x"), "mp3"))
    (tmp_path / "outside.mp3").write_bytes(encoded(spoken("outside", "x"), "mp3"))
    (music / "escape.mp3").symlink_to(tmp_path / "outside.mp3")
    (music / "notes.txt").write_text("not audio")
    return music


def test_a_track_from_the_music_folder(folder: Path, tmp_path: Path) -> None:
    request = MusicRequest("s", "calm", "day", 30.0, "fp", track="calm/theme.mp3")
    bed = MusicSource(FileMusic(folder), tmp_path / "cache").bed(request)
    assert bed.path == (folder / "calm" / "theme.mp3").resolve() and bed.backend == "file"
    assert "calm/theme.mp3" in bed.label


@pytest.mark.parametrize("track,problem", [
    ("../outside.mp3", r"must name a file inside .*\('\.\.' is not allowed\)"),
    ("/etc/passwd", "must be a path relative to .*, not an absolute path"),
    ("escape.mp3", "leads outside .* through a symbolic link"),
    ("calm/missing.mp3", "not found in"),
    ("notes.txt", "is not playable"),
    (None, "needs the scene's music: track name"),
])
def test_a_track_outside_the_folder_or_unusable_is_an_error(folder: Path, tmp_path: Path, track, problem) -> None:
    request = MusicRequest("lantern-post/ep01/sc02", "calm", "day", 30.0, "fp", track=track)
    with pytest.raises(MusicError, match=problem) as caught:
        MusicSource(FileMusic(folder), tmp_path / "cache").bed(request)
    assert str(caught.value).startswith("scene lantern-post/ep01/sc02: ")


def test_fingerprints_name_files_so_they_are_checked() -> None:
    with pytest.raises(ValueError, match="must be 1-128 letters"):
        MusicRequest("s", "calm", "day", 3.0, "../../etc")
