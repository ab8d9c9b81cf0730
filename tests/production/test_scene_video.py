"""scene_video's sound through the Dagster graph: espeak in the demo, a line too long for its shot, an
OpenAI-compatible speech server and ACE-Step (the fakes), a failing music service."""

from __future__ import annotations

import re

import numpy as np
import pytest

from anime_pipeline.config import Project
from anime_pipeline.media.pcm import decode
from anime_pipeline.media.speech import EspeakSpeech
from anime_pipeline.media.subtitles import parse_srt
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.scene_audio import NOT_PLACED
from anime_pipeline.production.scene_video import GATES, SceneManifest
from tests.production.audio_runs import EPISODE, edit_show, run_artifact
from tests.services.fake_ace_step import FakeAceStep
from tests.services.fake_speech import FakeSpeechServer

SC01, SC02 = f"{EPISODE}/sc01", f"{EPISODE}/sc02"
LONG_LINE = "Kyu! Follow me past the last lantern."


def _scene(world, key: str) -> SceneManifest:
    return SceneManifest.require(StoragePaths(world.storage).scene(key), key)


def _gates(world, key: str) -> dict:
    ref = Project.load(world.configs).scenes[key]
    return {r.name: r for r in GATES.evaluate(_scene(world, key), ref.config.quality)}


def test_the_demo_scenes_speak_in_a_voice_per_character_over_a_music_bed(produced):
    scene = _scene(produced, SC01)
    dialogue = scene.audio.dialogue
    assert dialogue.embedded and dialogue.backend.startswith("embedded speech: espeak-ng")
    assert dialogue.voices["hoshi"].name == "en+f5" and not dialogue.voices["hoshi"].derived  # the show file's
    assert dialogue.voices["mio"].derived and dialogue.voices["mio"].name != "en+f5"
    assert scene.audio.music.backend == "procedural" and scene.audio.music.embedded and scene.audio.music.seed
    # subtitles are the speech's own times: each cue is its line's start and spoken length
    cues = parse_srt((StoragePaths(produced.storage).scene(SC01) / "scene.srt").read_text())
    assert len(cues) == len(dialogue.lines)
    for cue, line in zip(cues, dialogue.lines, strict=True):  # an SRT time holds whole milliseconds
        assert cue.start == pytest.approx(line.start, abs=0.001)
        assert cue.end - cue.start == pytest.approx(line.duration, abs=0.002)
    samples = decode(StoragePaths(produced.storage).scene(SC01) / "scene.mp4")
    spoken = [np.sqrt(np.mean(samples[round(c.start * 48000):round(c.end * 48000)] ** 2)) for c in cues]
    between = samples[round(cues[1].end * 48000) + 2400:round(cues[2].start * 48000) - 2400]
    assert min(spoken) > 2 * np.sqrt(np.mean(between ** 2)) > 0.01  # lines over a bed that is quieter, not silent
    assert all(g.passed for g in _gates(produced, SC01).values())


def test_a_line_too_long_for_its_shot_fails_dialogue_fits_naming_shot_line_and_durations(produced):
    edit_show(produced, lambda d: d["episodes"][0]["scenes"][0]["shots"][2]["dialogue"][0].update(line=LONG_LINE))
    outcome = run_artifact(produced, "scene_video", SC01)
    assert not outcome.success and f"{SC01}/scene_video.dialogue_fits" in outcome.failed_checks
    fits = _gates(produced, SC01)["dialogue_fits"]
    assert not fits.passed and "\n" not in str(fits.value)
    assert str(fits.value).startswith(f"shot sh03: line 1 (hoshi: {LONG_LINE!r}) lasts ")
    (line,) = [line for line in _scene(produced, SC01).audio.dialogue.lines if line.shot == "sh03"]
    spoken, available = line.duration, line.available
    said = re.search(r"lasts (\d+\.\d\d) s but only (\d+\.\d\d) s", str(fits.value))
    # the message rounds the measured seconds to centiseconds; the manifest keeps them to the millisecond
    assert spoken > available and said
    assert abs(float(said[1]) - spoken) <= 0.0051 and abs(float(said[2]) - available) <= 0.0051
    audible = _gates(produced, SC01)["dialogue_audible"]
    assert not audible.passed and audible.details["summary"] == NOT_PLACED
    assert _scene(produced, SC01).video.audio_codec == "aac"  # made anyway, with its music, to be looked at


