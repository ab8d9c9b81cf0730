"""Credentials in service URLs reach no message, attribute, traceback or log line of the clients."""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from anime_pipeline.planning.director import DirectorChain
from anime_pipeline.services import ServiceError, redact_text, redact_url
from anime_pipeline.services.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    ComfyUIResponseTooLarge,
)
from anime_pipeline.services.echo_brain import EchoBrainClient, EchoBrainError
from anime_pipeline.services.ollama import OllamaClient, OllamaError
from tests.services.fake_comfyui import FakeComfyUI
from tests.services.fake_echo_brain import REFINE, FakeEchoBrain
from tests.services.fake_ollama import FakeOllama, unused_url
from tests.services.hostile import HTML, Huge, Trickle

SECRET = "s3cret-Pa55"
WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "proto/x"}},
}


def test_credentials_never_reach_logs_or_manifests() -> None:
    assert redact_url("https://ana:s3cret@gpu-box:8188/api") == "https://gpu-box:8188/api"
    assert redact_url("http://127.0.0.1:8188") == "http://127.0.0.1:8188"
    assert "s3cret" not in redact_url("http://:s3cret@host")
    assert redact_url("http://jf:8096/Items?api_key=s3cret&limit=5") == "http://jf:8096/Items?api_key=REDACTED&limit=5"
    assert redact_url("ana:s3cret@gpu-box:8188/x") == "gpu-box:8188/x"  # no scheme: still no credentials
    assert redact_url("http://u:p@ss@host/users/@me") == "http://host/users/@me"


def test_every_url_in_a_text_is_redacted_even_glued_together() -> None:
    text = f"tried 'http://a:{SECRET}@h1:1/x',http://b:{SECRET}@h2:2?token={SECRET} and ws://h3/ws"
    assert redact_text(text) == "tried 'http://h1:1/x',http://h2:2?token=REDACTED and ws://h3/ws"


@pytest.mark.parametrize("family", [ComfyUIError, OllamaError, EchoBrainError])
def test_the_error_types_redact_whatever_their_raiser_wrote(family: type[ServiceError]) -> None:
    error = family(f"boom at http://ana:{SECRET}@gpu:8188/x?access_token={SECRET}")
    error.url = f"http://ana:{SECRET}@gpu:8188"
    assert issubclass(family, ServiceError)
    assert SECRET not in str(error) and SECRET not in repr(error) and SECRET not in error.url
    assert "gpu:8188" in str(error)


def credentialed(url: str) -> str:
    return url.replace("http://", f"http://ana:{SECRET}@")


def comfy_run_with_a_2_gb_image(tmp_path: Path, log: Callable[[str], None]) -> None:
    with FakeComfyUI() as fake:
        fake.hostile["/view"] = Huge(2 << 30)
        ComfyUIClient(credentialed(fake.url), poll_interval=0.02, log=log).run(WORKFLOW, tmp_path)


def comfy_unreachable(tmp_path: Path, log: Callable[[str], None]) -> None:
    ComfyUIClient(credentialed(unused_url()), reconnect_window=0.1, log=log).system_stats()


def ollama_html(tmp_path: Path, log: Callable[[str], None]) -> None:
    with FakeOllama() as fake:
        fake.hostile["/api/chat"] = HTML
        OllamaClient(credentialed(fake.url)).chat_json("gemma3", [{"role": "user", "content": "x"}], {})


def ollama_busy(tmp_path: Path, log: Callable[[str], None]) -> None:
    with FakeOllama() as fake:
        fake.busy = -1
        OllamaClient(credentialed(fake.url), retries=1, backoff=0.01).chat_json("gemma3", [], {})


def echo_trickle(tmp_path: Path, log: Callable[[str], None]) -> None:
    with FakeEchoBrain() as fake:
        fake.hostile[REFINE] = Trickle(0.5)
        EchoBrainClient(credentialed(fake.url), timeout=1, retries=0).refine_prompt("p", {})


def director_with_everything_down(tmp_path: Path, log: Callable[[str], None]) -> None:
    director = DirectorChain(EchoBrainClient(credentialed(unused_url()), retries=0),
                        OllamaClient(credentialed(unused_url())))
    refinement = director.refine_prompt("1girl")
    log(repr(refinement))  # the fallback trail lands in manifests
    raise ServiceError(" | ".join(refinement.path))


@pytest.mark.parametrize("failure", [comfy_run_with_a_2_gb_image, comfy_unreachable, ollama_html, ollama_busy,
                                     echo_trickle, director_with_everything_down])
def test_no_error_traceback_or_log_line_carries_the_credentials(failure: Callable[..., Any], tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    lines: list[str] = []
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceError) as caught:
        failure(tmp_path, lines.append)
    if failure is comfy_run_with_a_2_gb_image:
        assert isinstance(caught.value, ComfyUIResponseTooLarge) and any("queued as" in line for line in lines)
    told = "".join(traceback.format_exception(caught.value))  # the whole chain of causes, as Dagster logs it
    told += repr(vars(caught.value)) + "\n".join(lines) + caplog.text
    assert SECRET not in told and base64.b64encode(f"ana:{SECRET}".encode()).decode() not in told
