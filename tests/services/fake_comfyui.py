"""An in-process fake of a ComfyUI 0.3.64 server, shaped after the recordings in tests/data/comfyui.

It serves the routes the client uses (also under /api), validates prompts against the recorded
/object_info the way execution.validate_prompt does, and "executes" a queued prompt by emitting
the recorded WebSocket sequence (status, execution_start, execution_cached, progress_state +
executing per node, progress, executed, execution_success, status, executing{node: null}) while
writing tiny files for output nodes and a history entry in the recorded shape.

Usage::

    with FakeComfyUI(render_time=0.05) as fake:
        client = ComfyUIClient(fake.url)
        fake.queue_delay = 0.3        # knobs may be changed between runs

Knobs (attributes): render_time, progress_steps, queue_delay, fail_node (+ fail_exception_type,
fail_message), drop_ws_after, disable_ws_on_drop, drop_ws_before_done, mute_ws_after, ws_enabled,
restart_mid_run, restart_downtime, port, drop_prompt_requests, drop_prompt_responses,
prompt_response_delay, unsafe_output, payload_bytes, video_frames (+ video_size), system_stats,
hostile (route -> a hostile.py mode answered instead), ws_inject (raw text frames sent after
execution_start); install_nodes() adds classes.
Observations: queued (Counter of prompt id -> times queued), prompt_posts, interrupts,
queue_deletes, ws_connections, views, files, history.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import json
import mimetypes
import random
import string
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

from anime_pipeline.render.workflows import custom_node_specs, load_template
from tests.services.hostile import Hostile, middleware

DATA = Path(__file__).resolve().parents[1] / "data" / "comfyui"

SYSTEM_STATS: dict[str, Any] = {  # protocols.md §1.7, recorded on --cpu
    "system": {
        "os": "posix", "ram_total": 25276514304, "ram_free": 24145346560, "comfyui_version": "0.3.64",
        "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
        "required_templates_version": "0.1.95", "python_version": "3.11.7 (main, Dec  8 2023, 18:56:58) [GCC 11.4.0]",
        "pytorch_version": "2.13.0+cu130", "embedded_python": False, "argv": ["main.py", "--cpu"],
    },
    "devices": [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 25276514304,
                 "vram_free": 24145346560, "torch_vram_total": 25276514304, "torch_vram_free": 24145346560}],
}

# output class -> (ui key, extension, animated); what the real savers put in history (§1.4)
SAVERS: dict[str, tuple[str, str, bool]] = {
    "SaveImage": ("images", "png", False),
    "PreviewImage": ("images", "png", False),
    "SaveAnimatedWEBP": ("images", "webp", True),
    "SaveAnimatedPNG": ("images", "png", True),
    "SaveWEBM": ("images", "webm", True),
    "SaveVideo": ("images", "mp4", True),
    "VHS_VideoCombine": ("gifs", "mp4", False),
}
MAGIC = {"webp": b"RIFF\x00\x00\x00\x00WEBPVP8L", "webm": b"\x1aE\xdf\xa3", "mp4": b"\x00\x00\x00\x18ftypmp42",
         "gif": b"GIF89a"}
VIDEO_ENCODERS = {"mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-threads", "1", "-f", "mp4"], "gif": ["-f", "gif"]}


@dataclass
class _Item:
    number: int | float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    ready_at: float

    def as_json(self) -> list[Any]:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    request: web.Request
    sent: int = 0
    muted: bool = False


@dataclass
class FakeComfyUI:
    render_time: float = 0.05  # seconds per prompt, spread over the nodes that are not cached
    progress_steps: int = 0  # `progress` messages per executed node
    queue_delay: float = 0.0  # a prompt stays pending this long before it may run
    fail_node: str | None = None
    fail_exception_type: str = "Exception"
    fail_message: str = "**** ERROR: Saving image outside the output folder is not allowed."
    drop_ws_after: int | None = None  # abort a socket after it was sent N messages (fires once)
    disable_ws_on_drop: bool = False  # ... and refuse new sockets from then on
    drop_ws_before_done: bool = False  # abort the socket instead of sending the final executing{node: null}
    mute_ws_after: int | None = None  # stop sending to a socket after N messages, keeping it open (once)
    ws_enabled: bool = True  # False: /ws answers 404, like a proxy without WebSocket support
    restart_mid_run: int = 0  # this many times, "restart" while executing a prompt's first node
    restart_downtime: float = 0.0  # after a restart, answer 503 for this long
    drop_prompt_requests: int = 0  # abort the next N POST /prompt before queueing anything
    drop_prompt_responses: int = 0  # queue the next N POST /prompt, then abort without answering
    prompt_response_delay: float = 0.0  # queue, then wait this long before answering POST /prompt
    unsafe_output: tuple[str, str] | None = None  # (subfolder, filename) reported for every output file
    payload_bytes: int = 0  # padding added to every output file
    video_frames: int = 0  # > 0: mp4/gif outputs are real clips of this many frames, drawn from the saver's inputs
    video_size: tuple[int, int] = (64, 48)
    system_stats: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SYSTEM_STATS))
    hostile: dict[str, Hostile] = field(default_factory=dict)  # route -> hostile answer (tests/services/hostile.py)
    ws_inject: list[str] = field(default_factory=list)  # raw text frames sent to the client after execution_start
    port: int = 0  # 0: any free port; a fixed one for a server restarted at the same URL
    # the first prompt waits (up to 60 s) until this is set before it executes: another server's `started`,
    # so two servers are provably busy at the same time
    first_waits_for: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)  # set when a prompt starts executing

    queued: Counter[str] = field(default_factory=Counter)
    prompt_posts: int = 0
    interrupts: list[dict[str, Any] | None] = field(default_factory=list)
    queue_deletes: list[str] = field(default_factory=list)
    ws_connections: int = 0
    views: list[tuple[str, str, str]] = field(default_factory=list)
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)  # (type, subfolder, filename)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.catalogue: dict[str, Any] = json.loads((DATA / "object_info.json").read_text())
        self.inputs: dict[str, bytes] = {}  # "subfolder/name" -> bytes, as LoadImage refers to them
        self.url = ""
        self._pending: list[_Item] = []
        self._running: _Item | None = None
        self._last_node: str | None = None
        self._number = 0
        self._counters: Counter[tuple[str, str, str]] = Counter()
        self._cache: dict[str, dict[str, Any]] = {}  # node signature -> ui output
        self._sockets: dict[str, _Socket] = {}
        self._down_until = 0.0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-comfyui", daemon=True)

    # lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeComfyUI:
        self._thread.start()
        port = self._call(self._start())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def install_nodes(self, specs: dict[str, Any]) -> None:
        """Add node classes to /object_info, as installing a custom node pack would."""
        self.catalogue.update(specs)

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _start(self) -> int:
        app = web.Application(middlewares=[self._downtime, middleware(self.hostile)],
                              client_max_size=64 * 1024 * 1024)
        for prefix in ("", "/api"):
            app.router.add_get(prefix + "/system_stats", self._system_stats)
            app.router.add_get(prefix + "/object_info", self._object_info)
            app.router.add_get(prefix + "/object_info/{cls}", self._object_info)
            app.router.add_get(prefix + "/prompt", self._get_prompt)
            app.router.add_post(prefix + "/prompt", self._post_prompt)
            app.router.add_get(prefix + "/queue", self._get_queue)
            app.router.add_post(prefix + "/queue", self._post_queue)
            app.router.add_get(prefix + "/history", self._get_history)
            app.router.add_get(prefix + "/history/{prompt_id}", self._get_history)
            app.router.add_post(prefix + "/history", self._post_history)
            app.router.add_post(prefix + "/interrupt", self._interrupt)
            app.router.add_post(prefix + "/upload/image", self._upload)
            app.router.add_get(prefix + "/view", self._view)
            app.router.add_get(prefix + "/ws", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self._wake = asyncio.Event()
        self._interrupt_flag = asyncio.Event()
        self._worker = asyncio.create_task(self._work())
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        self._worker.cancel()
        for sock in list(self._sockets.values()):
            _hang_up(sock.request)
        await self._runner.cleanup()

    @web.middleware
    async def _downtime(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if time.monotonic() < self._down_until:
            raise web.HTTPServiceUnavailable(text="restarting")
        return await handler(request)

    # HTTP routes -------------------------------------------------------------------------------

    async def _system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.system_stats)

    async def _object_info(self, request: web.Request) -> web.Response:
        cls = request.match_info.get("cls")
        if cls is None:
            return web.json_response(self.catalogue)
        return web.json_response({cls: self.catalogue[cls]} if cls in self.catalogue else {})

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self._queue_info())

    async def _post_prompt(self, request: web.Request) -> web.Response:
        self.prompt_posts += 1
        if self.drop_prompt_requests > 0:
            self.drop_prompt_requests -= 1
            return _abort(request)
        body = await request.json()
        number = self._number  # the real server counts every POST, valid or not
        self._number += 1
        if "prompt" not in body:
            return _rejected({"type": "no_prompt", "message": "No prompt provided",
                              "details": "No prompt provided", "extra_info": {}}, {})
        prompt = body["prompt"]
        prompt_id = str(body.get("prompt_id") or _uuid())
        error, good_outputs, node_errors = self._validate_prompt(prompt)
        if error is not None:
            return _rejected(error, node_errors)
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        # the real server does not deduplicate prompt ids: a second POST queues the work again
        self._pending.append(_Item(number, prompt_id, prompt, extra, good_outputs, time.monotonic() + self.queue_delay))
        self.queued[prompt_id] += 1
        self._wake.set()
        await self._emit("status", {"status": self._queue_info()})
        if self.drop_prompt_responses > 0:
            self.drop_prompt_responses -= 1
            return _abort(request)
        await asyncio.sleep(self.prompt_response_delay)
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def _get_queue(self, request: web.Request) -> web.Response:
        running = [self._running.as_json()] if self._running else []
        return web.json_response({"queue_running": running, "queue_pending": [i.as_json() for i in self._pending]})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self._pending.clear()
        for prompt_id in body.get("delete", []):
            self.queue_deletes.append(prompt_id)
            self._pending = [i for i in self._pending if i.prompt_id != prompt_id]  # only pending items
        await self._emit("status", {"status": self._queue_info()})
        return web.Response()

    async def _get_history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info.get("prompt_id")
        if prompt_id is None:
            return web.json_response(self.history)
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.history.clear()
        for prompt_id in body.get("delete", []):
            self.history.pop(prompt_id, None)
        return web.Response()

    async def _interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.interrupts.append(body)
        target = body.get("prompt_id") if isinstance(body, dict) else None
        if self._running and target in (None, self._running.prompt_id):
            self._interrupt_flag.set()
        return web.Response()

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        subfolder = str(form.get("subfolder", ""))
        overwrite = str(form.get("overwrite", "")) in ("true", "1")
        content = image.file.read()
        name = image.filename
        stem, dot, ext = name.rpartition(".")
        counter = 1
        while not overwrite and self.inputs.get(_ref(subfolder, name), content) != content:
            name = f"{stem} ({counter}){dot}{ext}"  # a different file of that name exists: rename
            counter += 1
        self.inputs[_ref(subfolder, name)] = content
        return web.json_response({"name": name, "subfolder": subfolder, "type": "input"})

    async def _view(self, request: web.Request) -> web.Response:
        key = (request.query.get("type", "output"), request.query.get("subfolder", ""), request.query["filename"])
        self.views.append(key)
        if key not in self.files:
            return web.Response(status=404)
        content_type = mimetypes.guess_type(key[2])[0] or "application/octet-stream"
        return web.Response(body=self.files[key], content_type=content_type,
                            headers={"Content-Disposition": f'filename="{key[2]}"'})

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.ws_enabled:
            return web.Response(status=404)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.query.get("clientId") or _uuid().replace("-", "")
        self._sockets[sid] = _Socket(ws, request)
        self.ws_connections += 1
        try:
            await self._emit("status", {"status": self._queue_info(), "sid": sid}, sid)
            if self._running and self._running.extra_data.get("client_id") == sid and self._last_node:
                # server.py re-announces the running node to a reconnecting client, without prompt_id
                await self._emit("executing", {"node": self._last_node}, sid)
            async for message in ws:
                if message.type == WSMsgType.TEXT and '"feature_flags"' in message.data:
                    await ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
        finally:
            self._sockets.pop(sid, None)  # unconditionally, as server.py does
        return ws

    # messages ----------------------------------------------------------------------------------

    def _queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": len(self._pending) + (1 if self._running else 0)}}

    async def _emit(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        targets = list(self._sockets.values()) if sid is None else [self._sockets[sid]] if sid in self._sockets else []
        for sock in targets:
            await self._send(sock, {"type": event, "data": data})

    async def _send(self, sock: _Socket, message: dict[str, Any]) -> None:
        if sock.muted or sock.ws.closed:
            return
        try:
            await sock.ws.send_str(json.dumps(message))
        except ConnectionError:
            return
        sock.sent += 1
        if self.mute_ws_after is not None and sock.sent >= self.mute_ws_after:
            self.mute_ws_after = None
            sock.muted = True
        if self.drop_ws_after is not None and sock.sent >= self.drop_ws_after:
            self.drop_ws_after = None
            self.ws_enabled = not self.disable_ws_on_drop
            _hang_up(sock.request)

    # validation (execution.validate_prompt) ------------------------------------------------------

    def _validate_prompt(self, prompt: Any) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
        for node_id, node in prompt.items():
            class_type = node.get("class_type") if isinstance(node, dict) else None
            if class_type is None:
                return _error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                              f"Node ID '#{node_id}'"), [], {}
            if class_type not in self.catalogue:
                return _error("invalid_prompt", f"Cannot execute because node {class_type} does not exist.",
                              f"Node ID '#{node_id}'"), [], {}
        outputs = [n for n, node in prompt.items() if self.catalogue[node["class_type"]]["output_node"]]
        if not outputs:
            return _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
        validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
        good: list[str] = []
        node_errors: dict[str, Any] = {}
        for output in outputs:
            if self._validate_node(prompt, output, validated):
                good.append(output)
                continue
            for node_id, (ok, reasons) in validated.items():
                if not ok and reasons:
                    entry = node_errors.setdefault(node_id, {"errors": reasons, "dependent_outputs": [],
                                                             "class_type": prompt[node_id]["class_type"]})
                    entry["dependent_outputs"].append(output)
        if not good:  # 0.3.64 sends empty details here (session2.log)
            return _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", ""), [], node_errors
        return None, good, node_errors

    def _validate_node(self, prompt: dict[str, Any], node_id: str, validated: dict[str, Any]) -> bool:
        if node_id in validated:
            return validated[node_id][0]
        node = prompt[node_id]
        spec = self.catalogue[node["class_type"]]["input"]
        inputs = node.get("inputs", {})
        errors: list[dict[str, Any]] = []
        valid = True
        for name, info in {**spec.get("required", {}), **spec.get("optional", {})}.items():
            if name not in inputs:
                if name in spec.get("required", {}):
                    errors.append(_reason("required_input_missing", "Required input is missing", name, name))
                continue
            value = inputs[name]
            if isinstance(value, list):
                error, upstream_ok = self._check_link(prompt, name, info, value, validated)
                valid = valid and upstream_ok
            else:
                error = self._check_literal(node["class_type"], name, info, value)
            if error:
                errors.append(error)
        validated[node_id] = (valid and not errors, errors)
        return validated[node_id][0]

    def _check_link(self, prompt: dict[str, Any], name: str, info: list[Any], value: list[Any],
                    validated: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        if len(value) != 2:
            return _reason("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                           name, name, input_config=info, received_value=value), True
        source, slot = value
        try:
            received = self.catalogue[prompt[source]["class_type"]]["output"][slot]
        except (KeyError, IndexError, TypeError) as exc:
            return _reason("exception_during_inner_validation", "Exception when validating inner node", str(exc),
                           name, input_config=info, linked_node=value), True
        expected = "COMBO" if isinstance(info[0], list) else info[0]
        if "*" not in (received, expected) and not set(received.split(",")) & set(expected.split(",")):
            return _reason("return_type_mismatch", "Return type mismatch between linked nodes",
                           f"{name}, received_type({received}) mismatch input_type({expected})", name,
                           input_config=info, received_type=received, linked_node=value), True
        return None, self._validate_node(prompt, source, validated)

    def _check_literal(self, class_type: str, name: str, info: list[Any], value: Any) -> dict[str, Any] | None:
        kind, extra = info[0], (info[1] if len(info) > 1 else {})
        converters = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
        if isinstance(kind, str) and kind in converters:
            try:
                value = converters[kind](value)
            except (TypeError, ValueError) as exc:
                return _reason("invalid_input_type", f"Failed to convert an input value to a {kind} value",
                               f"{name}, {value}, {exc}", name, input_config=info, received_value=value)
            if "min" in extra and value < extra["min"]:
                return _reason("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name,
                               name, input_config=info, received_value=value)
            if "max" in extra and value > extra["max"]:
                return _reason("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name,
                               name, input_config=info, received_value=value)
            return None
        if class_type in ("LoadImage", "LoadImageMask") and name == "image":  # VALIDATE_INPUTS replaces the combo
            if value in self.inputs:
                return None
            return _reason("custom_validation_failed", "Custom validation failed for node",
                           f"image - Invalid image file: {value}", "image")
        options = kind if isinstance(kind, list) else extra.get("options") if kind == "COMBO" else None
        if options is None or value in options:
            return None
        listing = f"(list of length {len(options)})" if len(options) > 20 else str(options)
        return _reason("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}", name,
                       input_config=info if len(options) <= 20 else None, received_value=value)

    # execution ---------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            item = await self._next_item()
            self._running = item
            self._interrupt_flag.clear()
            await self._emit("status", {"status": self._queue_info()})
            try:
                await self._execute(item)
            finally:
                self._running = None
                self._last_node = None

    async def _next_item(self) -> _Item:
        while True:
            now = time.monotonic()
            ready = [i for i in self._pending if i.ready_at <= now]
            if ready:
                item = min(ready, key=lambda i: i.number)
                self._pending.remove(item)
                return item
            wait = min((i.ready_at for i in self._pending), default=now + 3600) - now
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                pass

    async def _execute(self, item: _Item) -> None:
        prompt_id, prompt, sid = item.prompt_id, item.prompt, item.extra_data.get("client_id")
        messages: list[list[Any]] = []

        async def event(kind: str, data: dict[str, Any], broadcast: bool = False) -> None:
            data = {"prompt_id": prompt_id, **data, "timestamp": int(time.time() * 1000)}
            messages.append([kind, data])
            await self._emit(kind, data, None if broadcast else sid)

        order = _execution_order(prompt, item.outputs)
        signatures = {n: _signature(prompt, n) for n in order}
        cached = [n for n in order if signatures[n] in self._cache]
        await event("execution_start", {})
        self.started.set()
        if self.first_waits_for is not None:
            waited, self.first_waits_for = self.first_waits_for, None
            if not await asyncio.get_running_loop().run_in_executor(None, waited.wait, 60):
                raise RuntimeError("fake ComfyUI: the other server never started a prompt")
        for raw in self.ws_inject:
            if sid in self._sockets:
                await self._sockets[sid].ws.send_str(raw)
        await event("execution_cached", {"nodes": cached})
        fresh = [n for n in order if n not in cached]
        node_time = self.render_time / max(1, len(fresh))
        outputs: dict[str, Any] = {}
        executed: list[str] = []
        for node_id in order:
            class_type = prompt[node_id]["class_type"]
            if node_id in cached:
                outputs[node_id] = self._cache[signatures[node_id]]
                if outputs[node_id]:  # cached output nodes still report `executed`, without `executing`
                    await self._emit("executed", _executed(node_id, outputs[node_id], prompt_id), sid)
                continue
            self._last_node = node_id
            await self._emit("progress_state", _progress_state(prompt_id, node_id), sid)
            await self._emit("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id}, sid)
            if self.restart_mid_run > 0:
                self.restart_mid_run -= 1
                await self._restart()
                return
            if node_id == self.fail_node:
                await event("execution_error", {
                    "node_id": node_id, "node_type": class_type, "executed": executed,
                    "exception_message": self.fail_message, "exception_type": self.fail_exception_type,
                    "traceback": ['  File "/srv/ComfyUI/execution.py", line 496, in execute\n'],
                    "current_inputs": {}, "current_outputs": []})
                return await self._finish(item, {}, messages, "error")
            if not await self._render(prompt_id, node_id, node_time, sid):
                await event("execution_interrupted", {"node_id": node_id, "node_type": class_type,
                                                      "executed": executed}, broadcast=True)
                return await self._finish(item, {}, messages, "error")
            ui = self._save_outputs(prompt, node_id)
            outputs[node_id] = self._cache[signatures[node_id]] = ui
            executed.append(node_id)
            if ui:
                await self._emit("executed", _executed(node_id, ui, prompt_id), sid)
        await event("execution_success", {})
        await self._finish(item, {n: ui for n, ui in outputs.items() if ui}, messages, "success")

    async def _render(self, prompt_id: str, node_id: str, seconds: float, sid: str | None) -> bool:
        """Sleep for the node's share of the render, reporting progress; False when interrupted."""
        steps = self.progress_steps
        for step in range(1, max(steps, 1) + 1):
            try:
                await asyncio.wait_for(self._interrupt_flag.wait(), seconds / max(steps, 1))
                return False
            except asyncio.TimeoutError:
                pass
            if steps:
                progress = {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id}
                await self._emit("progress", progress, sid)
        return True

    async def _finish(self, item: _Item, outputs: dict[str, Any], messages: list[list[Any]], status: str) -> None:
        # main.py order: execution_success (sent above) -> task_done writes history -> status -> executing null
        self.history[item.prompt_id] = {
            "prompt": item.as_json(),
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in outputs},
        }
        self._running = None
        await self._emit("status", {"status": self._queue_info()})
        sid = item.extra_data.get("client_id")
        if self.drop_ws_before_done and sid in self._sockets:
            self.drop_ws_before_done = False
            return _hang_up(self._sockets[sid].request)
        await self._emit("executing", {"node": None, "prompt_id": item.prompt_id}, sid)

    async def _restart(self) -> None:
        """Lose everything held in memory, as a process restart does, and drop every socket."""
        self._pending.clear()
        self.history.clear()
        self._cache.clear()
        self._running = None
        self._number = 0
        self._down_until = time.monotonic() + self.restart_downtime
        for sock in list(self._sockets.values()):
            _hang_up(sock.request)

    def _save_outputs(self, prompt: dict[str, Any], node_id: str) -> dict[str, Any]:
        node = prompt[node_id]
        saver = SAVERS.get(node["class_type"])
        if saver is None:
            return {}
        key, ext, animated = saver
        inputs = node.get("inputs", {})
        if node["class_type"] == "PreviewImage":
            kind, subfolder = "temp", ""
            base = "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))
        else:
            kind = "output"
            default = self.catalogue[node["class_type"]]["input"]["required"]["filename_prefix"][1].get("default")
            subfolder, _, base = str(inputs.get("filename_prefix", default)).rpartition("/")
        if node["class_type"] == "VHS_VideoCombine":
            ext = str(inputs.get("format", "video/h264-mp4")).rpartition("-")[2].rpartition("/")[2]
        entries = []
        for index in range(1 if animated or key == "gifs" else _batch(prompt, node_id)):
            self._counters[(kind, subfolder, base)] += 1
            filename = f"{base}_{self._counters[(kind, subfolder, base)]:05}_.{ext}"
            sub, name = self.unsafe_output or (subfolder, filename)
            if self.video_frames and ext in VIDEO_ENCODERS:  # same graph, same bytes: a re-run reproduces them
                self.files[(kind, sub, name)] = _video(ext, _signature(prompt, node_id), self.video_frames,
                                                       self.video_size)
            else:
                self.files[(kind, sub, name)] = self._content(ext, f"{node_id}/{sub}/{name}/{index}")
            entries.append({"filename": name, "subfolder": sub, "type": kind})
        if key == "gifs":
            for entry in entries:
                entry.update(format=inputs.get("format"), frame_rate=inputs.get("frame_rate"),
                             workflow=entry["filename"].rsplit(".", 1)[0] + ".png",
                             fullpath=f"/srv/ComfyUI/output/{entry['subfolder']}/{entry['filename']}")
        return {key: entries, "animated": [True]} if animated else {key: entries}

    def _content(self, ext: str, seed: str) -> bytes:
        digest = hashlib.sha256(seed.encode()).digest()
        padding = digest * (self.payload_bytes // len(digest) + 1)
        if ext != "png":
            return MAGIC.get(ext, b"") + digest + padding[: self.payload_bytes]
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), tuple(digest[:3])).save(buffer, format="PNG")
        return buffer.getvalue() + padding[: self.payload_bytes]  # bytes after IEND: still a valid PNG


