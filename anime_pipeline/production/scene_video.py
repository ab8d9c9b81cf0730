"""scene_video: a scene's shots in order with transitions (0.3 s dissolve / fade / wipe), dialogue as
subtitles, the audio bed, and the scene-level gates: exact duration, continuity across cuts,
subject consistency (each character's identity tracked across the scene, so a character whose
colours or design swap between shots fails it) and each character's identity in every shot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from anime_pipeline.config.project import SceneRef, scene_spec
from anime_pipeline.config.schema import Character
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.media import Cue, assemble_scene, mix_audio, read_frames, thumbnail, write_srt
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.suite import Anchor, Appearance
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.shot_clip import ShotManifest, frame_paths
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.storage import sha256_file, sha256_json

OVERLAP_SECONDS = 0.3  # SPEC §7 crossfade
MUSIC_VOLUME = 0.3
POSTER = "poster.jpg"
SUBJECT_FRAME_STEP = 2  # every other frame: half the cost; pairs are then 2 frames apart


class VideoInfo(Record):
    frames: int
    duration: float
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None


class CueRecord(Record):
    start: float
    end: float
    text: str


class Measure(Record):
    score: float
    backend: str


class Continuity(Measure):
    boundaries: list[float]


class SubjectConsistency(Measure):
    frame_step: int
    transition_frames_skipped: int  # a transition's frames blend two shots: no one looks like themselves there
    per_character: dict[str, float]
    fallback_reason: str | None


class CastIdentity(Measure):
    per_character: dict[str, float]
    per_shot: dict[str, dict[str, float]]
    rule: RuleRecord | None  # None: no shot has characters


class AudioRecord(Record):
    dialogue: str
    music: str | None
    music_volume: float


class SceneManifest(Manifest):
    shots: list[str]
    shot_frames: list[int]
    transitions: list[str]
    overlap_frames: int
    fps: int
    expected_frames: int
    video: VideoInfo
    audio: AudioRecord
    subtitles: list[CueRecord]
    continuity: Continuity
    subject_consistency: SubjectConsistency
    cast_identity: CastIdentity


def _duration(m: SceneManifest, _q) -> Measured:
    return Measured(m.video.frames, "decoded frame count", {"duration_s": m.video.duration}, threshold=m.expected_frames)


def _audio(m: SceneManifest, _q) -> Measured:
    return Measured(m.video.audio_codec or "none", "ffmpeg probe", threshold="aac")


def _continuity(m: SceneManifest, _q) -> Measured:
    return Measured(m.continuity.score, m.continuity.backend, {"boundaries": m.continuity.boundaries})


def _subject(m: SceneManifest, _q) -> Measured:
    return Measured(m.subject_consistency.score, m.subject_consistency.backend,
                    {"per_character": m.subject_consistency.per_character})


def _cast(m: SceneManifest, q) -> Measured:
    cast = m.cast_identity
    details = {"per_character": cast.per_character, "per_shot": cast.per_shot}
    if cast.rule is None:
        return Measured(cast.score, cast.backend, details, threshold=1.0)
    return Measured(cast.score, cast.backend, {**details, "rule": cast.rule.source}, threshold=cast.rule.threshold(q))


GATES: GateSet[SceneManifest] = GateSet((
    Gate("duration_exact", "Frames = Σ shot frames − transition overlaps.", _duration, "equals"),
    Gate("audio_present", "The scene has an AAC audio track.", _audio, "equals"),
    Gate("scene_continuity", "Continuity across shot boundaries ≥ threshold.", _continuity, "at_least",
         "scene_continuity"),
    Gate("subject_consistency", "Phase 3: VBench subject consistency of each character's identity across the "
         "scene ≥ threshold.", _subject, "at_least", "subject_consistency"),
    Gate("cast_identity", "Phase 3 multi-character: every character is itself in every shot (similarity ≥ the "
         "identity backend's threshold, quality.identity.<backend>).", _cast, "at_least", "identity"),
))


def overlap_frames(fps: int) -> int:
    return round(OVERLAP_SECONDS * fps)


def dialogue_cues(ref: SceneRef, shot_frames: list[int], fps: int) -> list[Cue]:
    """Each shot's lines share its on-screen time (after the incoming transition), in order."""
    k = overlap_frames(fps)
    cues, start_frame = [], 0
    for index, (shot, frames) in enumerate(zip(ref.scene.shots, shot_frames, strict=True)):
        visible_start = start_frame + (k if index else 0)
        visible_end = start_frame + frames - (k if index < len(shot_frames) - 1 else 0)
        span = (visible_end - visible_start) / max(1, len(shot.dialogue))
        for i, line in enumerate(shot.dialogue):
            begin = (visible_start + i * span) / fps
            cues.append(Cue(round(begin, 3), round(begin + span / fps, 3),
                            f"{ref.config.character(line.speaker).name}: {line.line}"))
        start_frame += frames - k
    return cues


