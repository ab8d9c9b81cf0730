"""The demo's episode as published: loudness measured with ffmpeg on the library's file, chapters and soft
subtitles in the container, the scenes' audio in sync; its gates, as recorded."""

from __future__ import annotations

import pytest

from anime_pipeline.config import Project
from anime_pipeline.media import probe
from anime_pipeline.media.container import read_chapters, read_subtitles
from anime_pipeline.media.loudness import measure
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.episode_video import GATES, EpisodeManifest
from anime_pipeline.production.jellyfin_publish import PublishManifest
from anime_pipeline.production.scene_video import SceneManifest

EPISODE = "lantern-post/ep01"


@pytest.fixture(scope="module")
def published(demo_world):
    """The published file of the session's demo episode (read only)."""
    paths = StoragePaths(demo_world.storage)
    return PublishManifest.require(paths.publication(EPISODE), EPISODE).video


def test_the_published_episode_is_at_minus_16_lufs_within_1_lu(published):
    loudness = measure(published)
    assert abs(loudness.integrated_lufs - -16.0) <= 1.0 and loudness.true_peak_dbtp <= -1.0


def test_chapters_and_soft_subtitles_are_in_the_container(demo_world, published):
    paths = StoragePaths(demo_world.storage)
    scenes = [SceneManifest.require(paths.scene(f"{EPISODE}/{s}"), s) for s in ("sc01", "sc02")]
    chapters = read_chapters(published)
    assert [c.title for c in chapters] == ["Night Sorting", "Past the Last Lantern"]
    first = scenes[0].video.frames / scenes[0].fps
    assert chapters[1].start == pytest.approx(first, abs=0.002)
    cues = read_subtitles(published)
    expected = [(c.start, c.text) for c in scenes[0].subtitles] + [(c.start + first, c.text)
                                                                   for c in scenes[1].subtitles]
    assert [c.text for c in cues] == [text for _, text in expected]
    assert [c.start for c in cues] == pytest.approx([start for start, _ in expected], abs=0.002)
    assert "Hoshi: Kyu!" in [c.text for c in cues]
    info = probe(published)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")


def test_the_episode_gates_pass_with_the_sync_error_recorded(demo_world):
    manifest = EpisodeManifest.require(StoragePaths(demo_world.storage).episode(EPISODE), EPISODE)
    quality = Project.load(demo_world.configs).episodes[EPISODE].config.quality
    results = {r.name: r for r in GATES.evaluate(manifest, quality)}
    assert results["loudness"].passed and results["loudness"].backend == "ffmpeg ebur128 on episode.mp4"
    assert all(r.passed for r in results.values())
    assert 0 <= manifest.sync_error <= 0.0107  # each scene's audio starts within one AAC packet of its video
    assert manifest.subtitle_cues == 4 and [c.title for c in manifest.chapters] == ["Night Sorting",
                                                                                    "Past the Last Lantern"]
