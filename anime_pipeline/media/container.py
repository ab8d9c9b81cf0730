"""The episode file: scenes joined by stream copy, with chapters and a soft subtitle track in the MP4.

Scenes come out of `assemble_scene` with identical encoder settings, so nothing is
re-encoded (hundreds of times realtime): the video through the concat demuxer, each scene
given its exact video duration so no frame moves; the audio packets laid on the episode
timeline by `aac_splice` so it stays in sync. The same ffmpeg run maps the chapters
(ffmetadata, one per scene) and the subtitles (SRT → mov_text, tagged with their language);
the result is read back before it is renamed into place.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.media.aac_splice import PRIMING_PACKETS, SAMPLES_PER_PACKET, aac_track, splice
from anime_pipeline.media.ffmpeg import MediaError, MediaInfo, probe_packets, run_ffmpeg
from anime_pipeline.media.subtitles import Cue, format_srt, parse_srt
from anime_pipeline.storage import atomic_path

FFMETADATA_SPECIAL = re.compile(r"([=;#\\\n])")
# This ffmpeg's MP4 muxer overflows the QuickTime chapter track's sample durations when a
# mov_text track keeps the SRT demuxer's time base; a millisecond time base avoids it.
SUBTITLE_TIME_BASE = "1/1000"


@dataclass(frozen=True)
class Chapter:
    start: float
    end: float
    title: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"chapter {self.title!r}: needs 0 <= start < end, got {self.start} → {self.end}")


@dataclass(frozen=True)
class EpisodeFile:
    info: MediaInfo  # from the packets: `frames` counts video packets
    chapters: tuple[Chapter, ...]
    subtitles: int  # cues in the soft track
    sync_error: float  # seconds: the worst distance of a scene's audio start from its video start


def chapters_for(titles: Sequence[str], durations: Sequence[float]) -> list[Chapter]:
    """One chapter per scene, back to back."""
    if len(titles) != len(durations):
        raise ValueError(f"{len(titles)} chapter titles but {len(durations)} durations")
    chapters, start = [], 0.0
    for title, duration in zip(titles, durations, strict=True):
        chapters.append(Chapter(round(start, 3), round(start + duration, 3), title))
        start += duration
    return chapters


def shift_cues(per_scene: Sequence[Sequence[Cue]], durations: Sequence[float]) -> list[Cue]:
    """Scene cues on the episode timeline."""
    cues, offset = [], 0.0
    for scene_cues, duration in zip(per_scene, durations, strict=True):
        cues += [Cue(round(c.start + offset, 3), round(c.end + offset, 3), c.text) for c in scene_cues]
        offset += duration
    return cues


def _escape(value: str) -> str:
    return FFMETADATA_SPECIAL.sub(r"\\\1", value)


def ffmetadata(chapters: Sequence[Chapter], title: str) -> str:
    lines = [";FFMETADATA1", f"title={_escape(title)}"]
    for chapter in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={round(chapter.start * 1000)}",
                  f"END={round(chapter.end * 1000)}", f"title={_escape(chapter.title)}"]
    return "\n".join(lines) + "\n"


def _concat_list(infos: Sequence[MediaInfo], durations: Sequence[float]) -> str:
    """Concat demuxer script for the scenes' video alone. The audio must not take part: its priming
    packet starts before 0 and would shift every frame by it; `duration` pins each file to its
    video's length, which the audio (longer by its last packet) would otherwise stretch."""
    lines = ["ffconcat version 1.0", "stream", f"exact_stream_id {infos[0].video_stream_id}"]
    for info, duration in zip(infos, durations, strict=True):
        # The concat demuxer's quoting: inside '…', a quote is written '\''.
        lines += ["file '{}'".format(str(info.path.resolve()).replace("'", "'\\''")), f"duration {duration:.6f}"]
    return "\n".join(lines) + "\n"


def _signature(info: MediaInfo) -> tuple:
    return info.video_codec, info.width, info.height, info.fps, info.audio_codec, info.video_stream_id


def _check_joinable(infos: Sequence[MediaInfo]) -> None:
    first = infos[0]
    for info in infos:
        if info.video_stream_id is None:
            raise MediaError(info.path, "has no MP4 track id for its video; scenes must be MP4 files")
        if not info.frames:
            raise MediaError(info.path, "has no video")
        if info.audio_codec is None:
            raise MediaError(info.path, "has no audio; every scene needs its mix before the episode is joined")
        if _signature(info) != _signature(first):
            raise MediaError(info.path, f"cannot be stream-copied after {first.path.name}: "
                                        f"{_signature(info)} differs from {_signature(first)}")


def _check_chapters(chapters: Sequence[Chapter], duration: float) -> None:
    for before, after in zip(chapters, chapters[1:]):
        if after.start < before.end:
            raise ValueError(f"chapter {after.title!r} starts at {after.start} s, before {before.title!r} ends")
    if chapters and chapters[-1].end > duration + 0.5:
        raise ValueError(f"chapter {chapters[-1].title!r} ends at {chapters[-1].end} s, after the "
                         f"{duration:.3f} s episode")


