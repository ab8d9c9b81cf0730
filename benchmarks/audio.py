"""Audio and episode assembly speed: embedded speech, the scene mix, the stream-copied episode.

    .venv/bin/python benchmarks/audio.py [--repeat 3]

- speech: seconds of compute per second of dialogue, espeak-ng (embedded) through the speech
  cache with nothing cached (a fresh process per line, decode to 48 kHz, trim, WAV);
- mix: a 60 s scene (a line every 4 s over a procedural bed): the three-pass mix with ducking,
  normalisation and the final ebur128 measurement, as × realtime; the bed's synthesis is timed
  on its own;
- episode: four 30 s 640×360 scenes joined by stream copy with chapters and soft subtitles,
  including the read-back checks, as × realtime.
Medians of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from anime_pipeline.media.audio_config import Audio
from anime_pipeline.media.container import assemble_episode, chapters_for, shift_cues
from anime_pipeline.media.dialogue import LineRequest, ShotSpan, place_dialogue
from anime_pipeline.media.ffmpeg import SAMPLE_RATE, probe, run_ffmpeg
from anime_pipeline.media.mix import mix_scene
from anime_pipeline.media.music import MusicRequest, MusicSource, ProceduralMusic
from anime_pipeline.media.speech import EspeakSpeech, SpeechCache, assign_voices
from anime_pipeline.media.subtitles import Cue

LINES = ["Last bag of the night, Hoshi.", "This address is ten years old.", "Kyu!", "Lead the way. I'll keep up.",
         "The lanterns are brighter up here.", "Someone is still waiting for this letter.",
         "Do you hear that?", "We should go back before the rain."]
SCENE_SECONDS = 60.0
EPISODE_SCENES, EPISODE_SCENE_SECONDS = 4, 30.0


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def speech(work: Path) -> tuple[float, float]:
    """(compute seconds per second of dialogue, seconds of dialogue spoken)."""
    backend = EspeakSpeech()
    voices = list(assign_voices(backend, [("mio", None), ("hoshi", None)]).values())
    cache = SpeechCache(backend, work)
    elapsed, clips = timed(lambda: [cache.line(text, voices[i % 2]) for i, text in enumerate(LINES)])
    spoken = sum(clip.duration for clip in clips)
    return elapsed / spoken, spoken


def scene_parts(work: Path) -> tuple[object, Path, float]:
    backend = EspeakSpeech()
    voices = list(assign_voices(backend, [("mio", None), ("hoshi", None)]).values())
    cache = SpeechCache(backend, work / "speech")
    spans = [ShotSpan(f"sh{i:02d}", 4.0 * i, 4.0 * i + 4.0) for i in range(int(SCENE_SECONDS // 4))]
    lines = [LineRequest(span.shot, 0, "mio", "Mio", LINES[i % len(LINES)], voices[i % 2])
             for i, span in enumerate(spans)]
    track = place_dialogue(spans, lines, cache, SCENE_SECONDS, work / "dialogue.wav")
    request = MusicRequest("bench", "cosy, curious", "dusk", SCENE_SECONDS, "bench")
    bed_seconds, bed = timed(lambda: MusicSource(ProceduralMusic(), work / "music").bed(request))
    return track, bed.path, bed_seconds


def mix(work: Path, track, bed: Path) -> float:
    elapsed, result = timed(lambda: mix_scene(SCENE_SECONDS, work / "mix.m4a", track.path, track.segments, bed,
                                              Audio(), "bench"))
    assert result.loudness_gate.passed and result.dialogue_gate.passed, result.loudness_gate.message
    return SCENE_SECONDS / elapsed


def episode_scenes(work: Path) -> list[Path]:
    scenes = []
    for index in range(EPISODE_SCENES):
        out = work / f"scene{index}.mp4"
        source = f"testsrc2=s=640x360:r=24:d={EPISODE_SCENE_SECONDS}"
        tone = f"sine=f={220 + 40 * index}:sample_rate={SAMPLE_RATE}:d={EPISODE_SCENE_SECONDS}"
        run_ffmpeg(["-f", "lavfi", "-i", source, "-f", "lavfi", "-i", tone, "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-y", str(out)],
                   out, "benchmark scene")
        scenes.append(out)
    return scenes


def episode(work: Path, scenes: list[Path]) -> float:
    durations = [probe(s).duration for s in scenes]
    chapters = chapters_for([f"Scene {i + 1}" for i in range(len(scenes))], durations)
    cues = shift_cues([[Cue(1.0, 3.0, "Mio: Hello."), Cue(5.0, 6.5, "Hoshi: Kyu!")]] * len(scenes), durations)
    elapsed, result = timed(lambda: assemble_episode(scenes, work / "episode.mp4", chapters, cues, "Bench"))
    return result.info.duration / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    runs = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as folder:
        work = Path(folder)
        speech_runs = [speech(work / f"speech{i}") for i in range(runs)]
        track, bed, bed_seconds = scene_parts(work)
        mixes = [mix(work, track, bed) for _ in range(runs)]
        scenes = episode_scenes(work)
        episodes = [episode(work, scenes) for _ in range(runs)]
    per_second = [r[0] for r in speech_runs]
    print(f"speech (espeak, embedded): {statistics.median(per_second):.3f} s per second of dialogue "
          f"({speech_runs[0][1]:.1f} s of dialogue, {len(LINES)} lines; runs {np.round(per_second, 3).tolist()})")
    print(f"procedural bed: {bed_seconds:.2f} s for {SCENE_SECONDS:g} s ({SCENE_SECONDS / bed_seconds:.0f}x realtime)")
    print(f"scene mix ({SCENE_SECONDS:g} s): {statistics.median(mixes):.1f}x realtime, "
          f"{60 / statistics.median(mixes):.2f} s per minute of scene (runs {np.round(mixes, 1).tolist()})")
    print(f"episode assembly (stream copy, {EPISODE_SCENES}x{EPISODE_SCENE_SECONDS:g} s, chapters + subtitles): "
          f"{statistics.median(episodes):.0f}x realtime (runs {np.round(episodes, 0).tolist()})")


if __name__ == "__main__":
    main()
