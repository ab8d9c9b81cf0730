"""The ComfyUI client against an in-process fake that replays the recorded 0.3.64 protocol."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from anime_pipeline.services.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    ComfyUITimeout,
    ComfyUIUnavailable,
    ExecutionFailed,
    HistoryEntry,
    Interrupted,
    PromptLost,
    PromptRejected,
    UnsafeOutputPath,
    UploadedImage,
    WorkflowValidationError,
)
from anime_pipeline.services.comfyui.graph import catalogue_problem
from anime_pipeline.services.comfyui.watch import EventSocket, RunWatch, ServerCalls
from tests.services.fake_comfyui import DATA, FakeComfyUI

VHS_VIDEO_COMBINE = {  # protocols.md §1.9; the pack is not in the recorded catalogue
    "input": {
        "required": {
            "images": ["IMAGE"],
            "frame_rate": ["FLOAT", {"default": 8, "min": 1, "step": 1}],
            "loop_count": ["INT", {"default": 0, "min": 0, "max": 100, "step": 1}],
            "filename_prefix": ["STRING", {"default": "AnimateDiff"}],
            "format": [["image/gif", "image/webp", "video/h264-mp4", "video/h265-mp4"], {}],
            "pingpong": ["BOOLEAN", {"default": False}],
            "save_output": ["BOOLEAN", {"default": True}],
        },
        "optional": {"audio": ["AUDIO"], "vae": ["VAE"]},
    },
    "output": ["VHS_FILENAMES"], "output_is_list": [False], "output_name": ["Filenames"],
    "name": "VHS_VideoCombine", "display_name": "Video Combine", "description": "",
    "python_module": "custom_nodes.ComfyUI-VideoHelperSuite", "category": "Video Helper Suite", "output_node": True,
}


def scale_invert_workflow() -> dict[str, Any]:
    """Model-free core nodes: EmptyImage -> ImageScale -> ImageInvert -> SaveImage."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 2, "color": 65280}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear",
                                                     "width": 32, "height": 24, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "proto/test"}},
    }


def session1_workflow(loaded_image: str) -> dict[str, Any]:
    """The graph of session1.log (protocols.md §1.5), plus CreateVideo -> SaveVideo."""
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 3, "color": 65280}},
        "2": {"class_type": "LoadImage", "inputs": {"image": loaded_image}},
        "3": {"class_type": "ImageScale", "inputs": {"image": ["2", 0], "upscale_method": "bilinear",
                                                     "width": 64, "height": 48, "crop": "disabled"}},
        "4": {"class_type": "ImageBlend", "inputs": {"image1": ["1", 0], "image2": ["3", 0], "blend_factor": 0.5,
                                                     "blend_mode": "normal"}},
        "5": {"class_type": "ImageInvert", "inputs": {"image": ["4", 0]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "proto/test"}},
        "7": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["4", 0], "filename_prefix": "proto/anim",
                                                           "fps": 6.0, "lossless": True, "quality": 80,
                                                           "method": "default"}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        "9": {"class_type": "CreateVideo", "inputs": {"images": ["4", 0], "fps": 6.0}},
        "10": {"class_type": "SaveVideo", "inputs": {"video": ["9", 0], "filename_prefix": "video/proto",
                                                     "format": "mp4", "codec": "h264"}},
    }


