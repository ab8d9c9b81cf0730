"""`anime-pipeline score`: any clip — an MP4 or a folder of PNG frames — judged by exactly the shot
gates (`production.shot_clip.GATES`, the same measures and thresholds the shot asset and its
retry loop use), and, given a shot or characters of a show, identity against their anchors.

The show's `quality:` thresholds and style (drawn or photoreal) apply when a show is named; the
spec's defaults otherwise. A clip from outside the pipeline comes without the renderer's face
boxes: on the weight-free identity backend each character's drawn face is found by its key
colours (`suite.drawn_face_boxes`) and identity is judged on the frames where it is found; the
model backends find faces themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import Quality, ShowConfig
from anime_pipeline.media import MediaError, iter_frames, probe
from anime_pipeline.metrics.scores import Score
from anime_pipeline.metrics.suite import Appearance, MetricSuite, PaletteIdentity, drawn_face_boxes
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.gates import SYMBOL, GateResult, all_passed, failed_names
from anime_pipeline.production.identity import show_identity_backend
from anime_pipeline.production.shot_clip import GATES, ShotManifest, clip_scores

DEFAULT_FPS = 24.0  # a PNG folder's frame rate when neither --fps nor a show gives one
MIN_FRAMES = 3  # VBench motion smoothness interpolates between every other frame
RENDERED = "rendered (not previz)"  # the renderer of a clip scored for a show that does not say otherwise


class ScoringError(Exception):
    """A clip or a request that cannot be scored: the message names it and the reason; `fix` says
    what to do."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.fix = fix


@dataclass(frozen=True)
class Clip:
    """A clip to score, read frame by frame when scored (`frames`): never held whole."""

    source: Path
    count: int
    size: tuple[int, int]  # width, height
    fps: float

    def frames(self) -> Iterator[np.ndarray]:
        """The clip's frames, decoded (a video) or loaded (a PNG folder) one at a time."""
        if self.source.is_dir():
            for file in _png_frames(self.source):
                with Image.open(file) as image:
                    yield np.asarray(image.convert("RGB"))
        else:
            yield from iter_frames(self.source)


@dataclass(frozen=True)
class Target:
    """What a clip is judged as: the show's thresholds, the characters whose identity counts
    and the renderer whose images these are (it picks the identity backend)."""

    quality: Quality
    config: ShowConfig | None = None
    shot: str | None = None
    characters: tuple[str, ...] = ()
    renderer: str = RENDERED

    @property
    def fps(self) -> float:
        """The frame rate of the show's videos (a PNG folder's, unless given)."""
        return float(self.config.show.video.fps) if self.config is not None else DEFAULT_FPS


@dataclass(frozen=True)
class Report:
    clip: Clip
    target: Target
    identity_backend: str
    results: list[GateResult]

    @property
    def passed(self) -> bool:
        return all_passed(self.results)


# --- reading a clip --------------------------------------------------------------------------

def _too_short(path: Path, frames: int) -> None:
    if frames < MIN_FRAMES:
        raise ScoringError(f"{path}: {frames} frame(s); the shot gates need at least {MIN_FRAMES}")


def read_video(path: Path) -> Clip:
    """A video file's frame count, size and frame rate (its frames stream when scored)."""
    try:
        info = probe(path)
    except MediaError as error:
        reason = str(error).splitlines()[0].removeprefix(f"{path}: ")
        raise ScoringError(f"{path} is not a video ffmpeg can decode ({reason})",
                           "give an MP4 (or any video ffmpeg reads) or a folder of PNG frames") from None
    if not info.frames or not info.width or not info.height or not info.fps:
        raise ScoringError(f"{path} has no video stream with a frame rate", "give a video file or a folder of PNGs")
    _too_short(path, info.frames)
    return Clip(path, info.frames, (info.width, info.height), info.fps)


def _png_frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png") if not p.name.startswith("."))


