"""SubRip (.srt) subtitles: timed dialogue cues, formatted, parsed and written atomically."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.storage import write_text

_TIMESTAMP = r"(\d+):(\d{2}):(\d{2})[,.](\d{3})"
_TIMING = re.compile(rf"^\s*{_TIMESTAMP}\s*-->\s*{_TIMESTAMP}")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"cue times must satisfy 0 <= start < end, got {self.start} → {self.end}")


def _timestamp(seconds: float, separator: str = ",") -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _seconds(hours: str, minutes: str, secs: str, millis: str) -> float:
    # One division of whole milliseconds gives the float nearest the written value.
    return ((int(hours) * 60 + int(minutes)) * 60_000 + int(secs) * 1000 + int(millis)) / 1000


def _lines(text: str) -> str:
    # A blank line ends a cue in SRT, so it cannot appear inside one.
    return "\n".join(line for line in text.strip().splitlines() if line.strip())


def format_srt(cues: Iterable[Cue]) -> str:
    blocks = [
        f"{index}\n{_timestamp(cue.start)} --> {_timestamp(cue.end)}\n{_lines(cue.text)}\n"
        for index, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def format_webvtt(cues: Iterable[Cue]) -> str:
    """The same cues as WebVTT, the format browsers' <track> reads."""
    blocks = [f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{_vtt_text(cue.text)}\n" for cue in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _vtt_text(text: str) -> str:
    # In WebVTT '&' and '<' start entities and tags, and "-->" would end the cue's timing line.
    return _lines(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def parse_srt(text: str) -> list[Cue]:
    """Cues in file order; index lines are ignored, so renumbered or unnumbered files parse too."""
    cues = []
    for block in re.split(r"\n\s*\n", text.lstrip("\ufeff").replace("\r\n", "\n").strip()):
        lines = block.splitlines()
        for position, line in enumerate(lines):
            timing = _TIMING.match(line)
            if timing:
                groups = timing.groups()
                start, end = _seconds(*groups[:4]), _seconds(*groups[4:])
                cues.append(Cue(start, end, "\n".join(lines[position + 1 :]).strip()))
                break
        else:
            if block.strip():
                raise ValueError(f"SRT block without a 'start --> end' line: {block[:80]!r}")
    return cues


def write_srt(cues: Iterable[Cue], path: Path | str) -> Path:
    return write_text(path, format_srt(cues))
