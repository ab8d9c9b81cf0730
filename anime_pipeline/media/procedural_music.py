"""The embedded music bed: a deterministic pad and chord progression from a scene's mood and time of day.

Not a test tone: a warm pad (band-limited saw voices, detuned and panned, with slow swells
and a low-pass whose brightness follows the time of day), a soft bass note per chord and a
quiet bell arpeggio, over a progression and tempo picked from the mood, with a touch of
echo. Same inputs, same samples: the seed comes from the caller's fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from anime_pipeline.media.ffmpeg import SAMPLE_RATE

TABLE_SIZE = 4096
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PEAK = 10 ** (-6 / 20)  # the bed's peak, dBFS: headroom for the mix


@dataclass(frozen=True)
class Feel:
    name: str
    scale: tuple[int, ...]
    tempo: float  # beats per minute; a chord lasts one 4-beat bar
    progressions: tuple[tuple[int, ...], ...]  # scale degrees, from 0
    sevenths: bool
    words: tuple[str, ...]


FEELS = (
    Feel("bright", MAJOR, 96, ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4)), False,
         ("happy", "cheer", "bright", "playful", "joy", "upbeat", "fun", "excit", "festive", "lively")),
    Feel("calm", MAJOR, 70, ((0, 3, 5, 4), (0, 5, 3, 4), (3, 4, 2, 5)), True,
         ("calm", "peace", "seren", "cos", "coz", "gentle", "warm", "quiet", "hush", "tender", "soft", "relax")),
    Feel("hopeful", MAJOR, 84, ((3, 4, 2, 5), (0, 4, 5, 3), (5, 3, 0, 4)), False,
         ("hope", "determin", "hero", "epic", "triumph", "brave", "resolve", "uplift")),
    Feel("sad", MINOR, 62, ((0, 5, 2, 6), (0, 3, 6, 2), (5, 3, 0, 4)), True,
         ("sad", "melanchol", "lonel", "nostalg", "bittersweet", "wistful", "grief", "sorrow", "loss")),
    Feel("tense", MINOR, 74, ((0, 5, 3, 4), (0, 1, 0, 6), (0, 6, 5, 4)), False,
         ("tense", "suspens", "omin", "dark", "scar", "eerie", "danger", "threat", "dread", "urgent")),
    Feel("mysterious", DORIAN, 76, ((0, 3, 0, 6), (0, 6, 3, 0), (0, 2, 3, 6)), True,
         ("myster", "curious", "strange", "dream", "magic", "wonder", "odd", "secret", "myth")),
)
DEFAULT_FEEL = FEELS[1]


@dataclass(frozen=True)
class Light:
    """The time of day sets the key's register and the pad's brightness."""

    name: str
    tonic: int  # MIDI note of the pad's tonic
    cutoff: float  # pad low-pass, Hz
    words: tuple[str, ...]


LIGHTS = (
    Light("morning", 62, 4200, ("dawn", "morning", "sunrise", "early")),
    Light("day", 60, 3600, ("day", "noon", "afternoon", "midday")),
    Light("evening", 57, 2400, ("dusk", "evening", "sunset", "twilight")),
    Light("night", 53, 1500, ("night", "midnight", "late", "dark")),
)
DEFAULT_LIGHT = Light("neutral", 58, 3000, ())


@dataclass(frozen=True)
class Arrangement:
    """What was played: recorded in the bed's metadata."""

    feel: str
    light: str
    tempo: float
    key: str
    chords: tuple[str, ...]
    seed: int


NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _match(text: str, options, default):
    words = re.findall(r"[a-z]+", text.lower())
    for word in words:  # the first word that names a feel wins: "cosy, curious" is cosy first
        for option in options:
            if any(word.startswith(stem) for stem in option.words):
                return option
    return default


def arrangement(mood: str, time_of_day: str, fingerprint: str) -> tuple[Arrangement, Feel, Light]:
    feel, light = _match(mood, FEELS, DEFAULT_FEEL), _match(time_of_day, LIGHTS, DEFAULT_LIGHT)
    seed = int.from_bytes(hashlib.sha256(f"procedural|{fingerprint}".encode()).digest()[:4], "big")
    progression = feel.progressions[seed % len(feel.progressions)]
    tonic = light.tonic + (seed >> 8) % 3 - 1  # a semitone either way, so two scenes seldom share a key
    chords = tuple(_chord_name(tonic, feel, degree) for degree in progression)
    mode = "minor" if feel.scale[2] == 3 else "major"
    key = f"{NOTE_NAMES[tonic % 12]} {mode}" + (" (dorian)" if feel.scale is DORIAN else "")
    return Arrangement(feel.name, light.name, feel.tempo, key, chords, seed), feel, light