def video_combine_workflow() -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 4, "color": 0}},
        "2": {"class_type": "VHS_VideoCombine", "inputs": {
            "images": ["1", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": "clips/shot",
            "format": "video/h264-mp4", "pingpong": False, "save_output": True,
            "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True, "trim_to_audio": False}},  # format-specific, flat
    }


@pytest.fixture
def fake() -> Iterator[FakeComfyUI]:
    with FakeComfyUI(render_time=0.05) as server:
        yield server


@pytest.fixture
def seen() -> SimpleNamespace:
    return SimpleNamespace(lines=[], events=[])


@pytest.fixture
def client(fake: FakeComfyUI, seen: SimpleNamespace) -> Iterator[ComfyUIClient]:
    with ComfyUIClient(fake.url, timeout=2.0, reconnect_window=2.0, backoff=0.02, poll_interval=0.02,
                       log=seen.lines.append, progress=seen.events.append) as comfy:
        yield comfy


def relative(paths: list[Path], root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in paths)


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def logged(seen: SimpleNamespace, text: str) -> bool:
    return any(text in line for line in seen.lines)


def on_first_progress(action: Callable[[], Any]) -> Callable[[object], None]:
    """A progress callback that runs `action` in another thread once the prompt is executing."""
    started = threading.Event()

    def report(event: object) -> None:
        if not started.is_set():
            started.set()
            threading.Thread(target=action, daemon=True).start()
    return report


# -- the happy paths ---------------------------------------------------------------------------


def test_recorded_data_is_in_the_repo() -> None:
    assert len(json.loads((DATA / "object_info.json").read_text())) == 472
    assert "execution_success" in (DATA / "session1.log").read_text()
    assert "execution_error" in (DATA / "session2.log").read_text()


RECORDED_080 = DATA / "0.8.0"  # a real 0.8.0 server's answers (reference/comfyui/0.8.0)


def test_the_recorded_catalogues_and_history_are_read_as_they_are() -> None:
    for folder, classes in ((DATA, 472), (RECORDED_080, 545)):
        catalogue = json.loads((folder / "object_info.json").read_text())
        assert len(catalogue) == classes and catalogue_problem(catalogue) is None
    ((prompt_id, data),) = json.loads((RECORDED_080 / "history_success.json").read_text()).items()
    entry = HistoryEntry.from_json(prompt_id, data)
    assert (entry.status, entry.completed, entry.server_seconds() is not None) == ("success", True, True)
    assert [(f.node_id, f.subfolder, f.filename, f.type) for f in entry.files()] == [
        ("5", "", "ComfyUI_temp_snoqb_00001_.png", "temp"), ("4", "proto", "client_test_00001_.png", "output")]


@pytest.mark.parametrize(("recording", "ending"), [
    ("raw_ws_success.json", None), ("raw_ws_execution_error.json", ExecutionFailed),
    ("raw_ws_interrupt_ksampler.json", Interrupted)])
def test_the_recorded_websocket_sessions_are_followed_to_their_end(recording: str, ending: type | None) -> None:
    messages = json.loads((RECORDED_080 / recording).read_text())
    prompt_id = next(m["data"]["prompt_id"] for m in messages if m["type"] == "execution_start")
    lines: list[str] = []
    calls = ServerCalls(history=lambda _: None, locate=lambda _: "queued", submit=lambda *_: None,
                        abandon=lambda _: None, log=lines.append, progress=lambda _: None, cancel=threading.Event(),
                        poll_interval=1, backoff=1, reconnect_window=1, connect_timeout=1)
    watch = RunWatch(calls, {}, prompt_id, EventSocket("ws://127.0.0.1:9/ws", 1 << 20), None, None)
    if ending is None:
        assert [watch.handle(message) for message in messages][-1] is True
        assert watch.started_at is not None and any("execution succeeded" in line for line in lines)
    else:
        with pytest.raises(ending):
            for message in messages:
                watch.handle(message)


def test_run_downloads_outputs_reports_progress_and_logs(fake: FakeComfyUI, client: ComfyUIClient,
                                                         seen: SimpleNamespace, tmp_path: Path) -> None:
    fake.progress_steps = 3
    result = client.run(scale_invert_workflow(), tmp_path)

    assert relative(result.outputs, tmp_path) == ["proto/test_00001_.png", "proto/test_00002_.png"]
    for path in result.outputs:
        assert path.read_bytes() == fake.files[("output", "proto", path.name)]
        assert Image.open(path).format == "PNG"
    assert set(files_under(tmp_path)) == set(result.outputs)  # no temporary files left behind
    assert result.node_outputs == fake.history[result.prompt_id]["outputs"]
    assert [(e.node, e.value, e.max) for e in seen.events] == [(n, v, 3) for n in "1234" for v in (1, 2, 3)]
    assert seen.events[0].percent == pytest.approx(100 / 3) and seen.events[-1].percent == 100
    assert logged(seen, "executing node 3 (ImageInvert)")
    assert logged(seen, "node 4 (SaveImage) produced 2 output item(s)")
    assert logged(seen, "done: 2 file(s)")
    assert fake.queued == {result.prompt_id: 1}
    assert result.submissions == 1 and result.server.comfyui_version == "0.3.64"
    assert 0.04 <= result.timings.execute_s <= result.timings.total_s
    assert client.history(result.prompt_id).status == "success"  # type: ignore[union-attr]
    assert client.history("never-queued") is None
    assert client.queue().running == () and client.queue().pending == ()


def test_recorded_session1_graph_with_upload_animation_video_and_preview(fake: FakeComfyUI, client: ComfyUIClient,
                                                                         seen: SimpleNamespace, tmp_path: Path) -> None:
    source = tmp_path / "test_in.png"
    Image.new("RGB", (64, 48), "red").save(source)
    uploaded = client.upload_image(source, subfolder="proto")
    assert uploaded == UploadedImage(name="test_in.png", subfolder="proto", type="input")
    assert client.upload_image(source, subfolder="proto").name == "test_in.png"  # same bytes: deduplicated

    out = tmp_path / "out"
    result = client.run(session1_workflow(uploaded.input_ref), out)

    assert relative(result.outputs, out) == ["proto/anim_00001_.webp", "proto/test_00001_.png",
                                             "proto/test_00002_.png", "proto/test_00003_.png",
                                             "video/proto_00001_.mp4"]
    assert result.node_outputs["10"]["animated"] == [True]
    assert (out / "video/proto_00001_.mp4").read_bytes() == fake.files[("output", "video", "proto_00001_.mp4")]
    assert result.node_outputs["8"]["images"][0]["type"] == "temp"  # reported, not downloaded
    assert logged(seen, "skipping 3 temp preview file(s)")


def test_custom_pack_outputs_under_gifs_are_downloaded(fake: FakeComfyUI, client: ComfyUIClient,
                                                       tmp_path: Path) -> None:
    fake.install_nodes({"VHS_VideoCombine": VHS_VIDEO_COMBINE})
    result = client.run(video_combine_workflow(), tmp_path)
    assert relative(result.outputs, tmp_path) == ["clips/shot_00001_.mp4"]
    assert result.node_outputs["2"]["gifs"][0]["format"] == "video/h264-mp4"
    assert result.outputs[0].read_bytes() == fake.files[("output", "clips", "shot_00001_.mp4")]


def test_rerun_of_cached_graph_still_downloads(fake: FakeComfyUI, client: ComfyUIClient, seen: SimpleNamespace,
                                               tmp_path: Path) -> None:
    first = client.run(scale_invert_workflow(), tmp_path / "a")
    second = client.run(scale_invert_workflow(), tmp_path / "b")
    assert logged(seen, "cached: node 1 (EmptyImage), node 2 (ImageScale), node 3 (ImageInvert), node 4 (SaveImage)")
    assert relative(second.outputs, tmp_path / "b") == relative(first.outputs, tmp_path / "a")


def test_large_output_is_streamed_intact(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    fake.payload_bytes = 3_000_000
    result = client.run(scale_invert_workflow(), tmp_path)
    assert result.outputs[0].read_bytes() == fake.files[("output", "proto", result.outputs[0].name)]
    assert result.outputs[0].stat().st_size > 3_000_000


def test_system_stats_parsed(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    stats = client.system_stats()
    assert (stats.comfyui_version, stats.os, stats.ram_total) == ("0.3.64", "posix", 25276514304)
    assert stats.python_version.startswith("3.11.7")
    assert [(d.name, d.type, d.index, d.vram_total, d.vram_free) for d in stats.devices] == [
        ("cpu", "cpu", None, 25276514304, 24145346560)]

    fake.system_stats["devices"] = [{"name": "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", "type": "cuda",
                                     "index": 0, "vram_total": 85, "vram_free": 80}]
    assert client.system_stats().devices[0].type == "cuda"


# -- validation before anything is queued ------------------------------------------------------


def _set(node: str, name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda wf: wf[node]["inputs"].__setitem__(name, value)


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], Any], list[str]]] = {
    "unknown class": (lambda wf: wf["3"].__setitem__("class_type", "ImageInvrt"),
                      ["node 3 (ImageInvrt)", "unknown node class", "did you mean 'ImageInvert'"]),
    "missing input": (lambda wf: wf["1"]["inputs"].pop("color"),
                      ["node 1 (EmptyImage) input 'color'", "required input is missing"]),
    "below min": (_set("1", "width", 0), ["node 1 (EmptyImage) input 'width'", "below the minimum 1"]),
    "above max": (_set("1", "height", 20000), ["node 1 (EmptyImage) input 'height'", "above the maximum 16384"]),
    "not in combo": (_set("2", "upscale_method", "bilinera"),
                     ["node 2 (ImageScale) input 'upscale_method'", "'bilinera' is not one of", "'bilinear'?"]),
    "string for INT": (_set("1", "width", "64"), ["node 1 (EmptyImage) input 'width'", "expected INT, got '64'"]),
    "bool for INT": (_set("1", "batch_size", True), ["input 'batch_size'", "expected INT, got True"]),
    "fraction for INT": (_set("2", "width", 31.5), ["input 'width'", "expected INT, got 31.5"]),
    "link to missing node": (_set("3", "image", ["9", 0]), ["node 3 (ImageInvert) input 'image'", "node '9'"]),
    "link to missing output": (_set("3", "image", ["1", 1]), ["output 1 of node 1 (EmptyImage)", "1 output(s)"]),
    "link with int id": (_set("3", "image", [2, 0]), ["input 'image'", "a link must be"]),
    "type mismatch": (_set("4", "filename_prefix", ["1", 0]),
                      ["node 4 (SaveImage) input 'filename_prefix'", "expects STRING", "output 0 is IMAGE"]),
    "no output node": (lambda wf: wf.pop("4"), ["workflow: there is no output node"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_invalid_workflow_is_caught_before_queueing(case: str, fake: FakeComfyUI, client: ComfyUIClient,
                                                    tmp_path: Path) -> None:
    breaks, expected = BROKEN[case]
    workflow = scale_invert_workflow()
    breaks(workflow)
    with pytest.raises(WorkflowValidationError) as caught:
        client.run(workflow, tmp_path)
    for text in expected:
        assert text in str(caught.value)
    assert fake.prompt_posts == 0 and not fake.queued


def test_every_problem_is_listed(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    workflow = scale_invert_workflow()
    for breaks in ("below min", "not in combo", "missing input", "link to missing node"):
        BROKEN[breaks][0](workflow)
    with pytest.raises(WorkflowValidationError) as caught:
        client.validate(workflow)
    assert [(p.node_id, p.class_type, p.input_name) for p in caught.value.problems] == [
        ("1", "EmptyImage", "width"), ("1", "EmptyImage", "color"), ("2", "ImageScale", "upscale_method"),
        ("3", "ImageInvert", "image")]


def test_missing_custom_pack_is_named(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        client.run(video_combine_workflow(), tmp_path, required_packs={"VHS_VideoCombine": "ComfyUI-VideoHelperSuite"})
    assert ("node 2 (VHS_VideoCombine): node class 'VHS_VideoCombine' is not installed on this server; "
            "install the custom node pack 'ComfyUI-VideoHelperSuite'") in str(caught.value)
    assert not fake.queued


def test_catalogue_is_refetched_before_reporting_a_problem(fake: FakeComfyUI, client: ComfyUIClient) -> None:
    client.validate(scale_invert_workflow())  # caches /object_info
    fake.install_nodes({"VHS_VideoCombine": VHS_VIDEO_COMBINE})  # the pack gets installed afterwards
    client.validate(video_combine_workflow())


def test_ui_format_is_recognised(client: ComfyUIClient) -> None:
    with pytest.raises(WorkflowValidationError, match="editor \\(UI\\) format"):
        client.validate({"nodes": [], "links": [], "version": 0.4})


# -- errors from the server --------------------------------------------------------------------


def _missing_image_workflow() -> dict[str, Any]:
    # LoadImage's file check happens on the server (VALIDATE_INPUTS), as in session2.log
    workflow = session1_workflow("does_not_exist.png")
    return {k: workflow[k] for k in ("1", "2", "3", "4", "5", "6")}


def test_server_side_rejection_names_node_and_input(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    with pytest.raises(PromptRejected) as caught:
        client.run(_missing_image_workflow(), tmp_path)
    message = str(caught.value)
    assert "Prompt outputs failed validation" in message
    assert "node 2 (LoadImage) input 'image': Custom validation failed for node: " \
           "image - Invalid image file: does_not_exist.png [custom_validation_failed]" in message
    assert caught.value.node_errors["2"]["dependent_outputs"] == ["6"]
    assert not fake.queued


def test_partially_accepted_prompt_is_withdrawn(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    workflow = _missing_image_workflow()
    workflow["7"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ok"}}
    with pytest.raises(PromptRejected, match="node 2 \\(LoadImage\\) input 'image'") as caught:
        client.run(workflow, tmp_path, prompt_id="partial")
    assert caught.value.prompt_id == "partial"
    assert fake.queue_deletes == ["partial"] and {"prompt_id": "partial"} in fake.interrupts


def test_execution_error_raises_execution_failed(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    fake.fail_node = "3"
    with pytest.raises(ExecutionFailed) as caught:
        client.run(scale_invert_workflow(), tmp_path)
    error = caught.value
    assert (error.node_id, error.node_type, error.exception_type) == ("3", "ImageInvert", "Exception")
    assert "Saving image outside the output folder is not allowed" in error.exception_message
    assert "failed in node 3 (ImageInvert): Exception: **** ERROR" in str(error)
    assert files_under(tmp_path) == []


def test_interrupt_from_elsewhere_raises_interrupted(fake: FakeComfyUI, tmp_path: Path) -> None:
    fake.render_time, fake.progress_steps = 30, 100  # it would outlast the test unless interrupted
    elsewhere = ComfyUIClient(fake.url)
    with ComfyUIClient(fake.url, poll_interval=0.02, progress=on_first_progress(elsewhere.interrupt)) as client:
        with pytest.raises(Interrupted, match="interrupted on the server"):
            client.run(scale_invert_workflow(), tmp_path, timeout=60)
    assert fake.interrupts == [{}]  # a global interrupt, from the other client


def test_unreachable_server_raises_unavailable_after_the_reconnect_window() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert ComfyUIClient(f"http://127.0.0.1:{port}").reconnect_window == 120  # a real restart takes a minute or two
    client = ComfyUIClient(f"http://127.0.0.1:{port}", reconnect_window=0.3, backoff=0.1)
    with pytest.raises(ComfyUIUnavailable, match=f"http://127.0.0.1:{port}/system_stats \\(tried [23] time\\(s\\) "
                                                 "within the 0.3 s reconnect window\\): connection refused"):
        client.system_stats()


# -- connection trouble ------------------------------------------------------------------------


def test_dropped_websocket_reconnects(fake: FakeComfyUI, client: ComfyUIClient, seen: SimpleNamespace,
                                      tmp_path: Path) -> None:
    fake.render_time = 0.2  # long enough that the later nodes run after the reconnect
    fake.drop_ws_after = 4  # status, status, status, execution_start
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert len(result.outputs) == 2 and fake.ws_connections == 2
    assert logged(seen, "WebSocket dropped") and logged(seen, "WebSocket reconnected")
    assert logged(seen, "executing node 4 (SaveImage)")  # events arrive on the new socket


def test_finish_missed_while_disconnected_is_found_at_once(fake: FakeComfyUI, seen: SimpleNamespace,
                                                           tmp_path: Path) -> None:
    fake.drop_ws_before_done = True
    # this poll interval puts the next routine check 100 s away, past the run's deadline: only asking
    # the server right after the reconnect can finish the run in time
    with ComfyUIClient(fake.url, backoff=0.02, poll_interval=5, log=seen.lines.append) as client:
        result = client.run(scale_invert_workflow(), tmp_path, timeout=30)
    assert len(result.outputs) == 2
    assert logged(seen, "WebSocket reconnected")


def test_websocket_gone_for_good_falls_back_to_polling(fake: FakeComfyUI, client: ComfyUIClient,
                                                       seen: SimpleNamespace, tmp_path: Path) -> None:
    fake.drop_ws_after, fake.disable_ws_on_drop = 4, True
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert len(result.outputs) == 2 and fake.ws_connections == 1
    assert logged(seen, "cannot reconnect") and logged(seen, "polling /history")


def test_no_websocket_at_all_polls(fake: FakeComfyUI, client: ComfyUIClient, seen: SimpleNamespace,
                                   tmp_path: Path) -> None:
    fake.ws_enabled = False
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert len(result.outputs) == 2 and logged(seen, "no WebSocket")


def test_silent_websocket_is_noticed(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    fake.mute_ws_after = 3  # open but never says the prompt finished
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert len(result.outputs) == 2


def test_server_restart_mid_run_resubmits_once(fake: FakeComfyUI, client: ComfyUIClient, seen: SimpleNamespace,
                                               tmp_path: Path) -> None:
    fake.restart_mid_run, fake.restart_downtime = 1, 0.1
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert result.submissions == 2 and fake.queued == {result.prompt_id: 2}
    assert logged(seen, "resubmitting it once with the same prompt_id")
    assert [p.read_bytes() for p in result.outputs] == [fake.files[("output", "proto", p.name)] for p in result.outputs]


def test_second_restart_fails_clearly(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    fake.restart_mid_run = 2
    with pytest.raises(PromptLost, match="vanished from the server again"):
        client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert sum(fake.queued.values()) == 2


@pytest.mark.parametrize("trouble", ["answer lost after queueing", "request lost before queueing", "answer too slow"])
def test_retried_post_never_queues_twice(trouble: str, fake: FakeComfyUI, client: ComfyUIClient,
                                         seen: SimpleNamespace, tmp_path: Path) -> None:
    if trouble == "answer lost after queueing":
        fake.drop_prompt_responses = 1
    elif trouble == "request lost before queueing":
        fake.drop_prompt_requests = 1
    else:
        fake.prompt_response_delay, client.timeout = 1.5, 0.5
    result = client.run(scale_invert_workflow(), tmp_path, timeout=5)
    assert fake.queued == {result.prompt_id: 1} and len(result.outputs) == 2
    assert fake.prompt_posts == (2 if trouble == "request lost before queueing" else 1)
    assert logged(seen, "checking whether it was queued anyway")


# -- time limits and cancellation --------------------------------------------------------------


def test_slow_queue_shows_in_timings(fake: FakeComfyUI, client: ComfyUIClient, tmp_path: Path) -> None:
    fake.queue_delay = 0.3  # the fake runs nothing before then: a lower bound, whatever the load
    timings = client.run(scale_invert_workflow(), tmp_path).timings
    assert timings.queue_s >= 0.28 and timings.queue_s + timings.execute_s <= timings.total_s


def test_timeout_interrupts_the_running_prompt(fake: FakeComfyUI, tmp_path: Path) -> None:
    # it would outlast the test; a step every 10 ms, so it is running (not queued) long before its deadline even
    # on a loaded box (with 0.3 s steps and a 1 s deadline, CI once timed it out before its first step)
    fake.render_time, fake.progress_steps = 60, 6000
    ran = threading.Event()
    with ComfyUIClient(fake.url, poll_interval=0.02, progress=lambda event: ran.set()) as client:
        with pytest.raises(ComfyUITimeout, match="did not finish within 3s"):
            client.run(scale_invert_workflow(), tmp_path, prompt_id="slow-1", timeout=3)
    assert ran.is_set() and {"prompt_id": "slow-1"} in fake.interrupts


def test_timeout_while_queued_removes_it_from_the_queue(fake: FakeComfyUI, client: ComfyUIClient,
                                                        tmp_path: Path) -> None:
    fake.queue_delay = 5
    with pytest.raises(ComfyUITimeout):
        client.run(scale_invert_workflow(), tmp_path, prompt_id="waiting-1", timeout=0.2)
    assert fake.queue_deletes == ["waiting-1"] and "waiting-1" not in client.queue()


def test_cancel_from_another_thread(fake: FakeComfyUI, tmp_path: Path) -> None:
    fake.render_time, fake.progress_steps = 30, 100  # it would outlast the test unless cancelled
    client = ComfyUIClient(fake.url, poll_interval=0.02, progress=on_first_progress(lambda: client.cancel()))
    with pytest.raises(Interrupted, match="cancelled by the caller") as caught:
        client.run(scale_invert_workflow(), tmp_path, timeout=60)
    assert {"prompt_id": caught.value.prompt_id} in fake.interrupts


def test_caller_giving_up_stops_the_prompt(fake: FakeComfyUI, tmp_path: Path) -> None:
    def give_up(event: object) -> None:
        raise KeyboardInterrupt

    fake.render_time, fake.progress_steps = 5, 50
    with ComfyUIClient(fake.url, backoff=0.02, poll_interval=0.02, progress=give_up) as client:
        with pytest.raises(KeyboardInterrupt):
            client.run(scale_invert_workflow(), tmp_path, prompt_id="abandoned")
    assert {"prompt_id": "abandoned"} in fake.interrupts and fake.queue_deletes == ["abandoned"]


def test_one_run_at_a_time_per_client(fake: FakeComfyUI, tmp_path: Path) -> None:
    fake.render_time, fake.progress_steps = 30, 100
    running = threading.Event()
    client = ComfyUIClient(fake.url, poll_interval=0.02, progress=lambda event: running.set())
    outcome: list[BaseException] = []

    def first_run() -> None:
        try:
            client.run(scale_invert_workflow(), tmp_path / "a", timeout=60)
        except ComfyUIError as exc:
            outcome.append(exc)

    first = threading.Thread(target=first_run)
    first.start()
    assert running.wait(timeout=30)
    with pytest.raises(ComfyUIError, match="already in progress"):
        client.run(scale_invert_workflow(), tmp_path / "b")
    client.cancel()
    first.join()
    assert [type(exc) for exc in outcome] == [Interrupted]


# -- never trust server paths ------------------------------------------------------------------


@pytest.mark.parametrize("subfolder, filename", [
    ("../../escape", "x.png"),
    ("", "../x.png"),
    ("/tmp", "x.png"),
    ("", "nested/x.png"),
    ("..\\..", "x.png"),
    ("C:\\Windows", "x.png"),
    ("", ".."),
])
def test_unsafe_output_path_is_refused(subfolder: str, filename: str, fake: FakeComfyUI, client: ComfyUIClient,
                                       tmp_path: Path) -> None:
    fake.unsafe_output = (subfolder, filename)
    workspace = tmp_path / "workspace"
    with pytest.raises(UnsafeOutputPath, match=re.escape(f"filename={filename!r}")):
        client.run(scale_invert_workflow(), workspace / "out")
    assert files_under(tmp_path) == [] and fake.views == []

