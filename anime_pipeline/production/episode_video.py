"""episode_video: an episode's scenes concatenated in order (stream copy), a thumbnail from the first frame,
chapters (one per scene)."""

from __future__ import annotations

from pathlib import Path

from anime_pipeline.config.project import EpisodeRef, episode_spec
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.media import MediaError, concat_videos, decode_check, probe, thumbnail
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.scene_video import SceneManifest
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.storage import sha256_json, write_json


class Chapter(Record):
    start: float
    title: str


class EpisodeManifest(Manifest):
    title: str
    number: int
    scenes: list[str]
    scene_durations: list[float]
    expected_duration: float
    duration: float
    frames: int
    fps: int
    chapters: list[Chapter]
    decode_error: str  # empty when the whole file decodes


def _decodes(m: EpisodeManifest, _q) -> Measured:
    return Measured(m.decode_error or "ok", "ffmpeg full decode", threshold="ok")


def _duration(m: EpisodeManifest, _q) -> Measured:
    # within one frame of Σ scenes: the measure is the error, the threshold one frame
    return Measured(round(abs(m.duration - m.expected_duration), 4), "decoded duration vs Σ scenes",
                    {"duration_s": m.duration, "expected_s": m.expected_duration}, threshold=round(1.0 / m.fps, 4))


GATES: GateSet[EpisodeManifest] = GateSet((
    Gate("decodes", "The episode decodes end to end without an error.", _decodes, "equals"),
    Gate("duration", "Duration = the sum of its scenes (within one frame).", _duration, "at_most"),
))


class EpisodeVideo(Step[EpisodeRef, EpisodeManifest]):
    """The episode's scenes in order (stream copy), a thumbnail from the first frame, chapters per scene."""

    artifact = "episode_video"
    level = "episode"
    manifest_type = EpisodeManifest
    gates = GATES

    def folder(self, ref: EpisodeRef, paths: StoragePaths) -> Path:
        return paths.episode(ref.key)

    def upstream(self, ref: EpisodeRef) -> list[Upstream]:
        return [Upstream("scene_video", key) for key in ref.scene_keys]

    def spec(self, ref: EpisodeRef) -> dict:
        return episode_spec(ref)

    def _scenes(self, ref: EpisodeRef, paths: StoragePaths) -> list[SceneManifest]:
        return [SceneManifest.require(paths.scene(k), f"scene_video {k}") for k in ref.scene_keys]

    def fingerprint(self, ref: EpisodeRef, env: StepEnv) -> str:
        return sha256_json({"spec": self.spec(ref), "version": self.version,
                            "scenes": [m.files[0].sha256 for m in self._scenes(ref, env.paths)]})

    def produce(self, ref: EpisodeRef, env: StepEnv, fingerprint: str | None) -> EpisodeManifest:
        self._scenes(ref, env.paths)
        scene_videos = [env.paths.scene(k) / "scene.mp4" for k in ref.scene_keys]
        out_dir = self.folder(ref, env.paths)
        infos = [probe(v) for v in scene_videos]
        video = concat_videos(scene_videos, out_dir / "episode.mp4")
        thumb = thumbnail(video.path, out_dir / "thumbnail.jpg", at=0.0)
        chapters, start = [], 0.0
        for scene, info in zip(ref.episode.scenes, infos, strict=True):
            chapters.append(Chapter(start=round(start, 3), title=scene.title or scene.slug))
            start += info.duration
        write_json(out_dir / "chapters.json", [c.model_dump() for c in chapters])
        try:
            decode_check(video.path)
            decode_error = ""
        except MediaError as exc:
            decode_error = str(exc)
        manifest = EpisodeManifest(
            kind=self.artifact, key=ref.key, backend="ffmpeg (imageio-ffmpeg static build)", device="cpu",
            inputs_fingerprint=fingerprint, title=ref.episode.title, number=ref.episode.number,
            scenes=ref.scene_keys, scene_durations=[i.duration for i in infos],
            expected_duration=round(sum(i.duration for i in infos), 4), duration=video.duration, frames=video.frames,
            fps=ref.config.show.video.fps, chapters=chapters, decode_error=decode_error,
            files=[FileEntry.of(p, out_dir) for p in (video.path, thumb, out_dir / "chapters.json")],
        )
        manifest.write(out_dir)
        return manifest

    def outputs(self, manifest: EpisodeManifest, folder: Path) -> list[Path]:
        return [folder / "episode.mp4"]

    def metadata(self, manifest: EpisodeManifest, folder: Path) -> dict[str, MetadataValue]:
        return {"scenes": len(manifest.scenes), "duration_s": manifest.duration, "frames": manifest.frames,
                "chapters": Table([c.model_dump() for c in manifest.chapters]), "backend": manifest.backend,
                "device": manifest.device, "video": FileLink(folder / "episode.mp4"),
                "preview": Preview(folder / "thumbnail.jpg", "thumbnail")}