def _chord(tonic: int, feel: Feel, degree: int) -> list[int]:
    """Stacked thirds on `degree` of the scale, as MIDI notes (a seventh when the feel asks)."""
    steps = (0, 2, 4, 6) if feel.sevenths else (0, 2, 4)
    notes = []
    for step in steps:
        position = degree + step
        notes.append(tonic + feel.scale[position % 7] + 12 * (position // 7))
    return notes


def _chord_name(tonic: int, feel: Feel, degree: int) -> str:
    notes = _chord(tonic, feel, degree)
    third = notes[1] - notes[0]
    fifth = notes[2] - notes[0]
    quality = "dim" if fifth == 6 else ("m" if third == 3 else "")
    seventh = ""
    if len(notes) > 3:
        seventh = "maj7" if notes[3] - notes[0] == 11 else "7"
    return f"{NOTE_NAMES[notes[0] % 12]}{quality}{seventh}"


def _frequency(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


_SAW = sum(np.sin(2 * np.pi * h * np.arange(TABLE_SIZE) / TABLE_SIZE) / h ** 1.4 for h in range(1, 9))
_SAW = (_SAW / np.abs(_SAW).max()).astype(np.float32)


def _oscillator(freq: float, count: int, phase: float) -> np.ndarray:
    index = (phase + freq * TABLE_SIZE / SAMPLE_RATE * np.arange(count)) % TABLE_SIZE
    return _SAW[index.astype(np.int64)]


def _envelope(count: int, attack: float, release: float) -> np.ndarray:
    t = np.arange(count) / SAMPLE_RATE
    rise = np.clip(t / attack, 0, 1)
    fall = np.clip((count / SAMPLE_RATE - t) / release, 0, 1)
    return (np.sin(0.5 * np.pi * rise) * np.sin(0.5 * np.pi * fall)).astype(np.float32)


def _pad(out: np.ndarray, notes: list[int], first: int, count: int, rng: np.random.Generator) -> None:
    envelope = _envelope(count, attack=min(1.2, count / SAMPLE_RATE / 3), release=min(1.5, count / SAMPLE_RATE / 3))
    for note in notes:
        for detune, pan in ((-0.08, 0.3), (0.08, 0.7)):
            voice = _oscillator(_frequency(note + detune), count, rng.uniform(0, TABLE_SIZE)) * envelope
            out[first: first + count, 0] += voice * (1 - pan) * 0.16
            out[first: first + count, 1] += voice * pan * 0.16


def _bass(out: np.ndarray, root: int, first: int, count: int) -> None:
    t = np.arange(count) / SAMPLE_RATE
    freq = _frequency(root - 12)
    tone = np.sin(2 * np.pi * freq * t) + 0.25 * np.sin(4 * np.pi * freq * t)
    tone *= _envelope(count, 0.05, min(1.0, count / SAMPLE_RATE / 2)) * np.exp(-t / 2.5)
    out[first: first + count] += (0.22 * tone)[:, None]


def _bells(out: np.ndarray, notes: list[int], first: int, count: int, beat: int, seed: int) -> None:
    step = beat // 2  # eighth notes
    pattern = (0, 2, 1, 2, 3 % len(notes), 2, 1, 2)
    for n in range(count // step):
        if (seed >> n) & 1 and n % 4 == 3:
            continue  # a rest now and then, so the figure breathes
        start = first + n * step
        length = min(step * 3, len(out) - start)
        if length <= 0:
            break
        t = np.arange(length) / SAMPLE_RATE
        freq = _frequency(notes[pattern[n % 8] % len(notes)] + 12)
        tone = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.35) * np.clip(t / 0.004, 0, 1)
        pan = 0.35 + 0.3 * (n % 2)
        out[start: start + length, 0] += tone * 0.05 * (1 - pan)
        out[start: start + length, 1] += tone * 0.05 * pan


def _echo(out: np.ndarray, delay: float, feedback: float) -> None:
    shift = round(delay * SAMPLE_RATE)
    for _ in range(3):
        out[shift:] += feedback * out[:-shift][:, ::-1]  # ping-pong: each repeat swaps sides
        feedback *= feedback


def render(mood: str, time_of_day: str, duration: float, fingerprint: str) -> tuple[np.ndarray, Arrangement]:
    """(n, 2) float32 samples of exactly `duration` seconds at the pipeline's rate, and what was played."""
    if duration <= 0:
        raise ValueError(f"a music bed needs a positive duration, got {duration}")
    info, feel, light = arrangement(mood, time_of_day, fingerprint)
    rng = np.random.default_rng(info.seed)
    total = round(duration * SAMPLE_RATE)
    beat = round(60 / feel.tempo * SAMPLE_RATE)
    bar = 4 * beat
    pad = np.zeros((total, 2), dtype=np.float32)
    melody = np.zeros((total, 2), dtype=np.float32)
    tonic = light.tonic + (info.seed >> 8) % 3 - 1
    progression = feel.progressions[info.seed % len(feel.progressions)]
    for index, first in enumerate(range(0, total, bar)):
        notes = _chord(tonic, feel, progression[index % len(progression)])
        # Each chord swells over a little more than its bar, so one fades under the next.
        count = min(bar + beat, total - first)
        _pad(pad, notes, first, count, rng)
        _bass(pad, notes[0], first, min(bar, total - first))
        _bells(melody, notes, first, min(bar, total - first), beat, info.seed >> index % 16)
    # imported here, not with the module: scipy.signal costs the code location 0.6 s
    from scipy.signal import butter, sosfilt

    sos = butter(2, light.cutoff, btype="low", fs=SAMPLE_RATE, output="sos")
    mix = sosfilt(sos, pad, axis=0).astype(np.float32) + melody
    _echo(mix, delay=60 / feel.tempo * 0.75, feedback=0.3)
    peak = float(np.abs(mix).max())
    return (mix * (PEAK / peak) if peak > 0 else mix).astype(np.float32), info
