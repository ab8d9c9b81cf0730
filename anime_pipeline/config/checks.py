"""Checks that span fields, run once the schema has accepted a show file.

Cross-references (unique slugs, characters named in shots), the total size of the show, file
references that must stay inside their folders, and dialogue that cannot fit its shot. Each
check returns (field path, reason) pairs; the loader adds the file and the line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from anime_pipeline.config.schema import MAX_SHOTS, Shot, ShowConfig

Loc = tuple[str | int, ...]
Finding = tuple[Loc, str]

# A conservative bound (fast speech is about 3-4 words and 15 letters a second): dialogue over it
# cannot be spoken in its shot by any voice. Synthesis checks each voice's real length later.
MAX_WORDS_PER_SECOND = 5
MAX_LETTERS_PER_SECOND = 20
# A shot streams frame by frame from the renderer to its gates and the encoder (README, "Memory"), so
# its memory grows with the frame, not the clip: a fixed part (the interpreter, the renderer's stage,
# ffmpeg) and a number of frames' worth (the frame in flight and its copies, the metrics' windows,
# x264's lookahead and reference frames), fitted to peak RSS measured by benchmarks/bench_clip_memory.py
# (BENCHMARKS.md, "Shot memory"). A show whose frame size would exceed the budget is refused here rather
# than exhausting the machine halfway through a run.
SHOT_MEMORY_BUDGET = 2 * 1024**3
SHOT_MEMORY_BASE = 256 * 1024**2
SHOT_MEMORY_FRAMES = 56  # RGB frames' worth, renderer process and encoder together


def show_findings(config: ShowConfig, show_dir: Path, music_dir: Path) -> list[Finding]:
    """Every problem a valid schema can still hide; reference_images are relative to `show_dir`,
    scenes' music to `music_dir`."""
    return [*_duplicate_slugs(config), *_cast_and_continuity(config), *_size(config),
            *_files(config, show_dir, music_dir), *_dialogue(config), *_shot_memory(config),
            *_backend_sections(config)]


def outside_problem(value: str, folder: Path) -> str | None:
    """Why `value` does not name a path inside `folder`, or None when it does.

    Checked on the text (no absolute paths, no '..') and on the filesystem, where a symbolic link
    inside `folder` could lead out of it."""
    if "\\" in value:
        return "write '/' between folder names, not '\\'"
    path = PurePosixPath(value)
    if path.is_absolute():
        return f"must be a path relative to {folder}, not an absolute path"
    if ".." in path.parts or not path.parts:
        return f"must name a file inside {folder} ('..' is not allowed)"
    if not (folder / path).resolve().is_relative_to(folder.resolve()):
        return f"leads outside {folder} through a symbolic link"
    return None


def dialogue_problem(shot: Shot) -> str | None:
    """Why the shot's dialogue cannot be spoken within its duration, or None."""
    words = sum(len(line.line.split()) for line in shot.dialogue)
    letters = sum(ch.isalnum() for line in shot.dialogue for ch in line.line)
    if words <= MAX_WORDS_PER_SECOND * shot.duration and letters <= MAX_LETTERS_PER_SECOND * shot.duration:
        return None
    return (f"{words} words ({letters} letters) of dialogue cannot be spoken in {shot.duration:g} s (at most "
            f"{MAX_WORDS_PER_SECOND} words and {MAX_LETTERS_PER_SECOND} letters a second); lengthen the shot "
            "or move lines to another shot")


def _duplicates(values: list[str], loc: Loc, what: str, key: str) -> list[Finding]:
    counts = Counter(values)
    return [((*loc, index, key), f"duplicate {what} {value!r} (first at index {values.index(value)})")
            for index, value in enumerate(values) if counts[value] > 1 and values.index(value) != index]


def _duplicate_slugs(config: ShowConfig) -> list[Finding]:
    found = _duplicates([c.slug for c in config.characters], ("characters",), "character slug", "slug")
    found += _duplicates([e.slug for e in config.episodes], ("episodes",), "episode slug", "slug")
    found += _duplicates([str(e.number) for e in config.episodes], ("episodes",), "episode number", "number")
    for ei, episode in enumerate(config.episodes):
        found += _duplicates([s.slug for s in episode.scenes], ("episodes", ei, "scenes"), "scene slug", "slug")
        for si, scene in enumerate(episode.scenes):
            found += _duplicates([s.slug for s in scene.shots], ("episodes", ei, "scenes", si, "shots"),
                                 "shot slug", "slug")
    return found


