"""Subtitles for the players: the .srt cues of a scene, or of an episode's scenes one after another."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anime_pipeline.media.subtitles import Cue, parse_srt


def placed_cues(srt_files: Sequence[tuple[Path, float]]) -> list[Cue]:
    """The cues of several .srt files, each file's from its start time (a scene's own file from 0,
    an episode's scenes from their chapter starts); a scene without a subtitle file has none."""
    cues: list[Cue] = []
    for path, start in srt_files:
        if not path.exists():
            continue
        try:
            parsed = parse_srt(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        cues += [Cue(c.start + start, c.end + start, c.text) for c in parsed]
    return cues