def continuity(shot_dirs: list[Path]) -> Continuity:
    """Scene continuity across every cut, from each shot's saved last and first frames."""
    frames = [frame_paths(d) for d in shot_dirs]
    score = weightfree.scene_continuity([load_png(f[-1]) for f in frames[:-1]], [load_png(f[0]) for f in frames[1:]])
    return Continuity(score=round(score.value, 4), backend=score.backend,
                      boundaries=[round(v, 4) for v in score.per_frame])


def cast_identity(ref: SceneRef, shots: dict[str, ShotManifest]) -> CastIdentity:
    """Per character, the lowest identity any of its shots measured (each shot's own gate value),
    judged by the one rule every shot's identity was judged by."""
    per_character: dict[str, float] = {}
    for manifest in shots.values():
        for slug, value in manifest.scores.identity.per_character.items():
            per_character[slug] = min(value, per_character.get(slug, 1.0))
    measured = [m.scores.identity for m in shots.values() if m.scores.identity.per_character]
    rules = {m.rule for m in measured}
    if len(rules) > 1:
        raise ValueError(f"scene {ref.key}: its shots' identity was judged by different rules "
                         f"({', '.join(sorted(r.backend for r in rules))}); re-render the shots with one renderer "
                         f"and the same installed identity models")
    return CastIdentity(score=min(per_character.values(), default=1.0),
                        backend=", ".join(sorted({m.backend for m in measured})) or "no characters",
                        per_character=per_character, per_shot={k: m.scores.identity.per_character
                                                               for k, m in shots.items()},
                        rule=rules.pop() if rules else None)


def transition_frames(shot_frames: Sequence[int], overlap: int) -> set[int]:
    """The scene frames inside a transition: the first `overlap` frames of every shot but the first."""
    blended, start = set(), 0
    for index, frames in enumerate(shot_frames):
        if index:
            blended.update(range(start, start + overlap))
        start += frames - overlap
    return blended


def scene_characters(ref: SceneRef, paths: StoragePaths) -> dict[str, Appearance]:
    """Every character of the scene's shots: its anchors and the key colours that find it in frames."""
    slugs = sorted({slug for shot in ref.scene.shots for slug in shot.characters})
    show = ref.config.show.slug
    return {slug: _appearance(ref.config.character(slug), load_anchor(paths.embedding(f"{show}/{slug}")))
            for slug in slugs}


def _appearance(character: Character, anchor: Anchor) -> Appearance:
    colors = character.appearance.key_colors
    return Appearance(anchor, colors.skin, colors.eyes)


