"""A scene's sound: every line spoken in its character's voice inside its shot, a music bed, the mix.

The scene step (scene_video.py) calls `make_scene_audio` before it joins the shots, lays the mix
under them and reads the loudness back from the scene file; the records here are the audio part
of its manifest and the gates `dialogue_fits`, `loudness` and `dialogue_audible` read them.
Speech is cached by text + voice + backend and music beds by the scene's fingerprint, under the
storage root's `_cache/` (slugs start with a letter or digit, so no show can own that folder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anime_pipeline.config.project import SceneRef
from anime_pipeline.config.schema import LoudnessTarget
from anime_pipeline.manifest import Record
from anime_pipeline.media.dialogue import DialogueTrack, LineRequest, place_dialogue, shot_spans
from anime_pipeline.media.ffmpeg import SAMPLE_RATE
from anime_pipeline.media.loudness import Loudness, loudness_verdict
from anime_pipeline.media.mix import MixResult, mix_scene
from anime_pipeline.media.music import FileMusic, MusicBed, MusicError, MusicRequest, MusicSource, ProceduralMusic
from anime_pipeline.media.pcm import write_wav
from anime_pipeline.media.speech import SpeechCache, SpeechError, Voice, assign_voices
from anime_pipeline.production.gates import Measured
from anime_pipeline.production.step import StepEnv, StepFailed
from anime_pipeline.storage import sha256_json

CACHE = "_cache"
NOT_PLACED = "the dialogue was not placed: it does not fit its shots (see dialogue_fits)"


class VoiceRecord(Record):
    backend: str
    name: str
    pitch: int | None
    rate: int | None
    speed: float | None
    derived: bool  # True when the pipeline chose it (no voice: for this backend in the show file)


class LineRecord(Record):
    shot: str
    index: int
    speaker: str
    text: str
    voice: str
    duration: float  # seconds of real speech (silence trimmed)
    available: float  # seconds of the shot its lines may use
    start: float | None  # on the scene timeline; None when the dialogue did not fit
    cached: bool


class DialogueRecord(Record):
    backend: str
    embedded: bool
    voices: dict[str, VoiceRecord]
    lines: list[LineRecord]
    misfit: str  # empty when every line fits its shot


class MusicRecord(Record):
    backend: str
    label: str
    embedded: bool
    seed: str | None
    prompt: str | None
    arrangement: str | None
    fallback_reason: str | None


class LoudnessRecord(Record):
    integrated_lufs: float
    true_peak_dbtp: float
    range_lu: float
    target_lufs: float
    true_peak_limit_dbtp: float
    tolerance_lu: float
    passed: bool
    message: str


class AudibilityRecord(Record):
    required_db: float
    lines: int  # lines the scene has
    lines_above: int  # lines that stand `required_db` above the music
    worst_margin_db: float | None  # None without dialogue, or without music under it
    message: str


class AudioRecord(Record):
    dialogue: DialogueRecord
    music: MusicRecord
    music_volume: float
    music_fade: float
    premix_lufs: float
    normalization: str
    mix_loudness: LoudnessRecord  # of the mix file, before it is laid under the video
    loudness: LoudnessRecord  # of the scene file: what the gate judges
    audible: AudibilityRecord


@dataclass(frozen=True)
class SceneAudio:
    """The mix (`mix.path`, AAC) and what the scene's manifest and subtitles need from it."""

    mix: MixResult
    track: DialogueTrack | None  # None when the dialogue does not fit
    dialogue: DialogueRecord
    music: MusicRecord
    audible: AudibilityRecord


def loudness_record(measured: Loudness, target: LoudnessTarget, what: str) -> LoudnessRecord:
    verdict = loudness_verdict(measured, target, what)
    return LoudnessRecord(integrated_lufs=measured.integrated_lufs, true_peak_dbtp=measured.true_peak_dbtp,
                          range_lu=measured.range_lu, target_lufs=target.integrated_lufs,
                          true_peak_limit_dbtp=target.true_peak_dbtp, tolerance_lu=target.tolerance_lu,
                          passed=verdict.passed, message=verdict.message)


def _line_requests(ref: SceneRef, voices: dict[str, Voice]) -> list[LineRequest]:
    return [LineRequest(shot.slug, index, line.speaker, ref.config.character(line.speaker).name, line.line,
                        voices[line.speaker])
            for shot in ref.scene.shots for index, line in enumerate(shot.dialogue)]


