"""Media assembly against the bundled ffmpeg, on tiny synthetic clips (64x48) to stay fast."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anime_pipeline.media import (
    MediaError,
    assemble_scene,
    decode_check,
    encode_clip,
    ffmpeg_exe,
    iter_frames,
    probe,
    read_frames,
    thumbnail,
)

FPS = 24
W, H = 64, 48
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def solid(count: int, color: tuple[int, int, int]) -> list[np.ndarray]:
    return [np.full((H, W, 3), color, dtype=np.uint8)] * count


def moving_bar(count: int) -> list[np.ndarray]:
    frames = []
    for index in range(count):
        frame = np.zeros((H, W, 3), dtype=np.uint8)
        frame[:, 2 * index : 2 * index + 8] = 255
        frames.append(frame)
    return frames


def sine_wav(path: Path, seconds: float, rate: int = 22050, freq: float = 440.0) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def pcm(path: Path) -> np.ndarray:
    """Decoded audio as mono float32 at 48 kHz."""
    cmd = [ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a", "-f", "f32le", "-ac", "1", "-ar", "48000", "-"]
    return np.frombuffer(subprocess.run(cmd, capture_output=True, check=True).stdout, dtype=np.float32)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    spec = [(20, RED), (25, BLUE), (17, GREEN)]
    return [encode_clip(solid(n, color), FPS, folder / f"clip{i}.mp4").path for i, (n, color) in enumerate(spec)]


# --- encode / probe / read ---------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 7, 30])
def test_encode_keeps_every_frame_and_adds_silent_aac(tmp_path: Path, count: int) -> None:
    info = encode_clip(moving_bar(count), FPS, tmp_path / "bar.mp4")
    assert info.path == tmp_path / "bar.mp4"
    probed = probe(info.path)
    assert probed == info
    assert (probed.video_codec, probed.audio_codec) == ("h264", "aac")
    assert (probed.width, probed.height, probed.fps, probed.frames) == (W, H, FPS, count)
    assert probed.duration == pytest.approx(count / FPS, abs=1e-5)
    assert rms(pcm(info.path)) == 0.0
    assert leftovers(tmp_path) == []


def test_read_frames_returns_rgb_in_order(tmp_path: Path) -> None:
    path = encode_clip(moving_bar(12), FPS, tmp_path / "bar.mp4").path
    frames = read_frames(path)
    assert frames.shape == (12, H, W, 3) and frames.dtype == np.uint8
    # The bright bar moves 2 px right per frame.
    bar_columns = frames.mean(axis=(1, 3)).argmax(axis=1)
    assert np.all(np.diff(bar_columns) == 2)
    assert read_frames(path, max_frames=5).shape == (5, H, W, 3)


def test_encode_preserves_saturated_colours(tmp_path: Path) -> None:
    path = encode_clip(solid(3, (200, 30, 120)), FPS, tmp_path / "c.mp4").path
    assert np.abs(read_frames(path).astype(int) - (200, 30, 120)).max() <= 3


@pytest.mark.parametrize("seconds", [0.4, 3.0])
def test_encode_fits_audio_to_video_length(tmp_path: Path, seconds: float) -> None:
    voice = sine_wav(tmp_path / "voice.wav", seconds)
    info = encode_clip(solid(24, RED), FPS, tmp_path / "talk.mp4", audio=voice)
    assert info.duration == pytest.approx(1.0, abs=1e-5)
    samples = pcm(info.path)
    assert len(samples) == 48000
    assert rms(samples[: int(0.3 * 48000)]) > 0.2  # the tone plays...
    assert rms(samples[int(0.5 * 48000) :]) == (0.0 if seconds < 1 else pytest.approx(0.35, abs=0.03))


def test_encode_streams_a_generator_and_checks_its_count(tmp_path: Path) -> None:
    """A renderer's stream is piped as it comes; its count is given up front (the audio is fitted to
    it) and a stream that yields another count writes nothing."""
    info = encode_clip((frame for frame in moving_bar(12)), FPS, tmp_path / "streamed.mp4", n_frames=12)
    assert info.frames == 12 and np.array_equal(read_frames(info.path), read_frames(
        encode_clip(moving_bar(12), FPS, tmp_path / "listed.mp4").path))
    with pytest.raises(ValueError, match="needs n_frames"):
        encode_clip(iter(moving_bar(3)), FPS, tmp_path / "a.mp4")
    with pytest.raises(MediaError, match="expected 13 frames, ffmpeg wrote 12"):
        encode_clip(iter(moving_bar(12)), FPS, tmp_path / "short.mp4", n_frames=13)
    with pytest.raises(ValueError, match="told 11 frames and got more"):
        encode_clip(iter(moving_bar(12)), FPS, tmp_path / "long.mp4", n_frames=11)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["listed.mp4", "streamed.mp4"]


def test_iter_frames_decodes_one_frame_at_a_time_as_read_frames_does(tmp_path: Path) -> None:
    path = encode_clip(moving_bar(12), FPS, tmp_path / "bar.mp4").path
    streamed = iter_frames(path)
    first = next(streamed)
    assert first.flags.writeable and first.shape == (H, W, 3)
    rest = list(streamed)
    assert np.array_equal(np.stack([first, *rest]), read_frames(path))
    assert len(list(iter_frames(path, max_frames=5))) == 5
    stopped = iter_frames(path)
    next(stopped)
    stopped.close()  # a reader that stops early ends the decoder (no leftover process, no error)
    with pytest.raises(MediaError, match="no such file"):
        next(iter_frames(tmp_path / "missing.mp4"))


def test_encode_rejects_bad_frames_without_leaving_files(tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    frames = solid(5, RED) + [np.zeros((H, W + 2, 3), np.uint8)] + solid(5, RED)
    with pytest.raises(ValueError, match="frame 5"):
        encode_clip(frames, FPS, out)
    with pytest.raises(ValueError, match="even"):
        encode_clip([np.zeros((47, 64, 3), np.uint8)], FPS, out)
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    # More frames than a pipe buffer holds, so ffmpeg dies while frames are still being written.
    with pytest.raises(MediaError) as error:
        encode_clip(solid(400, RED), FPS, out, audio=tmp_path / "missing.wav")
    assert "clip.mp4" in str(error.value) and "missing.wav" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    encode_clip(solid(4, RED), FPS, out)
    before = out.read_bytes()
    with pytest.raises(MediaError):
        encode_clip(solid(9, BLUE), FPS, out, audio=tmp_path / "missing.wav")
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_probe_and_decode_check_reject_missing_and_corrupt_files(tmp_path: Path, clips: list[Path]) -> None:
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(MediaError, match="garbage.mp4"):
        probe(garbage)
    decode_check(clips[1])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clips[1].read_bytes()[: clips[1].stat().st_size * 2 // 3])
    with pytest.raises(MediaError, match="truncated.mp4"):
        decode_check(truncated)


# --- scenes ------------------------------------------------------------------------------


@pytest.mark.parametrize("transition", ["dissolve", "fade", "wipe"])
def test_assemble_scene_is_frame_exact(tmp_path: Path, clips: list[Path], transition: str) -> None:
    info = assemble_scene(clips, [transition, transition], tmp_path / "scene.mp4", FPS, overlap=0.3)
    k = round(0.3 * FPS)
    expected = 20 + 25 + 17 - k * 2
    assert (info.frames, info.video_codec, info.audio_codec) == (expected, "h264", "aac")
    assert info.duration == pytest.approx(expected / FPS, abs=1e-5)
    frames = read_frames(info.path)
    assert len(frames) == expected
    # Untouched stretches keep their clip's colour; nothing drifts by a frame.
    assert frames[20 - k - 1, 0, 0, 0] > 240 and frames[20, 0, 0, 2] > 240 and frames[-1, 0, 0, 1] > 240
    assert leftovers(tmp_path) == []


def test_dissolve_midpoint_blends_both_clips(tmp_path: Path, clips: list[Path]) -> None:
    k = 8
    info = assemble_scene(clips[:2], ["dissolve"], tmp_path / "x.mp4", FPS, overlap=k / FPS)
    assert info.frames == 20 + 25 - k
    red, _, blue = read_frames(info.path)[20 - k + k // 2, H // 2, W // 2].astype(int)
    assert 80 < red < 175 and 80 < blue < 175 and abs(red + blue - 255) < 20


def test_fade_goes_through_black_and_wipe_splits_the_frame(tmp_path: Path, clips: list[Path]) -> None:
    k = 8
    fade = assemble_scene(clips[:2], ["fade"], tmp_path / "fade.mp4", FPS, overlap=k / FPS)
    transition = read_frames(fade.path)[20 - k : 20]
    assert transition.max(axis=(1, 2, 3)).min() < 10  # passes through black on the way
    wipe = assemble_scene(clips[:2], ["wipe"], tmp_path / "wipe.mp4", FPS, overlap=k / FPS)
    middle = read_frames(wipe.path)[20 - k // 2, H // 2].astype(int)
    assert middle[:, 0].max() > 240 and middle[:, 2].max() > 240  # red and blue side by side


def test_assemble_single_clip_and_hard_cuts(tmp_path: Path, clips: list[Path]) -> None:
    assert assemble_scene(clips[:1], [], tmp_path / "one.mp4", FPS).frames == 20
    assert assemble_scene(clips, ["wipe", "fade"], tmp_path / "cut.mp4", FPS, overlap=0.01).frames == 62


def test_assemble_lays_audio_under_exact_duration(tmp_path: Path, clips: list[Path]) -> None:
    track = sine_wav(tmp_path / "v.wav", 5.0)  # longer than the scene: cut to it
    info = assemble_scene(clips, ["dissolve", "fade"], tmp_path / "scene.mp4", FPS, audio=track)
    assert info.duration == pytest.approx(info.frames / FPS, abs=1e-5)
    assert len(pcm(info.path)) == round(info.frames / FPS * 48000)


def test_assemble_rejects_mismatched_clips(tmp_path: Path, clips: list[Path]) -> None:
    odd = encode_clip([np.zeros((32, 32, 3), np.uint8)] * 20, FPS, tmp_path / "odd.mp4").path
    with pytest.raises(MediaError, match="odd.mp4"):
        assemble_scene([clips[0], odd], ["dissolve"], tmp_path / "s.mp4", FPS)
    with pytest.raises(MediaError, match="clip0.mp4"):
        assemble_scene(clips[:2], ["dissolve"], tmp_path / "s.mp4", 30)
    with pytest.raises(ValueError, match="transitions"):
        assemble_scene(clips, ["dissolve"], tmp_path / "s.mp4", FPS)
    with pytest.raises(ValueError, match="unknown"):
        assemble_scene(clips[:2], ["spin"], tmp_path / "s.mp4", FPS)
    assert not (tmp_path / "s.mp4").exists() and leftovers(tmp_path) == []


# --- thumbnails ----------------------------------------------------------------------------


def test_thumbnail_is_a_jpeg_of_the_requested_frame(tmp_path: Path, clips: list[Path]) -> None:
    first = thumbnail(clips[0], tmp_path / "first.jpg")
    with Image.open(first) as image:
        assert (image.format, image.size) == ("JPEG", (W, H))
        assert np.abs(np.asarray(image.convert("RGB"))[H // 2, W // 2].astype(int) - RED).max() < 12
    scene = assemble_scene(clips[:2], ["dissolve"], tmp_path / "s.mp4", FPS)
    later = thumbnail(scene.path, tmp_path / "later.jpg", at=1.5, width=32)
    with Image.open(later) as image:
        assert image.size == (32, 24)
        assert np.abs(np.asarray(image.convert("RGB"))[12, 16].astype(int) - BLUE).max() < 12
    with pytest.raises(MediaError):
        thumbnail(clips[0], tmp_path / "late.jpg", at=60)
    assert not (tmp_path / "late.jpg").exists() and leftovers(tmp_path) == []
