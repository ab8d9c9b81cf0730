"""The OpenAI-compatible speech client against fakes with Kokoro's, openedai-speech's and Orpheus's manners."""

from __future__ import annotations

import pytest

from anime_pipeline.services.speech import (
    BadSpeechAudio,
    OpenAISpeechClient,
    SpeechRejected,
    SpeechServerError,
    SpeechServiceError,
    SpeechTimeout,
    SpeechTooLarge,
    SpeechUnavailable,
    UnknownVoice,
    voice_parts,
)
from tests.services.fake_ollama import unused_url
from tests.services.fake_speech import FakeSpeechServer


@pytest.mark.parametrize("flavour,voice", [("kokoro", "af_heart"), ("openedai", "nova"), ("orpheus", "tara")])
def test_speaks_wav_on_every_flavour(flavour: str, voice: str) -> None:
    with FakeSpeechServer(flavour) as server:
        audio = OpenAISpeechClient(server.url).synthesize("Hello there.", voice)
    assert audio.format == "wav" and audio.data[:4] == b"RIFF"
    sent = server.spoken[0]
    assert sent == {"model": "tts-1", "input": "Hello there.", "voice": voice, "response_format": "wav",
                    "speed": 1.0, "stream": False}


def test_voice_list_is_checked_before_speaking() -> None:
    with FakeSpeechServer("kokoro") as server:
        client = OpenAISpeechClient(server.url)
        with pytest.raises(UnknownVoice, match=r"no voice 'af_nobody'.*af_bella, af_heart"):
            client.synthesize("Hi.", "af_nobody")
        assert server.spoken == []  # refused before any synthesis request
        client.synthesize("Hi.", "af_bella(2)+af_sky")  # Kokoro's voice mixing names two listed voices
    assert voice_parts("af_bella(2)+af_sky") == ["af_bella", "af_sky"]


def test_a_server_without_a_voice_list_is_asked_directly() -> None:
    with FakeSpeechServer("openedai") as server:
        client = OpenAISpeechClient(server.url)
        assert client.voices() is None
        with pytest.raises(SpeechRejected, match=r"HTTP 400: BadRequestError: Voice 'robot' not found") as caught:
            client.synthesize("Hi.", "robot")
    assert caught.value.status == 400


def test_orpheus_voice_list_shape_and_its_detail_string_errors() -> None:
    with FakeSpeechServer("orpheus") as server:
        client = OpenAISpeechClient(server.url)
        assert client.voices() == frozenset({"tara", "leah", "jess", "leo", "dan"})
        server.errors.append((400, {"detail": "Missing input text"}))
        with pytest.raises(SpeechRejected, match="HTTP 400: Missing input text"):
            client.synthesize("Hi.", "tara")


@pytest.mark.parametrize("status,body,kind,text", [
    (400, {"detail": {"error": "invalid_model", "message": "Unsupported model: x", "type": "invalid_request_error"}},
     SpeechRejected, "invalid_model: Unsupported model: x"),
    (422, {"detail": [{"loc": ["body", "speed"], "msg": "Input should be a valid number", "type": "float_parsing"}]},
     SpeechRejected, "body.speed: Input should be a valid number"),
    (400, {"error": {"message": "speed must be positive", "type": "invalid_request_error", "code": None}},
     SpeechRejected, "speed must be positive"),
    (500, {"message": "InternalServerError", "code": 500}, SpeechServerError, "HTTP 500: InternalServerError"),
    (503, "<html><body>Bad Gateway</body></html>", SpeechServerError, "Bad Gateway"),
    (500, "", SpeechServerError, "no error text"),
    (401, {"detail": {"error": "unauthorized", "message": "Invalid API key", "type": "invalid_request_error"}},
     SpeechRejected, "check the speech server's API key"),
])
def test_every_error_body_shape_becomes_one_clear_error(status, body, kind, text) -> None:
    with FakeSpeechServer("kokoro") as server:
        server.errors.append((status, body))
        with pytest.raises(kind) as caught:
            OpenAISpeechClient(server.url).synthesize("Hi.", "af_heart")
    assert text in str(caught.value) and "voice 'af_heart'" in str(caught.value)
    assert isinstance(caught.value, SpeechServiceError)


@pytest.mark.parametrize("body", [b'{"audio": "base64..."}' + b" " * 80, b"<html>" + b"x" * 100, b"\x01\x02" * 400,
                                  b""])
def test_a_body_that_is_not_audio_is_refused_by_its_magic_bytes(body: bytes) -> None:
    with FakeSpeechServer("kokoro", wrong_body=body) as server:
        with pytest.raises(BadSpeechAudio, match="that are not audio"):
            OpenAISpeechClient(server.url).synthesize("Hi.", "af_heart")


def test_another_real_format_than_asked_is_accepted_for_what_it_is() -> None:
    with FakeSpeechServer("kokoro") as server:
        from tests.services.fake_speech import encoded, spoken
        server.wrong_body = encoded(spoken("Hi.", "af_heart"), "mp3")
        audio = OpenAISpeechClient(server.url).synthesize("Hi.", "af_heart")
    assert audio.format == "mp3" and audio.content_type == "audio/wav"


def test_a_slow_server_hits_the_total_deadline() -> None:
    with FakeSpeechServer("kokoro", delay=2.0) as server:
        with pytest.raises(SpeechTimeout, match=r"within 0\.3 s"):
            OpenAISpeechClient(server.url, timeout=0.3).synthesize("Hi.", "af_heart")


def test_a_dripping_body_cannot_outlast_the_deadline() -> None:
    # Each piece arrives well within any per-read timeout; only a total deadline stops it.
    with FakeSpeechServer("kokoro", drip=0.05) as server:
        with pytest.raises(SpeechTimeout):
            OpenAISpeechClient(server.url, timeout=0.5).synthesize("A long line of dialogue.", "af_heart")


def test_an_oversized_answer_is_cut_off() -> None:
    with FakeSpeechServer("kokoro") as server:
        with pytest.raises(SpeechTooLarge, match="1000-byte cap"):
            OpenAISpeechClient(server.url, max_bytes=1000).synthesize("Hello there, a long line.", "af_heart")


def test_unreachable_server() -> None:
    with pytest.raises(SpeechUnavailable, match="connection refused"):
        OpenAISpeechClient(unused_url()).synthesize("Hi.", "alloy")


def test_the_api_key_is_sent_as_a_bearer_token_and_never_shown() -> None:
    with FakeSpeechServer("openedai", api_key="s3cret-key") as server:
        OpenAISpeechClient(server.url, api_key="s3cret-key").synthesize("Hi.", "nova")
        with pytest.raises(SpeechRejected) as caught:
            OpenAISpeechClient(server.url, api_key="wrong-key").synthesize("Hi.", "nova")
    assert caught.value.status == 401
    assert "wrong-key" not in str(caught.value)


def test_credentials_in_the_url_never_reach_a_message() -> None:
    with pytest.raises(SpeechUnavailable) as caught:
        OpenAISpeechClient(unused_url().replace("http://", "http://user:pa55word@")).synthesize("Hi.", "alloy")
    assert "pa55word" not in str(caught.value) and "user" not in str(caught.value)


def test_empty_and_overlong_lines_are_refused_without_a_request() -> None:
    with FakeSpeechServer("kokoro") as server:
        client = OpenAISpeechClient(server.url)
        with pytest.raises(SpeechRejected, match="empty line"):
            client.synthesize("  ", "af_heart")
        with pytest.raises(SpeechRejected, match="longer than 4096"):
            client.synthesize("x" * 5000, "af_heart")
    assert server.spoken == []
