"""The one adapter between the players and the artifacts' manifest.json files.

`load_record` is the only place the studio reads a shot's, scene's or episode's manifest;
when the typed manifest models land, it becomes a conversion from them (and the gates come
from their single declaration instead of being judged here from the recorded numbers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from anime_pipeline.config.schema import Quality
from anime_pipeline.paths import StoragePaths
from anime_pipeline.studio.models import AssemblyRecord, Attempt, Chapter, Gate, ShotRecord

MANIFEST = "manifest.json"


class RecordError(Exception):
    """A manifest exists but cannot be read as the studio expects: names the file and the reason."""


def _at_least(value: float, threshold: float) -> bool:
    return value >= threshold


def _at_most(value: float, threshold: float) -> bool:
    return value <= threshold


def _gate(name: str, value: Any, threshold: Any, test: Callable[[Any, Any], bool], backend: str) -> Gate:
    return Gate(name, round(value, 4) if isinstance(value, float) else value, threshold, bool(test(value, threshold)),
                backend)


def _shot_gates(scores: Mapping[str, Any], backends: Mapping[str, str], q: Quality) -> list[Gate]:
    """The blocking shot checks, judged on one attempt's scores."""
    lowest = min(scores["identity"].values(), default=1.0)  # a shot without characters has nothing to lose
    return [
        _gate("identity", lowest, q.identity, _at_least, backends.get("identity", "n/a")),
        _gate("temporal_stability", scores["temporal_change"], q.temporal_lpips, _at_most, backends["temporal_change"]),
        _gate("motion_smoothness", scores["motion_smoothness"], q.motion_smoothness, _at_least,
              backends["motion_smoothness"]),
        _gate("temporal_flickering", scores["temporal_flickering"], q.temporal_flickering, _at_least,
              backends["temporal_flickering"]),
        _gate("not_a_still", scores["mean_motion"], q.min_motion, _at_least, backends["dynamic_degree"]),
    ]


def _shot(key: str, folder: str, m: dict[str, Any], q: Quality) -> ShotRecord:
    backends = m["metrics"]["backends"]
    attempts = [Attempt(a["attempt"], a["seed"], a["steps"], a["threshold"], a["scores"]["quality"], a["passed"],
                        a["attempt"] == m["chosen_attempt"], _shot_gates(a["scores"], backends, q))
                for a in m["attempts"]]
    chosen = next(a for a in attempts if a.chosen)
    return ShotRecord(key, f"{folder}/clip.mp4", m["backend"], m["device"], m["prompt"], chosen.seed, m["frames"],
                      m["duration"], attempts, chosen.gates)


def _scene(key: str, folder: str, m: dict[str, Any], q: Quality) -> AssemblyRecord:
    video, subject, cast = m["video"], m["subject_consistency"], m["cast_identity"]
    gates = [
        _gate("duration_exact", video["frames"], m["expected_frames"], lambda a, b: a == b, "decoded frame count"),
        _gate("audio_present", video["audio_codec"] or "none", "aac", lambda a, b: a == b, "ffmpeg probe"),
        _gate("scene_continuity", m["continuity"]["score"], q.scene_continuity, _at_least, m["continuity"]["backend"]),
        _gate("subject_consistency", subject["score"], q.subject_consistency, _at_least, subject["backend"]),
        _gate("cast_identity", cast["score"], q.identity, _at_least, cast["backend"]),
    ]
    return AssemblyRecord("scene", key, f"{folder}/scene.mp4", None, video["duration"], gates,
                          list(m["shots"]), [])


def _episode(key: str, folder: str, m: dict[str, Any], fps: int) -> AssemblyRecord:
    gates = [_gate("duration", m["duration"], round(m["expected_duration"], 4),
                   lambda a, b: abs(a - b) <= 1.0 / fps, "decoded duration vs Σ scenes (±1 frame)")]
    chapters = [Chapter(c["start"], c["title"], scene) for c, scene in zip(m["chapters"], m["scenes"], strict=True)]
    return AssemblyRecord("episode", key, f"{folder}/episode.mp4", f"{folder}/thumbnail.jpg", m["duration"],
                          gates, list(m["scenes"]), chapters)


def load_record(kind: str, key: str, paths: StoragePaths, quality: Quality,
                fps: int) -> ShotRecord | AssemblyRecord | None:
    """The record of a shot, scene or episode from its manifest; None when it was never rendered."""
    folder = {"shot": paths.shot, "scene": paths.scene, "episode": paths.episode}[kind](key)
    path = folder / MANIFEST
    if not path.exists():
        return None
    relative = folder.relative_to(paths.root).as_posix()
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if kind == "shot":
            return _shot(key, relative, manifest, quality)
        if kind == "scene":
            return _scene(key, relative, manifest, quality)
        return _episode(key, relative, manifest, fps)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc})") from None
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise RecordError(f"{path}: not a {kind} manifest the studio can read ({type(exc).__name__}: {exc})") from None
