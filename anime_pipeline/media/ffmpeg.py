"""Media assembly on the static ffmpeg shipped by imageio-ffmpeg: probe, encode, transitions, mixing.

Plain functions over files. There is no ffprobe in that wheel, so `probe` reads ffmpeg's
own stream dump and decodes the file once for exact frame counts and durations. Every
output is written under a temporary name by `storage.atomic_path` and checked before it
is renamed into place, so a reader never sees a half-written or unplayable file.

Timing is frame-exact: transition offsets are derived from decoded frame counts, never
from float durations, and audio is cut to a whole number of samples of the video length.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from anime_pipeline.storage import atomic_path

SAMPLE_RATE = 48_000
VIDEO_CRF = 20
VIDEO_PRESET = "veryfast"
AUDIO_BITRATE = "160k"
# Scene transition names (config schema `Transition`) → xfade transition names.
XFADE_TRANSITIONS = {"dissolve": "fade", "fade": "fadeblack", "wipe": "wipeleft"}

_STDERR_TAIL_LINES = 15
_SILENCE = f"anullsrc=r={SAMPLE_RATE}:cl=stereo"
_AUDIO_FORMAT = f"aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"
# RGB → BT.709 limited-range YUV, tagged as such: untagged H.264 is read as BT.601 or BT.709
# depending on the player and the frame size, which visibly shifts saturated colours.
_RGB_TO_BT709 = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=range=tv:colorspace=bt709:color_primaries=bt709:color_trc=bt709"
)
# JPEG is full-range BT.601. This build's mjpeg path converts the range but not the matrix
# on its own, so a BT.709 source needs an explicit conversion to keep its colours.
_YUV_TO_JPEG = "scale=out_color_matrix=bt470bg:out_range=pc"


class MediaError(RuntimeError):
    """An ffmpeg run failed or produced something unusable; names the file and ffmpeg's last words."""

    def __init__(self, path: Path | str, message: str, stderr: str = "") -> None:
        self.path = Path(path)
        tail = "\n".join(stderr.strip().splitlines()[-_STDERR_TAIL_LINES:])
        super().__init__(f"{self.path}: {message}" + (f"\nffmpeg stderr (tail):\n{tail}" if tail else ""))


@dataclass(frozen=True)
class MediaInfo:
    """What a decode of the file found: `frames` is the decoded video frame count (None without
    video) and `duration` the end of the longest stream, to the microsecond."""

    path: Path
    duration: float
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    fps: float | None
    frames: int | None
    video_stream_id: str | None = None  # the container's id of the video stream (an MP4 track id: "0x1")


@cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


# --- running ffmpeg -------------------------------------------------------------------


def _command(args: Iterable[str], loglevel: str = "error") -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-v", loglevel, *args]


