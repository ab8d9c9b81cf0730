"""The episode MP4: scenes joined by stream copy, chapters and a soft subtitle track read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.media.container import (
    Chapter,
    assemble_episode,
    chapters_for,
    ffmetadata,
    read_chapters,
    read_subtitles,
    shift_cues,
)
from anime_pipeline.media.ffmpeg import MediaError, decode_check, encode_clip, probe
from anime_pipeline.media.pcm import decode, write_wav
from anime_pipeline.media.subtitles import Cue

FPS = 24


def scene(folder: Path, name: str, frames: int, color: int, size: tuple[int, int] = (64, 48)) -> Path:
    t = np.arange(round(frames / FPS * 48_000)) / 48_000
    audio = write_wav(folder / f"{name}.wav", (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))
    images = [np.full((size[1], size[0], 3), (color + i) % 256, dtype=np.uint8) for i in range(frames)]
    return encode_clip(images, FPS, folder / f"{name}.mp4", audio=audio).path


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scenes")
    return [scene(folder, "sc01", 48, 40), scene(folder, "sc02", 36, 140)]


def test_episode_with_chapters_and_soft_subtitles(scenes, tmp_path: Path) -> None:
    durations = [probe(s).duration for s in scenes]
    chapters = chapters_for(["Night Sorting", "Past the Last Lantern"], durations)
    cues = shift_cues([[Cue(0.5, 1.5, "Mio: Last bag of the night.")], [Cue(0.2, 1.0, "Hoshi: Kyu!")]], durations)
    result = assemble_episode(scenes, tmp_path / "episode.mp4", chapters, cues, "The Letter")
    assert result.info.frames == 84 and result.subtitles == 2
    assert [c.title for c in read_chapters(result.info.path)] == ["Night Sorting", "Past the Last Lantern"]
    assert read_chapters(result.info.path)[1].start == pytest.approx(durations[0], abs=0.01)
    back = read_subtitles(result.info.path)
    assert [c.text for c in back] == ["Mio: Last bag of the night.", "Hoshi: Kyu!"]
    assert back[1].start == pytest.approx(durations[0] + 0.2, abs=0.002)
    info = probe(result.info.path)
    assert (info.video_codec, info.audio_codec, info.frames) == ("h264", "aac", 84)
    decode_check(result.info.path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode.mp4"]


def test_without_subtitles(scenes, tmp_path: Path) -> None:
    result = assemble_episode(scenes[:1], tmp_path / "e.mp4", chapters_for(["Only"], [2.0]), [], "E")
    assert result.subtitles == 0 and read_subtitles(result.info.path) == []


def test_scenes_that_cannot_be_stream_copied_are_named(scenes, tmp_path: Path) -> None:
    odd = scene(tmp_path, "odd", 24, 90, size=(80, 48))
    with pytest.raises(MediaError, match="odd.mp4: cannot be stream-copied after sc01.mp4"):
        assemble_episode([scenes[0], odd], tmp_path / "e.mp4", [], [], "E")
    assert not (tmp_path / "e.mp4").exists()


def test_chapters_must_not_overlap_or_outrun_the_episode(scenes, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="starts at 1 s, before 'a' ends"):
        assemble_episode(scenes, tmp_path / "e.mp4", [Chapter(0, 2, "a"), Chapter(1, 3, "b")], [], "E")
    with pytest.raises(ValueError, match="after the"):
        assemble_episode(scenes, tmp_path / "e.mp4", [Chapter(0, 60, "a")], [], "E")


def test_ffmetadata_escapes_its_special_characters() -> None:
    text = ffmetadata([Chapter(0, 1.5, "A = B; #1 \\ done")], "Show: 1=1")
    assert text.splitlines() == [";FFMETADATA1", "title=Show: 1\\=1", "[CHAPTER]", "TIMEBASE=1/1000", "START=0",
                                 "END=1500", "title=A \\= B\\; \\#1 \\\\ done"]


def test_odd_chapter_titles_survive_the_round_trip(scenes, tmp_path: Path) -> None:
    chapters = [Chapter(0, 1.0, "Scène = one; #1"), Chapter(1.0, 2.0, "Two")]
    result = assemble_episode(scenes[:1], tmp_path / "e.mp4", chapters, [], "E")
    assert [c.title for c in result.chapters] == ["Scène = one; #1", "Two"]


def test_audio_stays_on_each_scenes_video_start(tmp_path: Path) -> None:
    # Naive stream copy lets every join add 20-40 ms; the splice keeps each scene within half an AAC packet.
    counts, clips, click_at = [53, 77, 41, 66, 59, 47], [], 0.1
    for index, frames in enumerate(counts):
        t = np.arange(round(frames / FPS * 48_000)) / 48_000
        audio = (0.1 * np.sin(2 * np.pi * (300 + 40 * index) * t)).astype(np.float32)
        edge = np.linspace(0, 1, 2400, dtype=np.float32)  # the 50 ms edge fades every scene mix has
        audio[:2400] *= edge
        audio[-2400:] *= edge[::-1]
        audio[round(click_at * 48_000): round(click_at * 48_000) + 480] = 0.8
        wav = write_wav(tmp_path / f"a{index}.wav", audio)
        image = [np.zeros((48, 64, 3), dtype=np.uint8)] * frames
        clips.append(encode_clip(image, FPS, tmp_path / f"s{index}.mp4", audio=wav).path)
    result = assemble_episode(clips, tmp_path / "episode.mp4", [], [], "E")
    samples = decode(result.info.path)
    loud = np.flatnonzero(np.abs(samples) > 0.6)
    clicks = [loud[0]] + [b for a, b in zip(loud, loud[1:]) if b - a > 4800]
    starts = np.cumsum([0, *counts[:-1]]) / FPS
    assert len(clicks) == len(counts)
    assert np.abs(np.array(clicks) / 48_000 - click_at - starts).max() <= 0.0107
    assert abs(len(samples) / 48_000 - sum(counts) / FPS) <= 0.0107
    assert result.sync_error <= 0.0107
