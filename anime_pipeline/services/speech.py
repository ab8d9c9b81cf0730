"""Client for OpenAI-compatible speech servers: `POST /v1/audio/speech` (protocols-more.md §1.1).

Kokoro-FastAPI, openedai-speech, LocalAI, Orpheus-FastAPI and AllTalk share the request but
not much else: the voice list lives at `/v1/audio/voices` in one of three shapes or not at
all, errors come in five JSON shapes (or none), and some servers ignore `response_format`.
So the voice is checked against the list when the server offers one, the answer's format is
read from its magic bytes, and every failure is a `SpeechServiceError` naming the server, the
voice and the reason. The API key, when one is set, goes in a header and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from anime_pipeline.services.audio_bytes import sniff_audio
from anime_pipeline.services.bounded_http import (Deadline, DeadlineExceeded, Endpoint, Reply, TooLarge,
                                                  TransportError, exchange)

DEFAULT_MODEL = "tts-1"
REQUEST_FORMAT = "wav"
MAX_AUDIO_BYTES = 64 * 2**20  # ~6 min of 24 kHz 16-bit WAV: far beyond one dialogue line
MAX_JSON_BYTES = 4 * 2**20
MAX_INPUT_CHARS = 4096  # AllTalk's limit, the smallest of the servers in the reference
VOICE_WEIGHT = re.compile(r"\(\s*[\d.]+\s*\)$")  # Kokoro's "af_bella(2)+af_sky" mixing syntax


class SpeechServiceError(RuntimeError):
    """Anything that kept a speech server from giving a usable clip."""


class SpeechUnavailable(SpeechServiceError):
    pass


class SpeechTimeout(SpeechServiceError):
    pass


class SpeechTooLarge(SpeechServiceError):
    pass


class SpeechRejected(SpeechServiceError):
    """HTTP 4xx: the request is wrong (model, voice, input); the same request will fail again."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class SpeechServerError(SpeechServiceError):
    """HTTP 5xx: the server failed; the same request may work later."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class UnknownVoice(SpeechServiceError):
    pass


class BadSpeechAudio(SpeechServiceError):
    """A 200 answer whose body is not audio (JSON, HTML, raw PCM, nothing)."""


class MalformedVoiceList(SpeechServiceError):
    pass


@dataclass(frozen=True)
class SpeechAudio:
    data: bytes
    format: str  # from the magic bytes, not from the headers
    content_type: str


def error_text(reply: Reply) -> str:
    """The server's reason, whichever of the known error shapes it used."""
    try:
        payload = reply.json()
    except ValueError:
        return reply.excerpt() or "no error text"
    return _describe(payload) or reply.excerpt()


def _describe(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, list):  # FastAPI 422: [{loc, msg, type}]
        return "; ".join(_describe(item) for item in payload)
    if not isinstance(payload, dict):
        return ""
    if "loc" in payload and "msg" in payload:
        where = ".".join(str(part) for part in payload["loc"]) if isinstance(payload["loc"], list) else payload["loc"]
        return f"{where}: {payload['msg']}"
    if payload.get("detail"):  # FastAPI: Kokoro {"detail": {...}}, Orpheus {"detail": str}, 422 [...]
        return _describe(payload["detail"])
    if isinstance(payload.get("error"), dict | list):  # OpenAI {"error": {"message", "type", "code"}}
        return _describe(payload["error"])
    message = str(payload.get("message") or payload.get("msg") or "")
    labels = (payload.get("error"), payload.get("code"), payload.get("type"))
    code = next((v for v in labels if isinstance(v, str) and v), "")
    if not message or code in message:
        return message or code
    return f"{code}: {message}" if code else message


def voice_names(payload: Any) -> frozenset[str]:
    """Names from the three voice-list shapes: {"voices": [{"id","name"}]}, {"voices": [str]},
    {"status": "ok"|"success", "voices": [...]}."""
    voices = payload.get("voices") if isinstance(payload, dict) else None
    if not isinstance(voices, list):
        raise ValueError("expected an object with a 'voices' list")
    names = set()
    for entry in voices:
        if isinstance(entry, str):
            names.add(entry)
        elif isinstance(entry, dict) and isinstance(entry.get("id") or entry.get("name"), str):
            names.add(entry.get("id") or entry["name"])
        else:
            raise ValueError(f"a voice entry is {type(entry).__name__}, not a name or an object with an id")
    return frozenset(names)


def voice_parts(voice: str) -> list[str]:
    """The voices a (possibly mixed) voice name uses: 'af_bella(2)+af_sky' → ['af_bella', 'af_sky']."""
    return [VOICE_WEIGHT.sub("", part).strip() for part in voice.split("+") if part.strip()]