def read_png_folder(folder: Path, fps: float) -> Clip:
    """The folder's PNG frames in name order (0000.png, 0001.png, …), all of one size (checked
    here; the frames are loaded one at a time when scored)."""
    files = _png_frames(folder)
    if not files:
        raise ScoringError(f"{folder} holds no PNG frames", "give a folder of PNG frames (0000.png, 0001.png, …) or a video")
    _too_short(folder, len(files))
    sizes = {}
    for file in files:
        try:
            with Image.open(file) as image:
                if image.format != "PNG":
                    raise ScoringError(f"{file} is a {image.format} image, not a PNG frame")
                sizes[file] = image.size
        except (UnidentifiedImageError, OSError) as error:
            raise ScoringError(f"{file} is not a readable PNG ({error})") from None
    first = sizes[files[0]]
    odd = next((file for file in files if sizes[file] != first), None)
    if odd is not None:
        raise ScoringError(f"{odd} is {sizes[odd][0]}x{sizes[odd][1]}, but {files[0].name} is {first[0]}x{first[1]}: "
                           f"every frame of a clip has one size")
    return Clip(folder, len(files), first, fps)


def read_clip(path: Path, fps: float | None = None, default_fps: float = DEFAULT_FPS) -> Clip:
    """An MP4 (or any video ffmpeg decodes) or a folder of PNG frames; `fps` is a PNG folder's
    frame rate (`default_fps` when not given; a video's own rate is used, and `fps` must match it
    when given)."""
    if fps is not None and not 0 < fps <= 240:
        raise ScoringError(f"--fps {fps:g} is not a frame rate", "give frames per second: more than 0, at most 240")
    if not path.exists():
        raise ScoringError(f"{path} does not exist")
    if path.is_dir():
        return read_png_folder(path, fps or default_fps)
    clip = read_video(path)
    if fps is not None and abs(fps - clip.fps) > 0.01:
        raise ScoringError(f"{path} is {clip.fps:g} fps, not the {fps:g} asked for", "leave --fps out for a video")
    return clip


# --- what a clip is judged as -----------------------------------------------------------------

def target_for(project: Project, paths: StoragePaths, show: str | None = None, shot: str | None = None,
               characters: tuple[str, ...] = ()) -> Target:
    """The show's thresholds and, for a shot or named characters, whose identity counts."""
    if show is None:
        if shot or characters:
            raise ScoringError("--shot and --character need --show", "name the show: --show SLUG")
        return Target(Quality())
    if show not in project.shows:
        raise ScoringError(f"unknown show {show!r}", f"choose one of {sorted(project.shows)}")
    config = project.shows[show]
    slugs = {c.slug for c in config.characters}
    unknown = [slug for slug in characters if slug not in slugs]
    if unknown:
        raise ScoringError(f"show {show!r} has no character {unknown[0]!r}", f"choose from {sorted(slugs)}")
    if shot is None:
        return Target(config.quality, config, None, tuple(characters), _renderer(config))
    ref = project.shots.get(shot if shot.startswith(f"{show}/") else f"{show}/{shot}")
    if ref is None:
        raise ScoringError(f"unknown shot {shot!r} in show {show!r}", _shot_hint(project, show))
    recorded = ShotManifest.load(paths.shot(ref.key))
    cast = tuple(dict.fromkeys([*ref.shot.characters, *characters]))
    return Target(config.quality, config, ref.key, cast, recorded.backend if recorded else _renderer(config))


def _shot_hint(project: Project, show: str) -> str:
    known = sorted(k for k in project.shots if k.startswith(f"{show}/"))
    if not known:
        return "the show has no shots"
    return f"shot keys look like {known[0]} or {known[0].removeprefix(show + '/')} ({len(known)} in this show)"


def _renderer(config: ShowConfig) -> str:
    """A clip scored for a show whose shots are not rendered yet: its configured renderer."""
    return "previz" if config.backends.renderer == "previz" else RENDERED


def appearances(target: Target, paths: StoragePaths) -> dict[str, Appearance]:
    """Each character's anchors (from its character_embedding) and key colours."""
    if target.config is None:
        return {}
    show = target.config.show.slug
    found = {}
    for slug in target.characters:
        try:
            anchor = load_anchor(paths.embedding(f"{show}/{slug}"))
        except FileNotFoundError:
            raise ScoringError(f"the identity anchors of {show}/{slug} are not produced yet "
                               f"({paths.embedding(f'{show}/{slug}')} has none)",
                               f"materialize its character_embedding first (anime-pipeline backfill <episode>, "
                               f"or the asset {show}/{slug}/character_embedding in the UI)") from None
        colors = target.config.character(slug).appearance.key_colors
        found[slug] = Appearance(anchor, colors.skin, colors.eyes)
    return found


