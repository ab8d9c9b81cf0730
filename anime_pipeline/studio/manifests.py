"""The studio's view of shots, scenes and episodes: read from their typed manifests, judged by their gates.

The gates shown are the artifacts' own declarations (`production.*.GATES`) evaluated on the
recorded manifest with the show's thresholds, exactly as the blocking checks judged them.
"""

from __future__ import annotations

from anime_pipeline.config.schema import Quality
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.episode_video import EpisodeManifest, EpisodeVideo
from anime_pipeline.production.gates import GateResult
from anime_pipeline.production.scene_video import SceneManifest, SceneVideo
from anime_pipeline.production.shot_clip import GATES as SHOT_GATES
from anime_pipeline.production.shot_clip import ShotManifest
from anime_pipeline.studio.models import AssemblyRecord, Attempt, Chapter, Gate, ShotRecord

MANIFEST = "manifest.json"
KINDS = {"shot": ShotManifest, "scene": SceneManifest, "episode": EpisodeManifest}


class RecordError(Exception):
    """A manifest exists but cannot be read as its model: names the file."""


def _gates(results: list[GateResult]) -> list[Gate]:
    return [Gate(r.name, r.value, r.threshold, r.passed, r.backend) for r in results]


def _shot(key: str, folder: str, m: ShotManifest, q: Quality) -> ShotRecord:
    attempts = [Attempt(a.attempt, a.seed, a.steps, a.passed, a.attempt == m.chosen_attempt,
                        _gates(SHOT_GATES.evaluate(a.scores, q))) for a in m.attempts]
    chosen = next(a for a in attempts if a.chosen)
    return ShotRecord(key, f"{folder}/clip.mp4", m.backend, m.device, m.prompt, chosen.seed, m.frames, m.duration,
                      attempts, chosen.gates)


def _scene(key: str, folder: str, m: SceneManifest, q: Quality) -> AssemblyRecord:
    return AssemblyRecord("scene", key, f"{folder}/scene.mp4", None, m.video.duration,
                          _gates(SceneVideo.gates.evaluate(m, q)), list(m.shots), [])


def _episode(key: str, folder: str, m: EpisodeManifest, q: Quality) -> AssemblyRecord:
    chapters = [Chapter(c.start, c.title, scene) for c, scene in zip(m.chapters, m.scenes, strict=True)]
    return AssemblyRecord("episode", key, f"{folder}/episode.mp4", f"{folder}/thumbnail.jpg", m.duration,
                          _gates(EpisodeVideo.gates.evaluate(m, q)), list(m.scenes), chapters)


def load_record(kind: str, key: str, paths: StoragePaths, quality: Quality) -> ShotRecord | AssemblyRecord | None:
    """The record of a shot, scene or episode from its manifest; None when it was never rendered."""
    folder = {"shot": paths.shot, "scene": paths.scene, "episode": paths.episode}[kind](key)
    if not (folder / MANIFEST).exists():
        return None
    manifest = KINDS[kind].load(folder)
    if manifest is None:
        raise RecordError(f"{folder / MANIFEST}: not a {kind} manifest this version can read")
    relative = folder.relative_to(paths.root).as_posix()
    build = {"shot": _shot, "scene": _scene, "episode": _episode}[kind]
    return build(key, relative, manifest, quality)