def test_openai_tts_speaks_the_scene_with_the_servers_voices(produced):
    def change(d):
        d.setdefault("backends", {}).update(speech="openai_tts", speech_model="kokoro")
        d["characters"][0]["voice"] = {"openai_tts": {"voice": "af_bella", "speed": 1.1}}
    edit_show(produced, change)
    with FakeSpeechServer("kokoro", api_key="tts-s3cret") as server:
        outcome = run_artifact(produced, "scene_video", SC01, speech_urls=(("0", server.url),),
                               speech_api_key="tts-s3cret")
    assert outcome.success, outcome.error or outcome.failed_checks
    dialogue = _scene(produced, SC01).audio.dialogue
    assert dialogue.backend == f"speech server {server.url} (model kokoro, 0)" and not dialogue.embedded
    assert dialogue.voices["mio"].name == "af_bella" and dialogue.voices["hoshi"].name in server.voices
    assert dialogue.voices["hoshi"].derived and dialogue.voices["hoshi"].name != "af_bella"
    sent = [(body["voice"], body["speed"], body["model"]) for body in server.spoken]
    assert sent[0] == ("af_bella", 1.1, "kokoro") and len(sent) == len(dialogue.lines)
    assert all(not line.cached for line in dialogue.lines)
    # the fake speaks 60 ms a character: the subtitles follow the server's speech, not espeak's
    line = dialogue.lines[0]
    assert line.duration == pytest.approx(0.06 * len(line.text), abs=0.05)


def test_ace_step_composes_the_bed_with_a_recorded_seed(produced):
    edit_show(produced, lambda d: d.setdefault("backends", {}).update(music="ace_step"))
    with FakeAceStep(api_key="ace-k3y", queued_polls=1, running_polls=1) as server:
        outcome = run_artifact(produced, "scene_video", SC02, acestep_urls=(("0", server.url),),
                               acestep_api_key="ace-k3y")
        released = server.released
    assert outcome.success, outcome.error or outcome.failed_checks
    music = _scene(produced, SC02).audio.music
    assert music.backend == "ace_step" and not music.embedded and music.fallback_reason is None
    assert released[0]["seed"] == int(music.seed) and released[0]["audio_duration"] == 10.0  # the server's minimum
    assert "hushed, hopeful" in music.prompt and "night atmosphere" in music.prompt
    assert all(g.passed for g in _gates(produced, SC02).values())


def test_a_failing_music_service_fails_the_scene_in_one_line_unless_the_show_allows_the_fallback(produced):
    edit_show(produced, lambda d: d.setdefault("backends", {}).update(music="ace_step"))
    with FakeAceStep(fail_with="CUDA out of memory") as server:
        failed = run_artifact(produced, "scene_video", SC02, acestep_urls=(("0", server.url),))
        edit_show(produced, lambda d: d.setdefault("audio", {}).update(music_fallback=True))
        fallback = run_artifact(produced, "scene_video", SC02, acestep_urls=(("0", server.url),))
    assert not failed.success and "task" in failed.error and "failed: CUDA out of memory" in failed.error
    assert fallback.success, fallback.error or fallback.failed_checks
    music = _scene(produced, SC02).audio.music
    assert music.backend == "procedural" and "ace_step failed: " in music.fallback_reason


def test_openai_tts_without_a_server_names_the_variable(produced):
    edit_show(produced, lambda d: d.setdefault("backends", {}).update(speech="openai_tts"))
    outcome = run_artifact(produced, "scene_video", SC01)
    assert not outcome.success and "ANIME_PIPELINE_SPEECH_URLS is not set" in outcome.error


def test_a_scenes_own_track_is_its_bed(produced):
    from tests.services.fake_ace_step import chord
    from tests.services.fake_speech import wav_bytes

    music = produced.configs / "music"
    music.mkdir()
    (music / "night.wav").write_bytes(wav_bytes(chord(3.0, seed=7), 48_000))  # shorter than the scene: looped
    edit_show(produced, lambda d: d["episodes"][0]["scenes"][1].update(music="night.wav"))
    outcome = run_artifact(produced, "scene_video", SC02)
    assert outcome.success, outcome.error or outcome.failed_checks
    bed = _scene(produced, SC02).audio.music
    assert bed.backend == "file" and bed.label.endswith(": night.wav") and not bed.embedded


def test_a_voice_espeak_does_not_have_fails_the_scene_in_one_line(produced):
    edit_show(produced, lambda d: d["characters"][1].update(voice={"espeak": {"voice": "zz+f3"}}))
    outcome = run_artifact(produced, "scene_video", SC01)
    assert not outcome.success
    assert outcome.error.endswith(f"{SC01} scene_video: {EspeakSpeech().label}: espeak-ng has no voice for language "
                                  "'zz' (voice 'zz+f3')")


def test_a_voice_edit_makes_the_speaking_scenes_stale_and_no_shot_or_character(produced):
    from anime_pipeline.definitions import build_definitions
    from anime_pipeline.status import collect_status

    edit_show(produced, lambda d: d["characters"][1]["voice"]["espeak"].update(pitch=70))
    with produced.instance() as instance:
        stale = {s.key for s in collect_status(instance, build_definitions(produced.settings())) if s.stale}
    # every speaking scene (a derived voice avoids every given one); the episode follows once they change
    assert stale == {f"{SC01}/scene_video", f"{SC02}/scene_video"}