def _dialogue(ref: SceneRef, env: StepEnv, shot_frames: list[int], fps: int, overlap: int, duration: float,
              out: Path) -> tuple[DialogueTrack | None, DialogueRecord]:
    config = ref.config
    spans = shot_spans([s.slug for s in ref.scene.shots], shot_frames, fps, overlap)
    try:
        with env.open_speech(config) as speech:
            voices = assign_voices(speech, [(c.slug, c.voice) for c in config.characters])
            cache = SpeechCache(speech, env.paths.root / CACHE / "speech")
            requests = _line_requests(ref, voices)
            spoken = [cache.line(r.text, r.voice) for r in requests]  # each line once; placing reads the cache
            placed = place_dialogue(spans, requests, cache, duration, out / "dialogue.wav", config.audio.line_gap)
    except SpeechError as exc:
        raise StepFailed(str(exc)) from exc
    track = placed if isinstance(placed, DialogueTrack) else None
    starts = {(p.request.shot, p.request.index): round(p.start, 3) for p in track.lines} if track else {}
    available = {span.shot: round(span.length, 3) for span in spans}
    lines = [LineRecord(shot=r.shot, index=r.index, speaker=r.speaker, text=r.text, voice=r.voice.name,
                        duration=round(clip.duration, 3), available=available[r.shot],
                        start=starts.get((r.shot, r.index)), cached=clip.cached)
             for r, clip in zip(requests, spoken, strict=True)]
    record = DialogueRecord(backend=speech.label, embedded=speech.embedded, lines=lines,
                            misfit="" if track else placed.message, voices=_voice_records(voices))
    if track is None:
        # The scene is still made, with its music alone, so a person can see and hear what failed.
        write_wav(out / "dialogue.wav", np.zeros(round(duration * SAMPLE_RATE), dtype=np.float32))
    return track, record


def _voice_records(voices: dict[str, Voice]) -> dict[str, VoiceRecord]:
    return {slug: VoiceRecord(backend=v.backend, name=v.name, pitch=v.pitch, rate=v.rate, speed=v.speed,
                              derived=v.derived) for slug, v in voices.items()}


def music_request(ref: SceneRef, duration: float) -> MusicRequest:
    scene = ref.scene
    fingerprint = sha256_json({"scene": ref.key, "mood": scene.mood, "time_of_day": scene.time_of_day,
                               "duration": round(duration, 6), "backend": ref.config.backends.music})[:32]
    return MusicRequest(ref.key, scene.mood, scene.time_of_day, duration, fingerprint, scene.music)


def _music(ref: SceneRef, env: StepEnv, duration: float) -> MusicBed:
    """The scene's own track when it names one, else the show's music backend (procedural, ACE-Step)."""
    cache = env.paths.root / CACHE / "music"
    request = music_request(ref, duration)
    fallback = ProceduralMusic() if ref.config.audio.music_fallback else None
    try:
        if ref.scene.music is not None:
            return MusicSource(FileMusic(env.project.music_dir), cache).bed(request)
        with env.open_music(ref.config) as backend:
            return MusicSource(backend, cache, fallback).bed(request)
    except MusicError as exc:
        raise StepFailed(str(exc)) from exc


def _audibility(mix: MixResult, track: DialogueTrack | None, lines: int, required_db: float) -> AudibilityRecord:
    if track is None:
        return AudibilityRecord(required_db=required_db, lines=lines, lines_above=0, worst_margin_db=None,
                                message=NOT_PLACED)
    verdict = mix.dialogue_gate
    above = sum(s.margin_db >= required_db for s in verdict.segments)
    worst = verdict.worst_margin_db
    return AudibilityRecord(required_db=required_db, lines=lines, lines_above=above,
                            worst_margin_db=round(worst, 2) if math.isfinite(worst) else None,
                            message=verdict.message)


def make_scene_audio(ref: SceneRef, env: StepEnv, shot_frames: list[int], fps: int, overlap: int,
                     out: Path) -> SceneAudio:
    """Speak, place, compose and mix the scene's audio into `out/audio.m4a`, exactly the scene's length."""
    duration = (sum(shot_frames) - overlap * (len(shot_frames) - 1)) / fps
    track, dialogue = _dialogue(ref, env, shot_frames, fps, overlap, duration, out)
    bed = _music(ref, env, duration)
    settings = ref.config.audio
    segments = track.segments if track is not None else ()
    mix = mix_scene(duration, out / "audio.m4a", out / "dialogue.wav", segments, bed.path, settings, f"scene {ref.key}")
    music = MusicRecord(backend=bed.backend, label=bed.label, embedded=bed.embedded, seed=bed.seed, prompt=bed.prompt,
                        arrangement=bed.arrangement, fallback_reason=bed.fallback_reason)
    audible = _audibility(mix, track, len(dialogue.lines), settings.dialogue_margin_db)
    return SceneAudio(mix, track, dialogue, music, audible)


# -- the gates' measures (declared in scene_video.GATES) -------------------------------------------


def dialogue_fits(audio: AudioRecord) -> Measured:
    durations = [{"shot": line.shot, "line": line.index + 1, "seconds": line.duration, "available": line.available}
                 for line in audio.dialogue.lines]
    return Measured(audio.dialogue.misfit or "ok", audio.dialogue.backend, {"lines": durations}, threshold="ok")


def loudness(record: LoudnessRecord, where: str) -> Measured:
    details = {"integrated_lufs": record.integrated_lufs, "true_peak_dbtp": record.true_peak_dbtp,
               "range_lu": record.range_lu, "target_lufs": record.target_lufs,
               "true_peak_limit_dbtp": record.true_peak_limit_dbtp, "summary": record.message}
    return Measured("ok" if record.passed else record.message, f"ffmpeg ebur128 on {where}", details, threshold="ok")


def dialogue_audible(audio: AudioRecord) -> Measured:
    audible = audio.audible
    details = {"required_db": audible.required_db, "worst_margin_db": audible.worst_margin_db,
               "summary": audible.message}
    return Measured(audible.lines_above, "speech stem vs ducked music stem (RMS per line)", details,
                    threshold=audible.lines)
