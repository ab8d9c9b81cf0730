"""A scene's dialogue track: every shot's lines spoken and placed inside that shot's time span.

A shot's lines may start once its incoming transition is over and must end by the shot's own
end (the next shot's lines wait for its transition in turn, so lines never overlap). Inside
the span the lines keep their order, `gap` apart, with the spare time spread before them.
Subtitle cues are the spoken audio's own start and end. A line that cannot fit is reported,
not squeezed: `DialogueDoesNotFit` names the shot, the line and both durations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anime_pipeline.media.ffmpeg import SAMPLE_RATE
from anime_pipeline.media.pcm import read_wav, write_wav
from anime_pipeline.media.speech import SpeechCache, SpokenLine, Voice
from anime_pipeline.media.subtitles import Cue

MAX_LEAD = 0.5  # seconds of quiet before a line at most, however long the shot


@dataclass(frozen=True)
class ShotSpan:
    """Where on the scene timeline a shot's lines may play, in seconds."""

    shot: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def shot_spans(shots: Sequence[str], frames: Sequence[int], fps: int, overlap_frames: int) -> list[ShotSpan]:
    """Spans of shots joined with `overlap_frames`-frame transitions (ffmpeg.assemble_scene's timeline)."""
    if len(shots) != len(frames):
        raise ValueError(f"{len(shots)} shots but {len(frames)} frame counts")
    spans, first_frame = [], 0
    for index, (shot, count) in enumerate(zip(shots, frames, strict=True)):
        incoming = overlap_frames if index else 0
        spans.append(ShotSpan(shot, (first_frame + incoming) / fps, (first_frame + count) / fps))
        first_frame += count - overlap_frames
    return spans


@dataclass(frozen=True)
class LineRequest:
    shot: str
    index: int  # the line's position in the shot's dialogue, from 0
    speaker: str  # character slug
    name: str  # the speaker as the subtitle shows it
    text: str
    voice: Voice


@dataclass(frozen=True)
class PlacedLine:
    request: LineRequest
    start: float
    clip: SpokenLine

    @property
    def duration(self) -> float:
        return self.clip.duration

    @property
    def end(self) -> float:
        return self.start + self.clip.duration

    def cue(self) -> Cue:
        return Cue(round(self.start, 3), round(self.end, 3), f"{self.request.name}: {self.request.text}")


@dataclass(frozen=True)
class LineMisfit:
    shot: str
    index: int
    speaker: str
    text: str
    line_duration: float
    available: float

    @property
    def message(self) -> str:
        return (f"shot {self.shot}: line {self.index + 1} ({self.speaker}: {self.text!r}) lasts "
                f"{self.line_duration:.2f} s but only {self.available:.2f} s of the shot are left for it")


@dataclass(frozen=True)
class DialogueDoesNotFit:
    misfits: tuple[LineMisfit, ...]

    @property
    def message(self) -> str:
        return "; ".join(m.message for m in self.misfits)


@dataclass(frozen=True)
class DialogueTrack:
    path: Path  # 48 kHz mono WAV of the whole scene: the speech stem
    duration: float
    lines: tuple[PlacedLine, ...]
    cues: tuple[Cue, ...]
    backend: str  # the speech backend's label
    embedded: bool

    @property
    def segments(self) -> tuple[tuple[float, float], ...]:
        return tuple((line.start, line.end) for line in self.lines)


def place_dialogue(spans: Sequence[ShotSpan], lines: Sequence[LineRequest], cache: SpeechCache, duration: float,
                   out: Path, gap: float = 0.25) -> DialogueTrack | DialogueDoesNotFit:
    """Speak every line (through the cache), then either place them all and write the track to
    `out`, or return every line that does not fit."""
    shots = {span.shot for span in spans}
    unknown = sorted({line.shot for line in lines} - shots)
    if unknown:
        raise ValueError(f"dialogue for shots {unknown} that are not in the scene ({sorted(shots)})")
    spoken = [(line, cache.line(line.text, line.voice)) for line in lines]
    placed: list[PlacedLine] = []
    misfits: list[LineMisfit] = []
    for span in spans:
        fitted = _place_shot(span, [(line, clip) for line, clip in spoken if line.shot == span.shot], gap)
        if isinstance(fitted, LineMisfit):
            misfits.append(fitted)
        else:
            placed += fitted
    if misfits:
        return DialogueDoesNotFit(tuple(misfits))
    _write_track(out, placed, duration)
    return DialogueTrack(out, duration, tuple(placed), tuple(p.cue() for p in placed), cache.backend.label,
                         cache.backend.embedded)


def _place_shot(span: ShotSpan, spoken: Sequence[tuple[LineRequest, SpokenLine]], gap: float
                ) -> list[PlacedLine] | LineMisfit:
    needed = sum(clip.duration for _, clip in spoken) + gap * max(0, len(spoken) - 1)
    if needed > span.length:
        return _first_misfit(span, spoken, gap)
    lead = min(MAX_LEAD, (span.length - needed) / (len(spoken) + 1))
    placed, at = [], span.start + lead
    for line, clip in spoken:
        placed.append(PlacedLine(line, at, clip))
        at += clip.duration + gap + lead
    return placed


def _first_misfit(span: ShotSpan, spoken: Sequence[tuple[LineRequest, SpokenLine]], gap: float) -> LineMisfit:
    used = 0.0
    for line, clip in spoken:
        available = span.length - used
        if clip.duration > available:
            return LineMisfit(line.shot, line.index, line.speaker, line.text, clip.duration, max(0.0, available))
        used += clip.duration + gap
    raise AssertionError("called only when the lines do not fit")


def _write_track(out: Path, placed: Sequence[PlacedLine], duration: float) -> None:
    track = np.zeros(round(duration * SAMPLE_RATE), dtype=np.float32)
    for line in placed:
        samples, _ = read_wav(line.clip.path)
        first = round(line.start * SAMPLE_RATE)
        piece = samples[: max(0, len(track) - first)]
        track[first: first + len(piece)] += piece
    write_wav(out, track)
