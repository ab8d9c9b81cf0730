"""An in-process OpenAI-compatible speech server with the manners of three real ones
(protocols-more.md §1.1): `kokoro` (Kokoro-FastAPI: a voice list of objects, FastAPI error
bodies), `openedai` (openedai-speech: no voice list, `{"message","code","type","param"}`
errors) and `orpheus` (Orpheus-FastAPI: `{"status","voices"}` list, always WAV whatever was
asked, `{"detail": str}` errors). The audio is real: a voiced buzz whose pitch is the voice's
and whose length follows the text, encoded by ffmpeg when another format is asked."""

from __future__ import annotations

import asyncio
import hashlib
import io
import subprocess
import wave
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from aiohttp import web

from anime_pipeline.media.ffmpeg import ffmpeg_exe
from tests.services.fake_ollama import Served

Flavour = Literal["kokoro", "openedai", "orpheus"]
RATE = 24_000
SECONDS_PER_CHAR = 0.06
KOKORO_MODELS = ("tts-1", "tts-1-hd", "kokoro", "gpt-4o-mini-tts")
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "opus": "audio/opus",
                 "aac": "audio/aac", "pcm": "audio/pcm"}
VOICES = {"kokoro": ("af_heart", "af_bella", "af_sky", "am_adam", "bf_isabella"),
          "openedai": ("alloy", "echo", "fable", "onyx", "nova", "shimmer"),
          "orpheus": ("tara", "leah", "jess", "leo", "dan")}


def spoken(text: str, voice: str) -> np.ndarray:
    """int16 mono at 24 kHz: a buzz at the voice's pitch, pulsed like syllables."""
    pitch = 110 + int(hashlib.sha256(voice.encode()).hexdigest()[:4], 16) % 160
    t = np.arange(int(max(1, len(text)) * SECONDS_PER_CHAR * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * pitch * h * t) / h for h in range(1, 6))
    syllables = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.25 * 32767 * buzz / 2.3 * syllables).astype("<i2")


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def encoded(samples: np.ndarray, fmt: str) -> bytes:
    if fmt == "wav":
        return wav_bytes(samples)
    if fmt == "pcm":
        return samples.tobytes()
    codec = {"mp3": ["-f", "mp3"], "flac": ["-f", "flac"], "opus": ["-c:a", "libopus", "-f", "ogg"],
             "aac": ["-c:a", "aac", "-f", "adts"]}[fmt]
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", "pipe:0", *codec, "pipe:1"], input=wav_bytes(samples),
                          capture_output=True, check=True)
    return proc.stdout


@dataclass
class FakeSpeechServer(Served):
    """Knobs: `delay` (seconds before any speech answer), `drip` (seconds between 64-byte pieces of
    the audio), `wrong_body` (a 200 body that is not audio: bytes sent as audio/wav), `errors`
    (queued (status, body) answers for the next speech requests; a dict body is JSON),
    `api_key` (required as a Bearer token when set). `requests` records every request."""

    flavour: Flavour = "kokoro"
    delay: float = 0.0
    drip: float = 0.0
    wrong_body: bytes | None = None
    api_key: str | None = None
    errors: deque[tuple[int, Any]] = field(default_factory=deque)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        app = web.Application()
        if self.flavour != "openedai":
            app.router.add_get("/v1/audio/voices", self._voices)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/health", self._health)
        self.serve(app)

    @property
    def voices(self) -> tuple[str, ...]:
        return VOICES[self.flavour]

    @property
    def spoken(self) -> list[dict[str, Any]]:
        return [body for method, path, body in self.requests if path == "/v1/audio/speech"]

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def _voices(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path, dict(request.query)))
        if self.flavour == "orpheus":
            return web.json_response({"status": "ok", "voices": list(self.voices)})
        if request.query.get("legacy") == "true":
            return web.json_response({"voices": list(self.voices)})
        return web.json_response({"voices": [{"id": v, "name": v} for v in self.voices]})

    def _error(self, status: int, code: str, message: str, param: str | None = None) -> web.Response:
        if self.flavour == "kokoro":
            kind = "server_error" if status >= 500 else "invalid_request_error"
            return web.json_response({"detail": {"error": code, "message": message, "type": kind}}, status=status)
        if self.flavour == "openedai":
            kind = "ServiceUnavailableError" if status >= 500 else "BadRequestError"
            return web.json_response({"message": message, "code": status, "type": kind, "param": param},
                                     status=status)
        return web.json_response({"detail": message}, status=status)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append(("POST", request.path, body))
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "unauthorized", "Invalid API key")
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.errors:
            status, payload = self.errors.popleft()
            if isinstance(payload, dict | list):
                return web.json_response(payload, status=status)
            return web.Response(status=status, text=str(payload))
        if not isinstance(body, dict) or not isinstance(body.get("input"), str):
            if self.flavour == "kokoro":
                return web.json_response({"detail": [{"loc": ["body", "input"], "msg": "Field required",
                                                      "type": "missing"}]}, status=422)
            return self._error(400, "invalid_request", "Missing input text", "input")
        return await self._answer(request, body)

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if self.flavour == "kokoro" and body.get("model") not in KOKORO_MODELS:
            return self._error(400, "invalid_model", f"Unsupported model: {body.get('model')}")
        if not body["input"].strip():
            return self._error(400, "validation_error", "Missing input text", "input")
        voice = str(body.get("voice", ""))
        if any(part.split("(")[0] not in self.voices for part in voice.split("+")):
            return self._error(400, "validation_error", f"Voice '{voice}' not found", "voice")
        fmt = "wav" if self.flavour == "orpheus" else str(body.get("response_format", "mp3"))
        if fmt not in CONTENT_TYPES:
            return self._error(400, "validation_error", f"Unsupported response_format: {fmt}", "response_format")
        audio = self.wrong_body if self.wrong_body is not None else encoded(spoken(body["input"], voice), fmt)
        return await self._send(request, audio, CONTENT_TYPES["wav" if self.wrong_body is not None else fmt])

    async def _send(self, request: web.Request, audio: bytes, content_type: str) -> web.StreamResponse:
        if not self.drip:
            return web.Response(body=audio, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type, "Content-Length": str(len(audio))})
        await response.prepare(request)
        for start in range(0, len(audio), 64):
            if request.transport is None or request.transport.is_closing():
                break  # the client hung up
            await response.write(audio[start:start + 64])
            await asyncio.sleep(self.drip)
        await response.write_eof()
        return response