# --- scoring -----------------------------------------------------------------------------------

def _found_frames_only(score: Score) -> Score:
    """A character's identity judged on the frames where its drawn face was found: a frame where
    the colour finder finds no one (a blink, a turn, a face that compression smeared) is no
    evidence either way. Those frames show the clip's best value and stay listed in
    `frames_without_face`; a character found in no frame keeps 0."""
    missing = set(score.details.get("frames_without_face", []))
    judged = [value for index, value in enumerate(score.per_frame) if index not in missing]
    if not judged or not missing:
        return score
    best = max(judged)
    per_frame = tuple(best if index in missing else value for index, value in enumerate(score.per_frame))
    return replace(score, value=min(judged), per_frame=per_frame,
                   details={**score.details, "judged": "frames where the face was found"})


def score(clip: Clip, target: Target, characters: dict[str, Appearance], suite: MetricSuite) -> Report:
    """The shot gates on the clip, with the target's thresholds and characters."""
    backend = (show_identity_backend(suite, target.config, target.renderer) if target.config is not None
               else PaletteIdentity())
    anchors = {slug: look.anchor for slug, look in characters.items()}
    meter = suite.shot_meter(clip.fps, anchors, backend)
    palette = isinstance(backend, PaletteIdentity)
    for frame in clip.frames():
        # without the renderer's boxes the drawn faces are found by colour; the models' detectors find their own
        meter.add(frame, drawn_face_boxes([frame], characters)[0] if palette else {})
    measures = meter.result()
    if palette:
        identity = measures.identity
        found = {slug: _found_frames_only(s) for slug, s in identity.scores.items()}
        measures = replace(measures, identity=replace(identity, scores=found))
    return Report(clip, target, backend.backend, GATES.evaluate(clip_scores(measures), target.quality))


def as_json(report: Report) -> dict[str, Any]:
    width, height = report.clip.size
    return {"source": str(report.clip.source), "frames": report.clip.count, "fps": report.clip.fps,
            "width": width, "height": height, "show": report.target.config.show.slug if report.target.config else None,
            "shot": report.target.shot, "characters": list(report.target.characters),
            "identity_backend": report.identity_backend, "passed": report.passed,
            "failed": failed_names(report.results),
            "gates": [{"name": r.name, "passed": r.passed, "value": r.value, "threshold": r.threshold,
                       "direction": r.direction, "backend": r.backend, "margin": r.margin,
                       "worst_frames": r.details.get("worst_frames"),
                       "details": {k: v for k, v in r.details.items() if k != "worst_frames"}}
                      for r in report.results]}


def _frames(worst: Any) -> str:
    if isinstance(worst, dict):
        return "; ".join(f"{slug}: {_frames(frames)}" for slug, frames in worst.items()) or "-"
    return ", ".join(str(i) for i in worst) if worst else "-"


def render(report: Report) -> list[str]:
    """The report as lines for a terminal: the clip, then one line per gate, then the verdict."""
    width, height = report.clip.size
    target = report.target
    judged = (f"shot {target.shot}" if target.shot else f"show {target.config.show.slug}" if target.config
              else "the default thresholds")
    cast = f", identity of {', '.join(target.characters)}" if target.characters else ""
    header = f"{report.clip.source}: {report.clip.count} frames, {width}x{height} at {report.clip.fps:g} fps"
    lines = [f"{header} — judged as {judged}{cast}"]
    for r in report.results:
        lines.append(f"  {'pass' if r.passed else 'FAIL'}  {r.name:<20} {r.value!s:>8} {SYMBOL[r.direction]} "
                     f"{r.threshold!s:<6}  worst frames {_frames(r.details.get('worst_frames'))}  [{r.backend}]")
    failed = failed_names(report.results)
    lines.append("every shot gate passes" if not failed else f"fails {len(failed)} gate(s): {', '.join(failed)}")
    return lines