class OpenAISpeechClient:
    """One speech server (`url`, e.g. http://tts:8880) serving `model`; `timeout` bounds each call
    as a whole (connect, queue, synthesis, download)."""

    def __init__(self, url: str, model: str = DEFAULT_MODEL, api_key: str | None = None, timeout: float = 120.0,
                 max_bytes: int = MAX_AUDIO_BYTES) -> None:
        self.endpoint = Endpoint.parse(url)
        self.model, self.timeout, self.max_bytes = model, timeout, max_bytes
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._voices: frozenset[str] | None = None
        self._voices_checked = False

    @property
    def url(self) -> str:
        return self.endpoint.display

    def voices(self) -> frozenset[str] | None:
        """The server's voices, or None when it has no list (openedai-speech); fetched once."""
        if not self._voices_checked:
            self._voices = self._fetch_voices()
            self._voices_checked = True
        return self._voices

    def check_voice(self, voice: str) -> None:
        known = self.voices()
        missing = [part for part in voice_parts(voice) if known is not None and part not in known]
        if not voice_parts(voice) or missing:
            listed = ", ".join(sorted(known or ())[:20])
            raise UnknownVoice(f"speech server {self.url} (model {self.model!r}) has no voice "
                               f"{', '.join(missing) or voice!r}; it offers: {listed or 'none'}")

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> SpeechAudio:
        if not text.strip():
            raise SpeechRejected(f"speech server {self.url}: cannot speak an empty line", 400)
        if len(text) > MAX_INPUT_CHARS:
            raise SpeechRejected(f"speech server {self.url}: a line of {len(text)} characters is longer than "
                                 f"{MAX_INPUT_CHARS}: {text[:60]!r}…", 400)
        self.check_voice(voice)
        body = {"model": self.model, "input": text, "voice": voice, "response_format": REQUEST_FORMAT,
                "speed": speed, "stream": False}
        reply = self._call("POST", "/v1/audio/speech", voice, json_body=body, max_bytes=self.max_bytes)
        if reply.status != 200:
            raise self._status_error(reply, voice)
        kind = sniff_audio(reply.body)
        if kind is None:
            raise BadSpeechAudio(f"speech server {self.url} answered voice {voice!r} with {len(reply.body)} bytes of "
                                 f"{reply.content_type or 'unlabelled data'} that are not audio: "
                                 f"{reply.excerpt()[:80]!r}")
        return SpeechAudio(reply.body, kind, reply.content_type)

    def _fetch_voices(self) -> frozenset[str] | None:
        reply = self._call("GET", "/v1/audio/voices", None, max_bytes=MAX_JSON_BYTES)
        if reply.status in (404, 405, 501):
            return None
        if reply.status != 200:
            raise self._status_error(reply, None)
        try:
            return voice_names(reply.json())
        except ValueError as exc:
            raise MalformedVoiceList(f"speech server {self.url}: GET /v1/audio/voices gave an unusable list ({exc}): "
                                     f"{reply.excerpt()[:120]!r}") from None

    def _call(self, method: str, path: str, voice: str | None, *, max_bytes: int, json_body: Any = None) -> Reply:
        try:
            return exchange(self.endpoint, method, path, deadline=Deadline(self.timeout), max_bytes=max_bytes,
                            json_body=json_body, headers=self._headers)
        except DeadlineExceeded:
            raise SpeechTimeout(f"speech server {self.url} gave no complete answer{_for(voice)} within "
                                f"{self.timeout:g} s (model {self.model!r})") from None
        except TooLarge as exc:
            raise SpeechTooLarge(f"speech server {self.url}{_for(voice)}: {exc.reason}") from None
        except TransportError as exc:
            raise SpeechUnavailable(f"speech server {self.url} is unreachable ({exc.reason}); start it or point "
                                    "the speech backend at the right host:port") from None

    def _status_error(self, reply: Reply, voice: str | None) -> SpeechServiceError:
        text = f"speech server {self.url} (model {self.model!r}{_for(voice, ', ')}) "
        text += f"answered HTTP {reply.status}: {error_text(reply)}"
        if reply.status in (401, 403):
            return SpeechRejected(text + " (check the speech server's API key)", reply.status)
        if 400 <= reply.status < 500:
            return SpeechRejected(text, reply.status)
        return SpeechServerError(text, reply.status)


def _for(voice: str | None, lead: str = " for ") -> str:
    return f"{lead}voice {voice!r}" if voice else ""
