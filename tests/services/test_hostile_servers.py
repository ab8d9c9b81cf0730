"""Hostile or broken services (issue 14): every class ends in the client's own typed error, within the
deadline, with bounded memory, and leaves no partial file behind."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anime_pipeline.planning.director import DirectorChain
from anime_pipeline.services.comfyui import (
    ComfyUIBadResponse,
    ComfyUIClient,
    ComfyUIError,
    ComfyUIRequestTimeout,
    ComfyUIResponseTooLarge,
    ComfyUIUnavailable,
    ResponseLimits,
    UnsafeOutputPath,
)
from anime_pipeline.services.echo_brain import (
    EchoBrainBadResponse,
    EchoBrainClient,
    EchoBrainUnavailable,
)
from anime_pipeline.services.ollama import (
    InvalidModelOutput,
    OllamaBadResponse,
    OllamaClient,
    OllamaError,
    OllamaTimeout,
)
from tests.services.fake_comfyui import FakeComfyUI
from tests.services.fake_echo_brain import LEARN, REFINE, FakeEchoBrain
from tests.services.fake_ollama import FakeOllama
from tests.services.hostile import HTML, Body, Endless, Huge, Trickle, deep_json

MiB = 1 << 20
SCHEMA = {"type": "object", "properties": {"label": {"type": "string"}}, "required": ["label"]}
MESSAGES = [{"role": "user", "content": "Label it."}]


def as_json(value: Any) -> Body:
    return Body(json.dumps(value).encode())


def scale_invert_workflow() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 2, "color": 65280}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "proto/test"}},
    }


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


# -- ComfyUI -----------------------------------------------------------------------------------


@pytest.fixture
def comfy() -> Iterator[FakeComfyUI]:
    with FakeComfyUI(render_time=0.05) as server:
        yield server


def comfy_client(fake: FakeComfyUI, **options: Any) -> ComfyUIClient:
    settings = {"timeout": 5.0, "reconnect_window": 1.0, "backoff": 0.02, "poll_interval": 0.02, **options}
    return ComfyUIClient(fake.url, **settings)


PROMPT = "p-hostile"
WS_EVENTS = {
    "data not an object": ('{"type": "executing", "data": "node 3"}', "is a string, not an object"),
    "status not an object": ('{"type": "status", "data": {"status": "busy"}}', "data.status is a string"),
    "queue_remaining not a number": ('{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": "x"}}}}',
                                     "queue_remaining is a string"),
    "progress 'abc'": (f'{{"type": "progress", "data": {{"value": "abc", "max": 9, "prompt_id": "{PROMPT}"}}}}',
                       "value is a string, not a number"),
    "progress 1e999": (f'{{"type": "progress", "data": {{"value": 1e999, "max": 9, "prompt_id": "{PROMPT}"}}}}',
                       "out of range"),
    "cached nodes not a list": (f'{{"type": "execution_cached", "data": {{"nodes": 3, "prompt_id": "{PROMPT}"}}}}',
                                "nodes is a number, not an array"),
    "not JSON": ("<html>", "HTML or XML page"),
    "an array": ("[1, 2]", "the event is an array"),
    "deeply nested": ('{"type": "status", "data": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper"),
}


@pytest.mark.parametrize("case", list(WS_EVENTS))
def test_malformed_websocket_event_ends_the_run_in_a_typed_error(case: str, comfy: FakeComfyUI,
                                                                 tmp_path: Path) -> None:
    raw, problem = WS_EVENTS[case]
    comfy.ws_inject, comfy.render_time = [raw], 5  # the render would outlast the test
    with pytest.raises(ComfyUIBadResponse, match="WebSocket /ws") as caught:
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path, prompt_id=PROMPT, timeout=30)
    assert problem in str(caught.value)
    assert {"prompt_id": PROMPT} in comfy.interrupts  # the abandoned prompt does not keep the GPU busy


@pytest.mark.parametrize(("answer", "problem"), [
    ({"queue_running": [["not enough"]], "queue_pending": []}, "queue_running[0] is not a [number, prompt_id"),
    ({"queue_running": [[0, 42, {}, {}, []]]}, "queue_running[0] is not"),
    ({"queue_running": "none"}, "queue_running is a string, not an array"),
    ([], "the answer is an array, not an object"),
])
def test_malformed_queue_is_a_bad_response(answer: Any, problem: str, comfy: FakeComfyUI) -> None:
    comfy.hostile["/queue"] = as_json(answer)
    with pytest.raises(ComfyUIBadResponse, match="GET /queue") as caught:
        comfy_client(comfy).queue()
    assert problem in str(caught.value)


@pytest.mark.parametrize(("entry", "problem"), [
    ("done", "entry 'p' is a string, not an object"),
    ({"status": []}, "status is an array, not an object"),
    ({"status": {"status_str": 1}}, "status.status_str is a number, not a string"),
    ({"status": {"messages": [["execution_error"]]}}, "status.messages[0] is not an [event name, {...}] pair"),
    ({"outputs": {"4": "images"}}, "outputs['4'] is a string, not an object"),
])
def test_malformed_history_entry_is_a_bad_response(entry: Any, problem: str, comfy: FakeComfyUI) -> None:
    comfy.hostile["/history"] = as_json({"p": entry})
    with pytest.raises(ComfyUIBadResponse, match="GET /history/p") as caught:
        comfy_client(comfy).history("p")
    assert problem in str(caught.value)


def test_output_of_an_unknown_file_type_is_a_bad_response(comfy: FakeComfyUI, tmp_path: Path) -> None:
    entry = {"status": {"status_str": "success", "completed": True},
             "outputs": {"3": {"images": [{"filename": "x.png", "subfolder": "", "type": 7}]}}}
    comfy.hostile["/history"] = as_json({PROMPT: entry})
    with pytest.raises(ComfyUIBadResponse, match=r"outputs\['3'\]\.images\[0\]\.type is a number"):
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path, prompt_id=PROMPT)


@pytest.mark.parametrize(("route", "mode", "problem"), [
    ("/system_stats", HTML, "HTML or XML page where JSON was expected"),
    ("/system_stats", deep_json(100_000), "nested deeper than 64 levels"),
    ("/system_stats", as_json({"system": {"ram_total": "lots"}}), "system.ram_total is a string, not a number"),
    ("/object_info", as_json({"EmptyImage": {"input": {"required": {"width": "INT"}}}}),
     "input 'width' is not a non-empty [type, options] array"),
])
def test_answers_that_are_not_the_protocol_are_bad_responses(route: str, mode: Body, problem: str,
                                                             comfy: FakeComfyUI, tmp_path: Path) -> None:
    comfy.hostile[route] = mode
    with pytest.raises(ComfyUIBadResponse) as caught:
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path)
    assert route in str(caught.value) and problem in str(caught.value)


@pytest.mark.parametrize(("subfolder", "filename", "problem"), [
    ("", "a" * 252 + ".png", "longer than 255 bytes"),
    ("ü" * 128, "x.png", "longer than 255 bytes"),
    ("", "clash", "it names a directory"),
])
def test_unusable_output_names_are_refused_before_anything_is_written(subfolder: str, filename: str, problem: str,
                                                                      comfy: FakeComfyUI, tmp_path: Path) -> None:
    (tmp_path / "out" / "clash").mkdir(parents=True)
    comfy.unsafe_output = (subfolder, filename)
    with pytest.raises(UnsafeOutputPath, match=problem):
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path / "out")
    assert files_under(tmp_path) == [] and comfy.views == []


def test_a_file_that_needs_another_file_as_its_folder_is_refused(comfy: FakeComfyUI, tmp_path: Path) -> None:
    images = [{"filename": "x", "subfolder": "", "type": "output"},
              {"filename": "y.png", "subfolder": "x", "type": "output"}]
    comfy.hostile["/history"] = as_json({PROMPT: {"status": {"status_str": "success", "completed": True},
                                                  "outputs": {"3": {"images": images}}}})
    with pytest.raises(UnsafeOutputPath, match="its folder 'x' is also a file"):
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path, prompt_id=PROMPT)
    assert files_under(tmp_path) == [] and comfy.views == []


def test_a_2_gb_image_is_refused_at_its_announced_length(comfy: FakeComfyUI, tmp_path: Path) -> None:
    comfy.hostile["/view"] = Huge(2 * 1024 * MiB)
    with pytest.raises(ComfyUIResponseTooLarge, match=f"{256 * MiB}-byte cap"):
        comfy_client(comfy).run(scale_invert_workflow(), tmp_path)
    assert files_under(tmp_path) == []


def test_an_endless_image_stops_at_the_cap_and_leaves_no_partial_file(comfy: FakeComfyUI, tmp_path: Path) -> None:
    comfy.hostile["/view"] = Endless()
    with pytest.raises(ComfyUIResponseTooLarge, match="GET /view"):
        comfy_client(comfy, limits=ResponseLimits(file=2 * MiB)).run(scale_invert_workflow(), tmp_path)
    assert files_under(tmp_path) == []


def test_a_trickled_image_ends_at_the_download_deadline(comfy: FakeComfyUI, tmp_path: Path) -> None:
    comfy.hostile["/view"] = Trickle(0.5)
    with pytest.raises(ComfyUIRequestTimeout, match="GET /view.*within 1 s"):
        comfy_client(comfy, download_timeout=1.0).run(scale_invert_workflow(), tmp_path)
    assert files_under(tmp_path) == []


def test_a_trickling_json_answer_ends_at_the_call_deadline(comfy: FakeComfyUI) -> None:
    comfy.hostile["/queue"] = Trickle(0.5)
    with pytest.raises(ComfyUIRequestTimeout, match="GET /queue: ComfyUI sent no complete answer within 1 s"):
        comfy_client(comfy, timeout=1.0).queue()


def test_an_endless_json_answer_stops_at_the_cap_in_bounded_memory(comfy: FakeComfyUI) -> None:
    comfy.hostile["/queue"] = Endless()
    tracemalloc.start()
    try:
        with pytest.raises(ComfyUIResponseTooLarge, match="GET /queue"):
            comfy_client(comfy, limits=ResponseLimits(json=MiB)).queue()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


def test_a_restart_longer_than_the_reconnect_window_is_unavailable(comfy: FakeComfyUI, tmp_path: Path) -> None:
    comfy.restart_mid_run, comfy.restart_downtime = 1, 60  # 503 while it "restarts", well past the window
    with pytest.raises(ComfyUIUnavailable, match=r"within the 0.3 s reconnect window\): HTTP 503"):
        comfy_client(comfy, reconnect_window=0.3).run(scale_invert_workflow(), tmp_path, timeout=30)


def test_every_comfyui_error_above_is_one_family() -> None:
    for error in (ComfyUIBadResponse, ComfyUIRequestTimeout, ComfyUIResponseTooLarge, ComfyUIUnavailable,
                  UnsafeOutputPath):
        assert issubclass(error, ComfyUIError)


# -- Ollama ------------------------------------------------------------------------------------


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def chat_answer(content: Any) -> Body:
    return as_json({"model": "gemma3", "message": {"role": "assistant", "content": content}, "done": True})


@pytest.mark.parametrize(("mode", "problem"), [
    (chat_answer(7), "message.content is a number, not a string"),
    (chat_answer(None), "message.content is null"),
    (as_json({"model": "gemma3", "done": True}), "message is missing"),
    (HTML, "HTML or XML page where JSON was expected"),
    (deep_json(100_000), "nested deeper than 64 levels"),
    (as_json([1]), "the answer is an array, not an object"),
    (Endless(), "larger than the 1048576-byte cap"),
])
def test_malformed_chat_answer_is_ollama_bad_response(mode: Body, problem: str, ollama: FakeOllama) -> None:
    ollama.hostile["/api/chat"] = mode
    with pytest.raises(OllamaBadResponse) as caught:
        OllamaClient(ollama.url, max_answer_bytes=MiB).chat_json("gemma3", MESSAGES, SCHEMA)
    assert problem in str(caught.value) and isinstance(caught.value, OllamaError)


@pytest.mark.parametrize(("models", "problem"), [
    ([{"model": "gemma3:latest"}], "models[0].name is missing"),
    ([{"name": 3}], "models[0].name is a number, not a string"),
    ([{"name": "x", "details": "gguf"}], "models[0].details is a string, not an object"),
    ("gemma3", "models is a string, not an array"),
])
def test_malformed_tags_are_ollama_bad_response(models: Any, problem: str, ollama: FakeOllama) -> None:
    ollama.hostile["/api/tags"] = as_json({"models": models})
    with pytest.raises(OllamaBadResponse, match="/api/tags") as caught:
        OllamaClient(ollama.url).ensure_model("gemma3")
    assert problem in str(caught.value)


def test_a_model_answer_nested_too_deeply_is_repaired_not_a_recursion_error(ollama: FakeOllama) -> None:
    ollama.answer("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidModelOutput, match="nested deeper than 64 levels"):
        OllamaClient(ollama.url).chat_json("gemma3", MESSAGES, SCHEMA, repair_attempts=0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_trickling_chat_ends_at_the_total_deadline(stream: bool, ollama: FakeOllama) -> None:
    ollama.hostile["/api/chat"] = Trickle(0.5)
    with pytest.raises(OllamaTimeout, match="within 1 s"):
        OllamaClient(ollama.url, timeout=1.0).chat_json("gemma3", MESSAGES, SCHEMA, stream=stream)


def test_a_stream_that_never_sends_done_ends_at_the_total_deadline(ollama: FakeOllama) -> None:
    line = b'{"model": "gemma3", "message": {"role": "assistant", "content": "a"}, "done": false}\n'
    ollama.hostile["/api/chat"] = Endless(line, interval=0.05, content_type="application/x-ndjson")
    with pytest.raises(OllamaTimeout):
        OllamaClient(ollama.url, timeout=1.0).chat_json("gemma3", MESSAGES, SCHEMA, stream=True)


def test_a_stream_line_of_the_wrong_shape_is_ollama_bad_response(ollama: FakeOllama) -> None:
    ollama.hostile["/api/chat"] = Body(b'{"message": {"content": "a"}, "done": false}\n{"message": "b"}\n',
                                       "application/x-ndjson")
    with pytest.raises(OllamaBadResponse, match="stream line 2.message is a string, not an object"):
        OllamaClient(ollama.url).chat_json("gemma3", MESSAGES, SCHEMA, stream=True)


# -- Echo Brain --------------------------------------------------------------------------------


@pytest.fixture
def echo() -> Iterator[FakeEchoBrain]:
    with FakeEchoBrain() as server:
        yield server


@pytest.mark.parametrize(("mode", "problem"), [
    (HTML, "HTML or XML page where JSON was expected"),
    (deep_json(100_000), "nested deeper than 64 levels"),
    (as_json(["refined"]), "the answer is an array, not an object"),
    (Endless(), "larger than the 1048576-byte cap"),
])
def test_malformed_echo_brain_answer_is_a_bad_response(mode: Body, problem: str, echo: FakeEchoBrain) -> None:
    echo.hostile[REFINE] = mode
    with pytest.raises(EchoBrainBadResponse, match=REFINE) as caught:
        EchoBrainClient(echo.url, retries=0).refine_prompt("p", {})
    assert problem in str(caught.value)


def test_a_trickling_echo_brain_is_unavailable_at_the_deadline(echo: FakeEchoBrain) -> None:
    echo.hostile[REFINE] = Trickle(0.5)
    with pytest.raises(EchoBrainUnavailable, match="no complete answer within 1 s"):
        EchoBrainClient(echo.url, timeout=1.0, retries=0).refine_prompt("p", {})


def test_the_director_falls_back_and_feedback_never_raises_on_a_hostile_echo_brain(echo: FakeEchoBrain) -> None:
    echo.hostile[REFINE], echo.hostile[LEARN] = deep_json(100_000), HTML
    director = DirectorChain(EchoBrainClient(echo.url, retries=0), None)
    refinement = director.refine_prompt("1girl, courier", "night")
    assert refinement.path[0].startswith("echo_brain: EchoBrainBadResponse") and refinement.path[-1] == "local: ok"
    assert director.send_feedback({"clarity": 0.5}) is False