def assemble_episode(scenes: Sequence[Path], out: Path, chapters: Sequence[Chapter], cues: Sequence[Cue],
                     title: str, language: str = "eng") -> EpisodeFile:
    """Join `scenes` (stream copy) into `out` with `chapters` and `cues` as a soft subtitle track."""
    out = Path(out)
    if not scenes:
        raise ValueError("an episode needs at least one scene")
    scenes = [Path(scene) for scene in scenes]
    # Each look at a scene is an ffmpeg start; side by side they use every core.
    with ThreadPoolExecutor() as pool:
        infos, tracks = zip(*pool.map(lambda scene: (probe_packets(scene), aac_track(scene)), scenes), strict=True)
    _check_joinable(infos)
    durations = [(info.frames or 0) / (info.fps or 1) for info in infos]
    _check_chapters(chapters, sum(durations))
    audio = splice(scenes, tracks, durations)
    with tempfile.TemporaryDirectory(prefix="episode-") as folder:
        work = Path(folder)
        (work / "scenes.txt").write_text(_concat_list(infos, durations), encoding="utf-8")
        (work / "audio.aac").write_bytes(audio.adts)
        (work / "chapters.txt").write_text(ffmetadata(chapters, title), encoding="utf-8")
        priming = PRIMING_PACKETS * SAMPLES_PER_PACKET / audio.sample_rate
        inputs = ["-f", "concat", "-safe", "0", "-i", str(work / "scenes.txt"),
                  # Starting the audio one priming packet early lets the muxer write the edit list that hides it.
                  "-itsoffset", f"{-priming:.9f}", "-i", str(work / "audio.aac"), "-i", str(work / "chapters.txt")]
        maps = ["-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "2", "-map_chapters", "2", "-c:v", "copy",
                "-c:a", "copy"]
        if cues:
            (work / "subtitles.srt").write_text(format_srt(cues), encoding="utf-8")
            inputs += ["-i", str(work / "subtitles.srt")]
            maps += ["-map", "3:0", "-c:s", "mov_text", "-time_base:s", SUBTITLE_TIME_BASE,
                     "-metadata:s:s:0", f"language={language}"]
        with atomic_path(out) as tmp:
            run_ffmpeg([*inputs, *maps, "-movflags", "+faststart", "-f", "mp4", "-y", str(tmp)], out,
                       "episode concatenation failed")
            return _verified(tmp, out, infos, chapters, len(cues), audio.worst_offset)


def _verified(tmp: Path, out: Path, parts: Sequence[MediaInfo], chapters: Sequence[Chapter], cues: int,
              sync_error: float) -> EpisodeFile:
    with ThreadPoolExecutor() as pool:
        packets = pool.submit(probe_packets, tmp)
        metadata = pool.submit(_metadata, tmp)
        subtitles = pool.submit(_extract_subtitles, tmp) if cues else None
        info, (text, _) = packets.result(), metadata.result()
        found = len(subtitles.result()) if subtitles else 0
    expected = sum(part.frames or 0 for part in parts)
    if info.frames != expected:
        raise MediaError(out, f"joined file has {info.frames} video frames, the scenes have {expected}")
    written = _chapters(text)
    if [c.title for c in written] != [c.title for c in chapters]:
        titles = [c.title for c in chapters]
        raise MediaError(out, f"chapters read back as {[c.title for c in written]}, wrote {titles}")
    if found != cues:
        raise MediaError(out, f"the subtitle track holds {found} cues, wrote {cues}")
    return EpisodeFile(MediaInfo(out, info.duration, info.video_codec, info.audio_codec, info.width, info.height,
                                 info.fps, info.frames), tuple(written), found, sync_error)


_CHAPTER_BLOCK = re.compile(r"\[CHAPTER\]\s*TIMEBASE=(\d+)/(\d+)\s*START=(-?\d+)\s*END=(-?\d+)\s*(?:title=(.*))?")


def _metadata(path: Path) -> tuple[str, str]:
    """ffmpeg's ffmetadata export of the file (stdout) and its stream dump (stderr)."""
    proc = run_ffmpeg(["-i", str(path), "-f", "ffmetadata", "-"], path, "cannot read the container", loglevel="info")
    return proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def _chapters(metadata: str) -> list[Chapter]:
    chapters = []
    for num, den, start, end, title in _CHAPTER_BLOCK.findall(metadata):
        scale = int(num) / int(den)
        chapters.append(Chapter(int(start) * scale, int(end) * scale, re.sub(r"\\(.)", r"\1", title.strip())))
    return chapters


def _extract_subtitles(path: Path) -> list[Cue]:
    proc = run_ffmpeg(["-i", str(path), "-map", "0:s:0", "-f", "srt", "-"], path, "cannot read subtitles")
    return parse_srt(proc.stdout.decode(errors="replace"))


def read_chapters(path: Path | str) -> list[Chapter]:
    """The file's chapters, as ffmpeg reads them back."""
    return _chapters(_metadata(Path(path))[0])


def read_subtitles(path: Path | str) -> list[Cue]:
    """The first subtitle track's cues (none when the file has no subtitle track)."""
    path = Path(path)
    has_track = re.search(r"Stream #0:\d+\S*: Subtitle:", _metadata(path)[1])
    return _extract_subtitles(path) if has_track else []