def _shots(config: ShowConfig):
    for ei, episode in enumerate(config.episodes):
        for si, scene in enumerate(episode.scenes):
            for hi, shot in enumerate(scene.shots):
                yield ("episodes", ei, "scenes", si, "shots", hi), shot


def _cast_and_continuity(config: ShowConfig) -> list[Finding]:
    known = {c.slug for c in config.characters}
    found: list[Finding] = []
    for base, shot in _shots(config):
        for ci, slug in enumerate(shot.characters):
            if slug not in known:
                found.append(((*base, "characters", ci), f"unknown character {slug!r}; known: {sorted(known)}"))
        if len(set(shot.characters)) != len(shot.characters):
            found.append(((*base, "characters"), "a character is listed twice"))
        for di, line in enumerate(shot.dialogue):
            if line.speaker not in known:
                found.append(((*base, "dialogue", di, "speaker"),
                              f"unknown character {line.speaker!r}; known: {sorted(known)}"))
        if shot.continuity and base[3:] == (0, "shots", 0):
            found.append(((*base, "continuity"), "the first shot of an episode has no previous shot to continue "
                                                 "from (continuity chains never cross episodes)"))
    return found


def _size(config: ShowConfig) -> list[Finding]:
    shots = sum(len(scene.shots) for episode in config.episodes for scene in episode.scenes)
    if shots <= MAX_SHOTS:
        return []
    return [(("episodes",), f"the show has {shots} shots; a show file may have at most {MAX_SHOTS} "
                            "(split the show into several files)")]


def _files(config: ShowConfig, show_dir: Path, music_dir: Path) -> list[Finding]:
    found: list[Finding] = []
    for ci, character in enumerate(config.characters):
        for ri, given in enumerate(character.reference_images):
            reason = outside_problem(given, show_dir)
            if reason:
                found.append((("characters", ci, "reference_images", ri), reason))
    for ei, episode in enumerate(config.episodes):
        for si, scene in enumerate(episode.scenes):
            reason = outside_problem(scene.music, music_dir) if scene.music is not None else None
            if reason:
                found.append((("episodes", ei, "scenes", si, "music"), reason))
    return found


def _dialogue(config: ShowConfig) -> list[Finding]:
    return [((*base, "dialogue"), reason) for base, shot in _shots(config) if (reason := dialogue_problem(shot))]


def shot_memory(config: ShowConfig) -> int:
    """The bytes one shot of the show needs at its peak (see SHOT_MEMORY_*), whatever its duration."""
    video = config.show.video
    return SHOT_MEMORY_BASE + SHOT_MEMORY_FRAMES * video.width * video.height * 3


def _shot_memory(config: ShowConfig) -> list[Finding]:
    need, video = shot_memory(config), config.show.video
    if need <= SHOT_MEMORY_BUDGET:
        return []
    return [(("show", "video"), f"{video.width}×{video.height} frames need {need / 1024**3:.1f} GiB a shot "
                                f"({SHOT_MEMORY_BASE // 1024**2} MiB + {SHOT_MEMORY_FRAMES} frames of "
                                f"{video.width * video.height * 3 / 1024**2:.1f} MiB), more than the "
                                f"{SHOT_MEMORY_BUDGET / 1024**3:g} GiB budget: lower show.video's width and height")]


def _backend_sections(config: ShowConfig) -> list[Finding]:
    """What a chosen backend needs from the rest of the file: a jellyfin section, every scene's track."""
    found: list[Finding] = []
    if config.backends.publisher == "jellyfin" and config.jellyfin is None:
        found.append((("jellyfin",), "backends.publisher is 'jellyfin': add a jellyfin: section with at least "
                                     "server_library_path (the library folder as the server sees it)"))
    if config.backends.music == "file":
        for ei, episode in enumerate(config.episodes):
            for si, scene in enumerate(episode.scenes):
                if scene.music is None:
                    found.append((("episodes", ei, "scenes", si, "music"),
                                  "backends.music is 'file': every scene names its track, a file in the music "
                                  "folder"))
    return found
