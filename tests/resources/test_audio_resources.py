"""The speech, music and Jellyfin resources: the embedded defaults, what a missing setting says, and
URLs and keys from the environment reaching them only through dg.EnvVar."""

from __future__ import annotations

from contextlib import nullcontext

import dagster as dg
import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.definitions import build_resources
from anime_pipeline.media.music import FileMusic, ProceduralMusic
from anime_pipeline.media.speech import EspeakSpeech
from anime_pipeline.resources import (
    JellyfinResource,
    MusicResource,
    NotConfigured,
    SpeechResource,
)
from anime_pipeline.settings import Settings


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


def _with(config, **backends):
    return config.model_copy(update={"backends": config.backends.model_copy(update=backends)})


def test_the_embedded_defaults_need_no_service(show, tmp_path) -> None:
    with SpeechResource().session(None, show) as speech:
        assert isinstance(speech, EspeakSpeech) and speech.embedded
    with MusicResource().session(None, show, tmp_path) as music:
        assert isinstance(music, ProceduralMusic)
    with MusicResource().session(None, _with(show, music="file"), tmp_path) as music:
        assert isinstance(music, FileMusic) and music.folder == tmp_path


@pytest.mark.parametrize(("opened", "text"), [
    (lambda show: SpeechResource().session(None, _with(show, speech="openai_tts")),
     "sets backends.speech: openai_tts, but ANIME_PIPELINE_SPEECH_URLS is not set"),
    (lambda show: MusicResource().session(None, _with(show, music="ace_step"), None),
     "sets backends.music: ace_step, but ANIME_PIPELINE_ACESTEP_URLS is not set"),
    (lambda show: nullcontext(JellyfinResource().client(show)),
     "sets backends.publisher: jellyfin, but JELLYFIN_URL is not set"),
    (lambda show: nullcontext(JellyfinResource(url="http://jellyfin:8096").client(show)),
     "JELLYFIN_API_KEY is not set: set it to an API key from the server's Dashboard → API Keys"),
])
def test_a_service_backend_without_its_setting_names_the_variable(show, opened, text) -> None:
    with pytest.raises(NotConfigured) as caught:
        with opened(show):
            pass
    assert text in caught.value.description


def test_a_malformed_server_list_names_its_variable(show) -> None:
    with pytest.raises(ValueError, match="ANIME_PIPELINE_SPEECH_URLS: 'tts:8880' should look like"):
        with SpeechResource(urls="tts:8880").session(None, _with(show, speech="openai_tts")):
            pass


def test_urls_and_keys_from_the_environment_reach_the_resources_as_env_vars(monkeypatch, tmp_path) -> None:
    environment = {"ANIME_PIPELINE_SPEECH_URLS": "0=http://user:pw@tts:8880", "ANIME_PIPELINE_SPEECH_API_KEY": "sk-1",
                   "ANIME_PIPELINE_ACESTEP_URLS": "1=http://acestep:8001", "ACESTEP_API_KEY": "ace-2",
                   "JELLYFIN_URL": "http://jellyfin:8096", "JELLYFIN_API_KEY": "jf-3"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(tmp_path))
    settings = Settings.from_env()
    assert settings.speech_urls == (("0", "http://user:pw@tts:8880"),) and settings.jellyfin_api_key == "jf-3"
    assert not any(secret in repr(settings) for secret in ("pw@", "sk-1", "ace-2", "jf-3"))
    resources = build_resources(settings)
    read = {"ANIME_PIPELINE_SPEECH_URLS": resources["speech"].urls, "ANIME_PIPELINE_SPEECH_API_KEY":
            resources["speech"].api_key, "ANIME_PIPELINE_ACESTEP_URLS": resources["music"].acestep_urls,
            "ACESTEP_API_KEY": resources["music"].api_key, "JELLYFIN_URL": resources["jellyfin"].url,
            "JELLYFIN_API_KEY": resources["jellyfin"].api_key}
    assert all(isinstance(value, dg.EnvVar) and value.env_var_name == name for name, value in read.items())


def test_settings_given_directly_are_plain_values(tmp_path) -> None:
    settings = Settings(configs_dir=tmp_path, storage_root=tmp_path, library_root=tmp_path, renderer_gpu="cpu",
                        reviewer_gpu="cpu", speech_urls=(("0", "http://tts:8880"), ("1", "http://tts2:8880")))
    assert build_resources(settings)["speech"].urls == "0=http://tts:8880,1=http://tts2:8880"
