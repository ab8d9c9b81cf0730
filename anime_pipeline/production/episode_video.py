"""episode_video: an episode's scenes joined in order by stream copy (media/container.py: audio packets
laid on the episode timeline), chapters (one per scene) and the subtitles as a soft track in the MP4
(and beside it as episode.srt), a thumbnail from the first frame; gates: it decodes, it lasts the sum
of its scenes, its loudness is on target."""

from __future__ import annotations

from pathlib import Path

from anime_pipeline.config.project import EpisodeRef, episode_spec
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.media import Cue, MediaError, decode_check, thumbnail, write_srt
from anime_pipeline.media.container import assemble_episode, chapters_for, shift_cues
from anime_pipeline.media.loudness import measure
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production import scene_audio
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.scene_audio import LoudnessRecord, loudness_record
from anime_pipeline.production.scene_video import SceneManifest
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.storage import sha256_json, write_json


class Chapter(Record):
    start: float
    end: float
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
    chapters: list[Chapter]  # as read back from the container
    subtitle_cues: int  # in the soft subtitle track, as read back
    sync_error: float  # seconds: the worst distance of a scene's audio start from its video start
    loudness: LoudnessRecord
    decode_error: str  # empty when the whole file decodes


def _decodes(m: EpisodeManifest, _q) -> Measured:
    return Measured(m.decode_error or "ok", "ffmpeg full decode", threshold="ok")


def _duration(m: EpisodeManifest, _q) -> Measured:
    # within one frame of Σ scenes: the measure is the error, the threshold one frame
    return Measured(round(abs(m.duration - m.expected_duration), 4), "decoded duration vs Σ scenes",
                    {"duration_s": m.duration, "expected_s": m.expected_duration}, threshold=round(1.0 / m.fps, 4))


def _loudness(m: EpisodeManifest, _q) -> Measured:
    return scene_audio.loudness(m.loudness, "episode.mp4")


GATES: GateSet[EpisodeManifest] = GateSet((
    Gate("decodes", "The episode decodes end to end without an error.", _decodes, "equals"),
    Gate("duration", "Duration = the sum of its scenes (within one frame).", _duration, "at_most"),
    Gate("loudness", "The episode's integrated loudness is within the tolerance of audio.loudness's target and its "
         "true peak at or below the limit (ffmpeg ebur128).", _loudness, "equals"),
))


class EpisodeVideo(Step[EpisodeRef, EpisodeManifest]):
    """The episode's scenes in order (stream copy) with chapters and soft subtitles in the MP4, a thumbnail
    from the first frame; its loudness measured on the file."""

    artifact = "episode_video"
    level = "episode"
    manifest_type = EpisodeManifest
    gates = GATES
    version = "2"

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
        scenes = self._scenes(ref, env.paths)
        out_dir = self.folder(ref, env.paths)
        durations = [m.video.frames / m.fps for m in scenes]
        cues = shift_cues([[Cue(c.start, c.end, c.text) for c in m.subtitles] for m in scenes], durations)
        chapters = chapters_for([scene.title or scene.slug for scene in ref.episode.scenes], durations)
        joined = assemble_episode([env.paths.scene(k) / "scene.mp4" for k in ref.scene_keys], out_dir / "episode.mp4",
                                  chapters, cues, ref.episode.title)
        video = joined.info
        thumb = thumbnail(video.path, out_dir / "thumbnail.jpg", at=0.0)
        srt = write_srt(cues, out_dir / "episode.srt")
        written = [Chapter(start=round(c.start, 3), end=round(c.end, 3), title=c.title) for c in joined.chapters]
        write_json(out_dir / "chapters.json", [c.model_dump() for c in written])
        try:
            decode_check(video.path)
            decode_error = ""
        except MediaError as exc:
            decode_error = str(exc)
        loudness = loudness_record(measure(video.path), ref.config.audio.loudness, f"episode {ref.key}")
        manifest = EpisodeManifest(
            kind=self.artifact, key=ref.key, backend="ffmpeg (imageio-ffmpeg static build; stream copy)",
            device="cpu", inputs_fingerprint=fingerprint, title=ref.episode.title, number=ref.episode.number,
            scenes=ref.scene_keys, scene_durations=[round(d, 4) for d in durations],
            expected_duration=round(sum(durations), 4), duration=video.duration, frames=video.frames,
            fps=ref.config.show.video.fps, chapters=written, subtitle_cues=joined.subtitles,
            sync_error=round(joined.sync_error, 4), loudness=loudness, decode_error=decode_error,
            files=[FileEntry.of(p, out_dir) for p in (video.path, thumb, srt, out_dir / "chapters.json")],
        )
        manifest.write(out_dir)
        return manifest

    def outputs(self, manifest: EpisodeManifest, folder: Path) -> list[Path]:
        return [folder / "episode.mp4"]

    def metadata(self, manifest: EpisodeManifest, folder: Path) -> dict[str, MetadataValue]:
        return {"scenes": len(manifest.scenes), "duration_s": manifest.duration, "frames": manifest.frames,
                "chapters": Table([c.model_dump() for c in manifest.chapters]), "subtitle_cues": manifest.subtitle_cues,
                "loudness_lufs": manifest.loudness.integrated_lufs, "true_peak_dbtp": manifest.loudness.true_peak_dbtp,
                "sync_error_ms": round(manifest.sync_error * 1000, 1), "backend": manifest.backend,
                "device": manifest.device, "video": FileLink(folder / "episode.mp4"),
                "preview": Preview(folder / "thumbnail.jpg", "thumbnail")}