def run_ffmpeg(
    args: Iterable[str], path: Path, failure: str, loglevel: str = "error"
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(_command(args, loglevel), capture_output=True)
    if proc.returncode != 0:
        raise MediaError(path, failure, proc.stderr.decode(errors="replace"))
    return proc


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise MediaError(path, "no such file")


# --- reading --------------------------------------------------------------------------

_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (\w+)")
_STREAM_ID = re.compile(r"^\s*Stream #\d+:\d+\[(0x[0-9a-f]+)\]")
_SIZE = re.compile(r", (\d+)x(\d+)")
_FPS = re.compile(r", (\d+(?:\.\d+)?) (?:fps|tbr)")


def _stream_lines(stderr: str, section: str) -> dict[str, str]:
    """First video and audio 'Stream #' line of the 'Input' or 'Output' part of ffmpeg's dump."""
    found: dict[str, str] = {}
    inside = False
    for line in stderr.splitlines():
        if line.startswith(("Input #", "Output #")):
            inside = line.startswith(section)
        match = _STREAM.match(line) if inside else None
        # Cover art in audio files shows up as an 'attached pic' video stream.
        if match and "(attached pic)" not in line:
            found.setdefault(match.group(1), line)
    return found


def _video_geometry(line: str) -> tuple[int | None, int | None, float | None]:
    size = _SIZE.search(line)
    fps = _FPS.search(line)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (None, None)
    return width, height, float(fps.group(1)) if fps else None


def _progress(stdout: str) -> dict[str, str]:
    """The final values of ffmpeg's `-progress` key=value report."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def probe(path: Path | str) -> MediaInfo:
    """Codecs and geometry from ffmpeg's stream dump; exact frames and duration by decoding."""
    return _probe(Path(path), [])


def probe_packets(path: Path | str) -> MediaInfo:
    """`probe` without decoding: frames are the video stream's packets, the duration their end.
    For stream-copied files made of parts that were decoded when they were encoded."""
    return _probe(Path(path), ["-c", "copy"])


def _probe(path: Path, codec: list[str]) -> MediaInfo:
    _require_file(path)
    proc = run_ffmpeg(
        ["-xerror", "-i", str(path), *codec, "-f", "null", "-progress", "pipe:1", "-"],
        path,
        "cannot decode (missing streams or corrupt data)",
        loglevel="info",  # the stream dump is printed at info level
    )
    stderr = proc.stderr.decode(errors="replace")
    streams = _stream_lines(stderr, "Input")
    progress = _progress(proc.stdout.decode(errors="replace"))
    end_us = progress.get("out_time_us", "N/A")
    if not streams or not end_us.isdigit():
        raise MediaError(path, "no decodable audio or video", stderr)
    video, audio = streams.get("Video"), streams.get("Audio")
    width, height, fps = _video_geometry(video) if video else (None, None, None)
    return MediaInfo(
        path=path,
        duration=int(end_us) / 1e6,
        video_codec=_STREAM.match(video).group(2) if video else None,
        audio_codec=_STREAM.match(audio).group(2) if audio else None,
        width=width,
        height=height,
        fps=fps,
        frames=int(progress["frame"]) if video else None,
        video_stream_id=_stream_id(video) if video else None,
    )


def _stream_id(line: str) -> str | None:
    found = _STREAM_ID.match(line)
    return found.group(1) if found else None


def decode_check(path: Path | str) -> None:
    """Decode everything; any error ffmpeg reports (even one it would skip over) fails the file."""
    path = Path(path)
    _require_file(path)
    proc = subprocess.run(_command(["-xerror", "-i", str(path), "-f", "null", "-"]), capture_output=True)
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0 or stderr.strip():
        raise MediaError(path, "decode errors", stderr)


def read_frames(path: Path | str, max_frames: int | None = None) -> np.ndarray:
    """Decoded frames as an (N, H, W, 3) uint8 RGB array (read-only: it wraps ffmpeg's output
    without a copy; `.copy()` it to draw on it). The whole clip in memory: `iter_frames` streams."""
    path = Path(path)
    _require_file(path)
    proc = run_ffmpeg([*_decode_args(path, max_frames), "pipe:1"], path, "cannot decode video", loglevel="info")
    width, height = _output_size(path, proc.stderr)
    return np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, height, width, 3)


