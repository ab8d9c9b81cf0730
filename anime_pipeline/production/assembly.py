"""Scene and episode assembly: transitions, subtitles, audio bed, concatenation, thumbnail, chapters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anime_pipeline.config.project import EpisodeRef, SceneRef
from anime_pipeline.manifest import base_manifest, file_entry, read_manifest, write_manifest
from anime_pipeline.imaging import load_png
from anime_pipeline.media import (Cue, MediaInfo, assemble_scene, concat_videos, mix_audio, probe, read_frames,
                                  thumbnail, write_srt)
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.suite import MetricSuite
from anime_pipeline.storage import outputs, write_json

OVERLAP_SECONDS = 0.3  # SPEC §7 crossfade


@dataclass(frozen=True)
class SceneResult:
    video: MediaInfo
    srt_path: Path
    expected_frames: int
    continuity: float
    manifest: dict[str, Any]


def overlap_frames(fps: int) -> int:
    return round(OVERLAP_SECONDS * fps)


def dialogue_cues(ref: SceneRef, shot_frames: list[int], fps: int) -> list[Cue]:
    """Each shot's lines share its on-screen time (after the incoming transition), in order."""
    k = overlap_frames(fps)
    cues, start_frame = [], 0
    for index, (shot, frames) in enumerate(zip(ref.scene.shots, shot_frames, strict=True)):
        visible_start = start_frame + (k if index else 0)
        visible_end = start_frame + frames - (k if index < len(shot_frames) - 1 else 0)
        lines = shot.dialogue
        span = (visible_end - visible_start) / max(1, len(lines))
        for i, line in enumerate(lines):
            name = ref.config.character(line.speaker).name
            begin = (visible_start + i * span) / fps
            cues.append(Cue(round(begin, 3), round(begin + span / fps, 3), f"{name}: {line.line}"))
        start_frame += frames - k
    return cues


def continuity(shot_dirs: list[Path]):
    """Scene continuity across every cut, from each shot's saved last and first frames."""
    frames = [outputs(d / "frames", "*.png") for d in shot_dirs]
    return weightfree.scene_continuity([load_png(f[-1]) for f in frames[:-1]], [load_png(f[0]) for f in frames[1:]])


def cast_identity(shot_keys: list[str], shot_manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """Multi-character identity over the scene: per character, the lowest identity any of its shots
    measured (each shot's own gate value: the minimum over its frames)."""
    per_shot = {key: m["metrics"] for key, m in zip(shot_keys, shot_manifests, strict=True)}
    per_character: dict[str, float] = {}
    for metrics in per_shot.values():
        for slug, value in metrics["identity"].items():
            per_character[slug] = min(value, per_character.get(slug, 1.0))
    backends = sorted({m["backends"]["identity"] for m in per_shot.values() if "identity" in m["backends"]})
    return {"per_character": per_character, "per_shot": {k: m["identity"] for k, m in per_shot.items()},
            "score": min(per_character.values(), default=1.0), "backend": ", ".join(backends) or "no characters"}


def assemble_scene_video(ref: SceneRef, shot_dirs: list[Path], out_dir: Path, music: Path | None, suite: MetricSuite,
                         extra_manifest: dict[str, Any] | None = None) -> SceneResult:
    fps = ref.config.show.video.fps
    shot_manifests = [read_manifest(d) for d in shot_dirs]
    shot_frames = [int(m["frames"]) for m in shot_manifests]
    k = overlap_frames(fps)
    expected = sum(shot_frames) - k * (len(shot_frames) - 1)
    duration = expected / fps
    audio = mix_audio(duration, out_dir / "audio.m4a", music=music)
    transitions = [shot.transition for shot in ref.scene.shots[1:]]
    video = assemble_scene([d / "clip.mp4" for d in shot_dirs], transitions, out_dir / "scene.mp4", fps,
                           overlap=OVERLAP_SECONDS, audio=audio)
    cues = dialogue_cues(ref, shot_frames, fps)
    srt_path = write_srt(cues, out_dir / "scene.srt")
    across_cuts = continuity(shot_dirs)
    # Every other frame: half the cost; pairs are then 2 frames apart (documented in the manifest).
    subject = suite.subject_consistency(list(read_frames(video.path)[::2]))
    manifest = base_manifest(
        "scene_video", ref.key, "ffmpeg (imageio-ffmpeg static build)", "cpu",
        shots=ref.shot_keys, shot_frames=shot_frames, transitions=transitions, overlap_frames=k, fps=fps,
        expected_frames=expected,
        video={"frames": video.frames, "duration": video.duration, "video_codec": video.video_codec,
               "audio_codec": video.audio_codec, "width": video.width, "height": video.height},
        audio={"dialogue": "none configured (silence)", "music": str(music) if music else None, "music_volume": 0.3},
        subtitles=[{"start": c.start, "end": c.end, "text": c.text} for c in cues],
        continuity={"backend": across_cuts.backend, "boundaries": [round(v, 4) for v in across_cuts.per_frame],
                    "score": round(across_cuts.value, 4)},
        subject_consistency={"score": round(subject.value, 4), "backend": subject.backend, "frame_step": 2,
                             "fallback_reason": suite.unavailable.get("subject_consistency")},
        cast_identity=cast_identity(ref.shot_keys, shot_manifests),
        files=[file_entry(out_dir / "scene.mp4", out_dir), file_entry(srt_path, out_dir)], **(extra_manifest or {}),
    )
    write_manifest(out_dir, manifest)
    return SceneResult(video, srt_path, expected, round(across_cuts.value, 4), manifest)


@dataclass(frozen=True)
class EpisodeResult:
    video: MediaInfo
    thumbnail_path: Path
    expected_duration: float
    chapters: list[dict[str, Any]]
    manifest: dict[str, Any]


def assemble_episode_video(ref: EpisodeRef, scene_dirs: list[Path], out_dir: Path,
                           extra_manifest: dict[str, Any] | None = None) -> EpisodeResult:
    scene_infos = [probe(d / "scene.mp4") for d in scene_dirs]
    video = concat_videos([d / "scene.mp4" for d in scene_dirs], out_dir / "episode.mp4")
    thumb = thumbnail(video.path, out_dir / "thumbnail.jpg", at=0.0)
    chapters, start = [], 0.0
    for scene, info in zip(ref.episode.scenes, scene_infos, strict=True):
        chapters.append({"start": round(start, 3), "title": scene.title or scene.slug})
        start += info.duration
    write_json(out_dir / "chapters.json", chapters)
    expected = float(np.sum([i.duration for i in scene_infos]))
    manifest = base_manifest(
        "episode_video", ref.key, "ffmpeg (imageio-ffmpeg static build)", "cpu",
        title=ref.episode.title, number=ref.episode.number, scenes=ref.scene_keys,
        scene_durations=[i.duration for i in scene_infos], expected_duration=expected, duration=video.duration,
        frames=video.frames, chapters=chapters,
        files=[file_entry(video.path, out_dir), file_entry(thumb, out_dir), file_entry(out_dir / "chapters.json", out_dir)],
        **(extra_manifest or {}),
    )
    write_manifest(out_dir, manifest)
    return EpisodeResult(video, thumb, expected, chapters, manifest)
