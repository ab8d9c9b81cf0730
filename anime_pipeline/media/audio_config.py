"""Show-file settings for speech, music, the mix and a Jellyfin server.

They live here until the lead moves them into `config/schema.py` (the report says where each
one goes); they follow its rules: strict models (an unknown key is an error), frozen, and
every bound named in the field. Service URLs and keys are the deployment's business and come
from the environment, never from the show file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import Field, field_validator

from anime_pipeline.config.schema import StrictModel

SpeechBackendName = Literal["espeak", "openai_tts"]
MusicBackendName = Literal["procedural", "ace_step", "file"]
PublisherName = Literal["filesystem", "jellyfin"]

# language[-region][+variant], as espeak_SetVoiceByName takes it: "en", "en-us+f3", "ja".
ESPEAK_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*(\+[A-Za-z0-9_]{1,24})?$")


class EspeakVoice(StrictModel):
    voice: str = Field("en", description="espeak-ng voice: language plus an optional variant, e.g. en+f3")
    pitch: int = Field(50, ge=0, le=100, description="base pitch, 50 = normal")
    rate: int = Field(170, ge=80, le=450, description="words per minute, 175 = normal")

    @field_validator("voice")
    @classmethod
    def _voice_shape(cls, value: str) -> str:
        if not ESPEAK_VOICE.match(value):
            raise ValueError(f"{value!r} is not an espeak-ng voice: write language[+variant], e.g. 'en+f3' or 'ja'")
        return value


class OpenAIVoice(StrictModel):
    voice: str = Field(min_length=1, max_length=200, description="the server's voice name, e.g. af_heart (Kokoro)")
    speed: float = Field(1.0, ge=0.25, le=4.0)


class CharacterVoice(StrictModel):
    """`voice:` on a character: one entry per speech backend; a backend without one derives a
    distinct voice from the character's slug."""

    espeak: EspeakVoice | None = None
    openai_tts: OpenAIVoice | None = None


class Ducking(StrictModel):
    """Sidechain compression of the music bed under the dialogue (ffmpeg sidechaincompress)."""

    threshold_db: float = Field(-36.0, ge=-60, le=0, description="dialogue level where ducking starts (dBFS)")
    ratio: float = Field(8.0, ge=1, le=20)
    attack_ms: float = Field(20.0, ge=0.01, le=2000)
    release_ms: float = Field(400.0, ge=0.01, le=9000)


class LoudnessTarget(StrictModel):
    """Default: −16 LUFS integrated, true peak ≤ −1 dBTP (streaming); −23 / −1 is EBU R128 broadcast."""

    integrated_lufs: float = Field(-16.0, ge=-36, le=-8)
    true_peak_dbtp: float = Field(-1.0, ge=-9, le=0)
    tolerance_lu: float = Field(1.0, gt=0, le=3, description="the loudness gate's ± window around the target")


class Audio(StrictModel):
    music_volume: float = Field(0.3, ge=0, le=1, description="music bed level relative to dialogue at 100 %")
    music_fade: float = Field(1.0, ge=0, le=10, description="music fade-in and fade-out, seconds")
    ducking: Ducking = Ducking()
    loudness: LoudnessTarget = LoudnessTarget()
    dialogue_margin_db: float = Field(
        10.0, ge=0, le=40, description="dialogue_audible gate: speech above the ducked bed in every line, dB")
    line_gap: float = Field(0.25, ge=0, le=5, description="pause between two lines of one shot, seconds")
    music_fallback: bool = Field(
        False, description="when the music service fails, use the embedded procedural bed instead of failing")


class Jellyfin(StrictModel):
    """`publisher: jellyfin`. The URL and API key come from the environment (JELLYFIN_URL,
    JELLYFIN_API_KEY), so a show file never holds a secret."""

    server_library_path: str = Field(
        description="the library root as the Jellyfin server sees it (its container path), e.g. /media")
    wait_seconds: float = Field(300.0, gt=0, le=3600,
                                description="how long server_lists_it waits for the episode to be listed")
    poll_seconds: float = Field(5.0, gt=0, le=300)

    @field_validator("server_library_path")
    @classmethod
    def _absolute_posix(cls, value: str) -> str:
        path = PurePosixPath(value)
        if not path.is_absolute() or ".." in path.parts:
            raise ValueError(f"{value!r} must be an absolute path on the server, without '..'")
        return str(path)