def _video(ext: str, seed: str, frames: int, size: tuple[int, int]) -> bytes:
    """A decodable clip whose colours follow the seed and whose bar moves, so frames differ."""
    width, height = size
    digest = hashlib.sha256(seed.encode()).digest()
    clip = np.empty((frames, height, width, 3), dtype=np.uint8)
    clip[:] = np.frombuffer(digest[:3], dtype=np.uint8)
    for index in range(frames):
        x = index * width // frames
        clip[index, :, x:x + max(2, width // 8)] = np.frombuffer(digest[3:6], dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"clip.{ext}"
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{width}x{height}", "-r", "8", "-i", "pipe:0", "-fflags", "+bitexact",
                   "-flags:v", "+bitexact", "-map_metadata", "-1", *VIDEO_ENCODERS[ext], str(out)]
        subprocess.run(command, input=clip.tobytes(), check=True, capture_output=True)
        return out.read_bytes()


def _hang_up(request: web.Request) -> None:
    """Close the connection without a word, as a dropped network or a killed server does."""
    if request.transport is not None:
        request.transport.abort()


def _abort(request: web.Request) -> web.Response:
    _hang_up(request)
    return web.Response()


def _error(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _rejected(error: dict[str, Any], node_errors: dict[str, Any]) -> web.Response:
    return web.json_response({"error": error, "node_errors": node_errors}, status=400)


def _reason(kind: str, message: str, details: str, input_name: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {"input_name": input_name, **extra}}


def _ref(subfolder: str, name: str) -> str:
    return f"{subfolder}/{name}" if subfolder else name


def _uuid() -> str:
    return str(uuid.uuid4())


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    order: list[str] = []

    def visit(node_id: str) -> None:
        if node_id in order:
            return
        for value in prompt[node_id].get("inputs", {}).values():
            if _is_link(value):
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


def _signature(prompt: dict[str, Any], node_id: str) -> str:
    node = prompt[node_id]
    inputs = {name: _signature(prompt, value[0]) + f"[{value[1]}]" if _is_link(value) else value
              for name, value in node.get("inputs", {}).items()}
    return json.dumps([node["class_type"], inputs], sort_keys=True)


def _batch(prompt: dict[str, Any], node_id: str) -> int:
    """How many images reach a node: the nearest upstream literal batch_size, else 1."""
    inputs = prompt[node_id].get("inputs", {})
    if isinstance(inputs.get("batch_size"), int):
        return inputs["batch_size"]
    return max((_batch(prompt, v[0]) for v in inputs.values() if _is_link(v)), default=1)


def _executed(node_id: str, ui: dict[str, Any], prompt_id: str) -> dict[str, Any]:
    return {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id}


def _progress_state(prompt_id: str, node_id: str) -> dict[str, Any]:
    state = {"value": 0.0, "max": 1.0, "state": "running", "node_id": node_id, "prompt_id": prompt_id,
             "display_node_id": node_id, "parent_node_id": None, "real_node_id": node_id}
    return {"prompt_id": prompt_id, "nodes": {node_id: state}}


def provision(fake: FakeComfyUI, packs: bool = True, loras: tuple[str, ...] = ("mio_v3.safetensors",)) -> None:
    """Install what a real server would have: the custom node packs and every template's model files."""
    if packs:
        fake.install_nodes(custom_node_specs())
    for name in ("txt2img_sd15", "txt2img_sdxl", "i2v_wan22", "i2v_ltxv", "i2v_framepack"):
        template = load_template(name)
        for param in template.params.values():
            for node, input_name in param.targets if param.type == "file" else ():
                spec = fake.catalogue.get(template.graph[node]["class_type"])
                if spec is not None:
                    spec["input"]["required"][input_name][0].append(param.default)
    fake.catalogue["LoraLoader"]["input"]["required"]["lora_name"][0].extend(loras)
