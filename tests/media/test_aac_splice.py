"""ADTS packets of scene audio and their placement on the episode timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.media.aac_splice import (
    SAMPLES_PER_PACKET,
    aac_track,
    parse_adts,
    splice,
)
from anime_pipeline.media.ffmpeg import MediaError, encode_clip, run_ffmpeg
from anime_pipeline.media.pcm import write_wav


def clip(folder: Path, name: str, frames: int) -> Path:
    wav = write_wav(folder / f"{name}.wav", np.zeros(frames * 2000, dtype=np.float32))
    return encode_clip([np.zeros((48, 64, 3), dtype=np.uint8)] * frames, 24, folder / f"{name}.mp4", audio=wav).path


def test_a_scene_has_its_priming_packet_and_whole_packets(tmp_path: Path) -> None:
    track = aac_track(clip(tmp_path, "a", 53))  # 106000 samples
    assert (track.sample_rate, track.channels) == (48_000, 2)
    assert len(track.packets) == 1 + -(-106_000 // SAMPLES_PER_PACKET)


def test_each_scene_gets_the_packets_that_keep_it_on_time(tmp_path: Path) -> None:
    scenes = [clip(tmp_path, f"s{i}", n) for i, n in enumerate([53, 77, 41])]
    joined = splice(scenes, [aac_track(s) for s in scenes], [53 / 24, 77 / 24, 41 / 24])
    packets = parse_adts(joined.adts, tmp_path / "joined.aac").packets
    total = (53 + 77 + 41) * 2000
    assert abs((len(packets) - 1) * SAMPLES_PER_PACKET - total) <= SAMPLES_PER_PACKET / 2
    assert joined.worst_offset <= SAMPLES_PER_PACKET / 2 / 48_000


def test_mismatched_audio_is_named(tmp_path: Path) -> None:
    first = clip(tmp_path, "a", 24)
    other = tmp_path / "mono.mp4"
    run_ffmpeg(["-i", str(first), "-map", "0:v", "-map", "0:a", "-c:v", "copy", "-c:a", "aac", "-ac", "1", "-y",
                str(other)], other, "test clip")
    with pytest.raises(MediaError, match="mono.mp4: audio is 48000 Hz × 1, the first scene's is 48000 Hz × 2"):
        splice([first, other], [aac_track(first), aac_track(other)], [1.0, 1.0])


def test_not_adts_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not ADTS at byte 0"):
        parse_adts(b"\x00" * 100, tmp_path / "x.aac")
    with pytest.raises(MediaError, match="no AAC audio packets"):
        parse_adts(b"", tmp_path / "x.aac")