def iter_frames(path: Path | str, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decoded frames one at a time, as `read_frames` decodes them (each a writable H×W×3 uint8
    RGB array of its own): memory for one frame, whatever the length of the clip. The frame size
    comes from decoding the first frame once; a decode error ends the stream with MediaError."""
    path = Path(path)
    _require_file(path)
    first = run_ffmpeg([*_decode_args(path, 1), "-y", "-f", "null", "-"], path, "cannot decode video",
                       loglevel="info")
    width, height = _output_size(path, first.stderr)
    size = width * height * 3
    # stderr goes to a file: a pipe nobody reads while we read stdout could fill up and deadlock.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(_command([*_decode_args(path, max_frames), "pipe:1"]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        try:
            while True:
                frame = bytearray(size)
                read = proc.stdout.readinto(frame)
                if read == 0:
                    break
                if read != size:
                    raise MediaError(path, f"decoded a partial frame ({read} of {size} bytes)")
                yield np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3)
            if proc.wait() != 0:
                err.seek(0)
                raise MediaError(path, "cannot decode video", err.read().decode(errors="replace"))
        finally:  # a consumer that stops early (or fails) ends the decoder with it
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _decode_args(path: Path, max_frames: int | None) -> list[str]:
    limit = ["-frames:v", str(max_frames)] if max_frames is not None else []
    return ["-i", str(path), "-map", "0:v:0", *limit, "-f", "rawvideo", "-pix_fmt", "rgb24"]


def _output_size(path: Path, stderr: bytes) -> tuple[int, int]:
    """(width, height) of the decoded frames: the output geometry (not the input's) is what ffmpeg
    writes, and it honours rotation tags."""
    text = stderr.decode(errors="replace")
    width, height, _ = _video_geometry(_stream_lines(text, "Output").get("Video", ""))
    if width is None or height is None:
        raise MediaError(path, "cannot tell the decoded frame size", text)
    return width, height


# --- writing --------------------------------------------------------------------------


def _video_codec(crf: int = VIDEO_CRF, preset: str = VIDEO_PRESET) -> list[str]:
    return ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p"]


def mp4_output_args(tmp: Path) -> list[str]:
    """AAC audio into an MP4 container, named explicitly rather than guessed from the file name."""
    audio = ["-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(SAMPLE_RATE), "-ac", "2"]
    return [*audio, "-movflags", "+faststart", "-f", "mp4", "-y", str(tmp)]


def _inputs(paths: Iterable[Path | str]) -> list[str]:
    return [arg for path in paths for arg in ("-i", str(path))]


def _av_output_args(chains: Sequence[str], tmp: Path, crf: int = VIDEO_CRF, preset: str = VIDEO_PRESET) -> list[str]:
    """Encode filter graph pads [v] and [a] into an H.264 + AAC MP4 at `tmp`."""
    graph = ["-filter_complex", ";".join(chains), "-map", "[v]", "-map", "[a]"]
    return [*graph, *_video_codec(crf, preset), *mp4_output_args(tmp)]


def _samples(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def _fitted_audio(source: str | None, samples: int, label: str) -> str:
    """Filter chain giving exactly `samples` of 48 kHz stereo from input pad `source`, or silence."""
    start = f"{source}{_AUDIO_FORMAT},apad" if source else _SILENCE
    return f"{start},atrim=end_sample={samples}[{label}]"


def checked_output(tmp: Path, out: Path, frames: int | None) -> MediaInfo:
    """Probe the finished temp file so a broken or short output never reaches `out`."""
    info = probe(tmp)
    if frames is not None and info.frames != frames:
        raise MediaError(out, f"expected {frames} frames, ffmpeg wrote {info.frames}")
    return replace(info, path=out)


def _check_frame(frame: np.ndarray, shape: tuple[int, ...], index: int) -> None:
    if frame.dtype != np.uint8 or frame.shape != shape:
        raise ValueError(f"frame {index} is {frame.dtype} {frame.shape}; expected uint8 {shape}")


def _pipe_frames(cmd: list[str], frames: Iterable[np.ndarray], count: int, out: Path) -> None:
    """Run ffmpeg, streaming raw frames to its stdin as they come: one frame in memory at a time."""
    shape: tuple[int, ...] | None = None
    # stderr goes to a file: a pipe nobody reads while we write could fill up and deadlock.
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        # A broken pipe means ffmpeg already gave up; its exit status and stderr say why.
        try:
            with contextlib.suppress(BrokenPipeError):
                for index, frame in enumerate(frames):
                    shape = frame.shape if shape is None else shape
                    _check_frame(frame, shape, index)
                    if index >= count:
                        raise ValueError(f"encode_clip was told {count} frames and got more")
                    proc.stdin.write(np.ascontiguousarray(frame).data)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        if proc.wait() != 0:
            err.seek(0)
            raise MediaError(out, "encoding failed", err.read().decode(errors="replace"))


def encode_clip(
    frames: Iterable[np.ndarray],
    fps: int,
    out: Path,
    audio: Path | None = None,
    crf: int = VIDEO_CRF,
    preset: str = VIDEO_PRESET,
    n_frames: int | None = None,
) -> MediaInfo:
    """Encode HxWx3 uint8 RGB frames to H.264 + AAC; the audio is fitted to the video length.

    `frames` may be any iterable (a renderer's stream): they are piped to ffmpeg as they come and
    never held together. The audio length is set before the first frame, so an iterable without
    a length needs `n_frames`; a stream that yields another count fails and writes nothing."""
    out = Path(out)
    count = len(frames) if isinstance(frames, Sized) else n_frames
    if count is None:
        raise ValueError("encode_clip needs n_frames for frames without a length (a stream)")
    stream = iter(frames)
    first = next(stream, None)
    if first is None or count < 1:
        raise ValueError("encode_clip needs at least one frame")
    height, width = first.shape[:2]
    _check_frame(first, (height, width, 3), 0)
    if width % 2 or height % 2:
        raise ValueError(f"frame size {width}x{height} must be even for yuv420p")
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0"]
    chains = [
        f"[0:v]{_RGB_TO_BT709}[v]",
        _fitted_audio("[1:a]" if audio is not None else None, _samples(count / fps), "a"),
    ]
    with atomic_path(out) as tmp:
        args = _av_output_args(chains, tmp, crf, preset)
        command = _command([*raw, *_inputs([audio] if audio is not None else []), *args])
        _pipe_frames(command, itertools.chain([first], stream), count, out)
        return checked_output(tmp, out, count)


def _check_clips(infos: Sequence[MediaInfo], fps: float) -> None:
    """All clips at `fps` and the first clip's size: xfade cannot mix sizes or rates, so a clip that
    differs is an error naming it."""
    first = infos[0]
    for info in infos:
        if not info.frames:
            raise MediaError(info.path, "has no video frames")
        if (info.width, info.height) != (first.width, first.height):
            raise MediaError(info.path, f"is {info.width}x{info.height}, expected {first.width}x{first.height}")
        if info.fps is None or abs(info.fps - fps) > 0.01:
            raise MediaError(info.path, f"is {info.fps} fps, expected {fps}")


def _xfade_graph(frames: Sequence[int], transitions: Sequence[str], k: int, fps: int) -> list[str]:
    """Chain clips with xfade; output pad [v] has Σframes − k·(n−1) frames.

    Timestamps are rebuilt from frame indexes in microseconds, and each offset sits half a
    frame before the first overlapping frame, so rounding can never move a frame across it.
    xfade blends exactly the k frames of the outgoing clip that lie past the offset.
    """
    us = 1_000_000 / fps
    chains = [f"[{i}:v]settb=AVTB,setpts=N*{us:.6f}[c{i}]" for i in range(len(frames))]
    previous, length = "[c0]", frames[0]
    for index, transition in enumerate(transitions, start=1):
        offset = max(0, round((length - k - 0.5) * us))
        label = "[v]" if index == len(transitions) else f"[x{index}]"
        chains.append(
            f"{previous}[c{index}]xfade=transition={XFADE_TRANSITIONS[transition]}"
            f":duration={round(k * us)}us:offset={offset}us{label}"
        )
        previous, length = label, length + frames[index] - k
    return chains


def _cut_graph(count: int) -> list[str]:
    """Hard cuts: plain concatenation when the overlap rounds to zero frames."""
    pads = "".join(f"[{i}:v]" for i in range(count))
    return [f"{pads}concat=n={count}:v=1:a=0[v]"]


def assemble_scene(
    clips: Sequence[Path],
    transitions: Sequence[str],
    out: Path,
    fps: int,
    overlap: float = 0.3,
    audio: Path | None = None,
) -> MediaInfo:
    """Join shot clips with transitions (clip i → i+1) and lay `audio` (or silence) under them."""
    out = Path(out)
    if not clips:
        raise ValueError("assemble_scene needs at least one clip")
    if len(transitions) != len(clips) - 1:
        raise ValueError(f"{len(clips)} clips need {len(clips) - 1} transitions, got {len(transitions)}")
    unknown = sorted(set(transitions) - XFADE_TRANSITIONS.keys())
    if unknown:
        raise ValueError(f"unknown transitions {unknown}; use one of {sorted(XFADE_TRANSITIONS)}")
    infos = [probe(clip) for clip in clips]
    _check_clips(infos, fps)
    k = round(overlap * fps)
    frames = [info.frames or 0 for info in infos]
    for index, info in enumerate(infos):
        needed = k * ((index > 0) + (index < len(infos) - 1))
        if frames[index] < needed:
            raise MediaError(info.path, f"has {frames[index]} frames, the {k}-frame transitions need {needed}")
    total = sum(frames) - k * (len(clips) - 1)
    video = _xfade_graph(frames, transitions, k, fps) if k and len(clips) > 1 else _cut_graph(len(clips))
    track = f"[{len(clips)}:a]" if audio is not None else None
    chains = [*video, _fitted_audio(track, _samples(total / fps), "a")]
    inputs = _inputs([*clips, *([audio] if audio is not None else [])])
    with atomic_path(out) as tmp:
        run_ffmpeg([*inputs, *_av_output_args(chains, tmp)], out, "scene assembly failed")
        return checked_output(tmp, out, total)


def thumbnail(video: Path, out: Path, at: float = 0.0, width: int | None = None) -> Path:
    """A JPEG of the frame shown at `at` seconds, optionally scaled to `width` (aspect kept)."""
    video, out = Path(video), Path(out)
    _require_file(video)
    size = f":w={width}:h=-2" if width else ""
    seek = ["-ss", f"{at:.6f}", "-i", str(video), "-frames:v", "1", "-an"]
    with atomic_path(out) as tmp:
        jpeg = ["-vf", _YUV_TO_JPEG + size, "-q:v", "2", "-update", "1", "-f", "image2", "-y", str(tmp)]
        run_ffmpeg([*seek, *jpeg], video, f"no thumbnail at {at} s")
        if tmp.stat().st_size == 0:
            raise MediaError(video, f"no frame at {at} s")
    return out