class SceneVideo(Step[SceneRef, SceneManifest]):
    """The scene's shots in order with 0.3 s transitions (dissolve / fade / wipe), dialogue as subtitles,
    an audio bed (the scene's music at 30 %), scored across its cuts."""

    artifact = "scene_video"
    level = "scene"
    manifest_type = SceneManifest
    gates = GATES
    version = "2"  # issue 10: the calibrated gate measures, identity judged per backend
    device = "metrics"

    def folder(self, ref: SceneRef, paths: StoragePaths) -> Path:
        return paths.scene(ref.key)

    def upstream(self, ref: SceneRef) -> list[Upstream]:
        show = ref.config.show.slug
        characters = sorted({slug for shot in ref.scene.shots for slug in shot.characters})
        return ([Upstream("shot_clip", key) for key in ref.shot_keys]
                + [Upstream("character_embedding", f"{show}/{slug}") for slug in characters])

    def spec(self, ref: SceneRef) -> dict:
        return scene_spec(ref)

    def _shots(self, ref: SceneRef, paths: StoragePaths) -> dict[str, ShotManifest]:
        return {k: ShotManifest.require(paths.shot(k), f"shot_clip {k}") for k in ref.shot_keys}

    def _music(self, ref: SceneRef, env: StepEnv) -> Path | None:
        music = env.project.music_file(ref.scene)
        if music is None:
            return None
        if not music.exists():
            raise FileNotFoundError(f"scene {ref.key}: music file {music} (scenes[].music) does not exist")
        return music

    def fingerprint(self, ref: SceneRef, env: StepEnv) -> str:
        shots = self._shots(ref, env.paths)
        music = self._music(ref, env)
        return sha256_json({"spec": self.spec(ref), "version": self.version,
                            "clips": [m.files[0].sha256 for m in shots.values()],
                            "shot_gates": [m.scores.model_dump() for m in shots.values()],
                            "anchors": {slug: look.anchor.as_lists()
                                        for slug, look in scene_characters(ref, env.paths).items()},
                            "metrics": dict(env.metric_backends), "music": sha256_file(music) if music else None})

    def produce(self, ref: SceneRef, env: StepEnv, fingerprint: str | None) -> SceneManifest:
        shots = self._shots(ref, env.paths)
        shot_dirs = [env.paths.shot(k) for k in ref.shot_keys]
        music = self._music(ref, env)
        out_dir = self.folder(ref, env.paths)
        fps = ref.config.show.video.fps
        shot_frames = [m.frames for m in shots.values()]
        k = overlap_frames(fps)
        expected = sum(shot_frames) - k * (len(shot_frames) - 1)
        audio = mix_audio(expected / fps, out_dir / "audio.m4a", music=music)
        transitions = [shot.transition for shot in ref.scene.shots[1:]]
        video = assemble_scene([d / "clip.mp4" for d in shot_dirs], transitions, out_dir / "scene.mp4", fps,
                               overlap=OVERLAP_SECONDS, audio=audio)
        cues = dialogue_cues(ref, shot_frames, fps)
        srt_path = write_srt(cues, out_dir / "scene.srt")
        thumbnail(video.path, out_dir / POSTER, at=0.0)
        blended = transition_frames(shot_frames, k)
        frames = [frame for index, frame in enumerate(read_frames(video.path)) if index not in blended]
        backend = show_identity_backend(env.metrics, ref.config, next(iter(shots.values())).backend)
        subject = env.metrics.tracked_subject_consistency(frames[::SUBJECT_FRAME_STEP],
                                                          scene_characters(ref, env.paths), backend)
        manifest = SceneManifest(
            kind=self.artifact, key=ref.key, backend="ffmpeg (imageio-ffmpeg static build)", device="cpu",
            inputs_fingerprint=fingerprint, shots=ref.shot_keys, shot_frames=shot_frames, transitions=transitions,
            overlap_frames=k, fps=fps, expected_frames=expected,
            video=VideoInfo(frames=video.frames, duration=video.duration, video_codec=video.video_codec,
                            audio_codec=video.audio_codec, width=video.width, height=video.height),
            audio=AudioRecord(dialogue="none configured (silence)", music=str(music) if music else None,
                              music_volume=MUSIC_VOLUME),
            subtitles=[CueRecord(start=c.start, end=c.end, text=c.text) for c in cues],
            continuity=continuity(shot_dirs),
            subject_consistency=SubjectConsistency(
                score=round(subject.value, 4), backend=subject.backend, frame_step=SUBJECT_FRAME_STEP,
                transition_frames_skipped=len(blended),
                per_character={slug: round(v, 4) for slug, v in subject.details.get("per_character", {}).items()},
                fallback_reason=env.metrics.unavailable.get("subject_consistency")),
            cast_identity=cast_identity(ref, shots),
            files=[FileEntry.of(out_dir / "scene.mp4", out_dir), FileEntry.of(srt_path, out_dir)],
        )
        manifest.write(out_dir)
        return manifest

    def metadata(self, manifest: SceneManifest, folder: Path) -> dict[str, MetadataValue]:
        return {"shots": len(manifest.shots), "frames": manifest.video.frames, "duration_s": manifest.video.duration,
                "transitions": ", ".join(manifest.transitions) or "none", "subtitle_cues": len(manifest.subtitles),
                "audio": manifest.video.audio_codec or "none", "continuity": manifest.continuity.score,
                "backend": manifest.backend, "device": manifest.device, "video": FileLink(folder / "scene.mp4"),
                "cast_identity": Table(manifest.cast_identity.per_character),
                "preview": Preview(folder / POSTER, "first frame")}
