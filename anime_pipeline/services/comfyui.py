"""A ComfyUI client: validate an API-format workflow, run it, and download what it made.

Built from the recorded protocol of ComfyUI 0.3.64 (protocols.md §1 and the recordings copied
to tests/data/comfyui). Plain Python: requests for HTTP, websocket-client for /ws.

    with ComfyUIClient("http://127.0.0.1:8188", log=print) as client:
        result = client.run(workflow, Path("renders/shot_010"), timeout=600)
        result.outputs  # files on disk, in history order

How a run behaves:

* The workflow is checked against /object_info before anything is queued.
* The prompt_id is ours (uuid4) and goes in the POST, so a POST whose answer was lost is never
  blindly repeated: the client first looks for the id in /queue and /history. ComfyUI itself
  does not reject a duplicate id; it would run the work twice.
* Progress comes from /ws?clientId=...; the prompt is done at `executing` with node null and our
  prompt_id, which the server sends after it has written the history entry (`execution_success`
  comes before that write, so it is only logged).
* If the socket drops, the client reconnects (bounded) and otherwise polls /history. After a
  drop it asks the server where the prompt is. When it is in neither /queue nor /history, the
  server restarted and forgot it: the same prompt_id is submitted once more (the restarted server
  has no record of it, and keeping the id keeps logs and callers' references valid). A second
  loss raises PromptLost.
* Output files are downloaded from /view, streamed to a temporary name in the target folder and
  renamed into place. Files of type "temp" (PreviewImage) are not downloaded.

One run() at a time per client: ComfyUI sends a prompt's events to a single socket per
client_id, so concurrent runs need separate clients. cancel() may be called from any thread.
"""

from __future__ import annotations

import difflib
import json
import logging
import mimetypes
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests
import websocket

_logger = logging.getLogger(__name__)

_TRANSIENT_STATUS = frozenset({502, 503, 504})  # a proxy in front of a (re)starting server
_CHUNK = 1 << 20
_SAFETY_CHECK_TICKS = 20  # even with a live socket, ask /queue + /history every 20 poll intervals
_PRIMITIVES = ("INT", "FLOAT", "STRING", "BOOLEAN")


# -- errors ----------------------------------------------------------------------------------


class ComfyUIError(Exception):
    """Base class of everything this client raises."""


class ComfyUIUnavailable(ComfyUIError):
    def __init__(self, url: str, attempts: int, cause: object) -> None:
        super().__init__(f"ComfyUI is unavailable at {url} (tried {attempts} time(s)): {cause}")
        self.url = url
        self.attempts = attempts


@dataclass(frozen=True)
class ValidationProblem:
    node_id: str | None  # None: a problem of the workflow as a whole
    class_type: str | None
    input_name: str | None
    message: str

    def __str__(self) -> str:
        if self.node_id is None:
            return f"workflow: {self.message}"
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name is not None:
            where += f" input '{self.input_name}'"
        return f"{where}: {self.message}"


class WorkflowValidationError(ComfyUIError):
    def __init__(self, problems: list[ValidationProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"workflow is not valid for this ComfyUI server ({len(problems)} problem(s)):\n{lines}")


class PromptRejected(ComfyUIError):
    """POST /prompt refused the workflow (HTTP 400), or accepted only some of its outputs."""

    def __init__(self, prompt_id: str, error: Mapping[str, Any], node_errors: Mapping[str, Any]) -> None:
        self.prompt_id = prompt_id
        self.error = dict(error)
        self.node_errors = dict(node_errors)
        headline = str(error.get("message") or error.get("type") or "rejected")
        if error.get("details"):
            headline += f" ({error['details']})"
        lines = [f"  {line}" for line in _describe_node_errors(node_errors)]
        super().__init__("\n".join([f"ComfyUI rejected prompt {prompt_id}: {headline}", *lines]))


class ExecutionFailed(ComfyUIError):
    def __init__(self, node_id: str, node_type: str, exception_type: str, exception_message: str, *,
                 prompt_id: str = "", traceback: list[str] | None = None) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.prompt_id = prompt_id
        self.traceback = traceback or []
        super().__init__(f"prompt {prompt_id} failed in node {node_id} ({node_type}): "
                         f"{exception_type}: {exception_message.strip()}")


class Interrupted(ComfyUIError):
    def __init__(self, prompt_id: str, reason: str) -> None:
        self.prompt_id = prompt_id
        super().__init__(f"prompt {prompt_id} was interrupted: {reason}")


class ComfyUITimeout(ComfyUIError):
    def __init__(self, prompt_id: str, timeout: float) -> None:
        self.prompt_id = prompt_id
        self.timeout = timeout
        super().__init__(f"prompt {prompt_id} did not finish within {timeout:g}s; it was interrupted "
                         "and removed from the queue")


class UnsafeOutputPath(ComfyUIError):
    def __init__(self, file: OutputFile, reason: str) -> None:
        self.file = file
        super().__init__(f"refusing output of node {file.node_id}: subfolder={file.subfolder!r} "
                         f"filename={file.filename!r}: {reason}")


class PromptLost(ComfyUIError):
    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        super().__init__(f"prompt {prompt_id} vanished from the server again after being resubmitted "
                         "(in neither /queue nor /history): the server keeps restarting mid-run")


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    name: str
    type: str
    index: int | None
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class SystemStats:
    comfyui_version: str
    python_version: str
    pytorch_version: str
    os: str
    ram_total: int
    ram_free: int
    devices: tuple[Device, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SystemStats:
        system = data.get("system", {})
        devices = tuple(Device(name=d.get("name", ""), type=d.get("type", ""), index=d.get("index"),
                               vram_total=d.get("vram_total", 0), vram_free=d.get("vram_free", 0))
                        for d in data.get("devices", []))
        return cls(comfyui_version=system.get("comfyui_version", "unknown"),
                   python_version=system.get("python_version", ""),
                   pytorch_version=system.get("pytorch_version", ""), os=system.get("os", ""),
                   ram_total=system.get("ram_total", 0), ram_free=system.get("ram_free", 0), devices=devices)


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


@dataclass(frozen=True)
class UploadedImage:
    name: str
    subfolder: str
    type: str

    @property
    def input_ref(self) -> str:
        """The value LoadImage's `image` input expects, e.g. "proto/test_in.png"."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name


@dataclass(frozen=True)
class OutputFile:
    node_id: str
    filename: Any  # as the server sent it; checked before it becomes a path
    subfolder: Any
    type: str


@dataclass(frozen=True)
class HistoryEntry:
    prompt_id: str
    status: str  # "success" or "error"
    completed: bool
    outputs: dict[str, dict[str, Any]]
    messages: list[list[Any]]

    @classmethod
    def from_json(cls, prompt_id: str, data: Mapping[str, Any]) -> HistoryEntry:
        status = data.get("status") or {}
        return cls(prompt_id=prompt_id, status=status.get("status_str", ""), completed=bool(status.get("completed")),
                   outputs=dict(data.get("outputs") or {}), messages=list(status.get("messages") or []))

    def message(self, kind: str) -> dict[str, Any] | None:
        return next((data for name, data in self.messages if name == kind), None)

    def files(self) -> list[OutputFile]:
        """Every file the output nodes reported, under any key (images, gifs, audio, ...)."""
        return [OutputFile(node_id, item.get("filename"), item.get("subfolder", ""), str(item.get("type", "output")))
                for node_id, ui in self.outputs.items()
                for value in ui.values() if isinstance(value, list)
                for item in value if isinstance(item, Mapping) and "filename" in item]


@dataclass(frozen=True)
class ProgressEvent:
    node: str
    value: int
    max: int
    percent: float


@dataclass(frozen=True)
class Timings:
    submit_s: float  # run() called -> prompt accepted (validation, first-run server info, POST)
    queue_s: float  # accepted -> done, less execute_s: waiting in the queue (and for the news)
    execute_s: float  # execution, as timed by the server
    download_s: float  # done -> every file on disk
    total_s: float


@dataclass(frozen=True)
class RunResult:
    prompt_id: str
    outputs: list[Path]
    node_outputs: dict[str, dict[str, Any]]  # history "outputs", raw
    timings: Timings
    server: SystemStats
    submissions: int  # 2 when the prompt was resubmitted after a server restart


# -- client ----------------------------------------------------------------------------------


_CATALOGUES: dict[str, dict[str, Any]] = {}  # base URL -> /object_info, shared by the clients of a process
_CATALOGUE_LOCK = threading.Lock()


class ComfyUIClient:
    def __init__(self, base_url: str, client_id: str | None = None, timeout: float = 30.0, retries: int = 5,
                 backoff: float = 1.0, poll_interval: float = 1.0, log: Callable[[str], None] | None = None,
                 progress: Callable[[ProgressEvent], None] | None = None) -> None:
        """`timeout` bounds each HTTP request; `retries` and `backoff` (seconds, doubling) apply to
        connection failures; `poll_interval` is how often a run checks for cancel/timeout and how
        often it polls /history when it has no WebSocket."""
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.poll_interval = poll_interval
        self._log = log or _logger.info
        self._progress = progress or (lambda event: None)
        self._session = requests.Session()
        self._object_info: dict[str, Any] | None = None
        self._server: SystemStats | None = None
        self._cancel = threading.Event()
        self._run_lock = threading.Lock()

    def __enter__(self) -> ComfyUIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # server information

    def system_stats(self) -> SystemStats:
        self._server = SystemStats.from_json(self._json("GET", "/system_stats"))
        return self._server

    def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """The node catalogue, fetched once per server and process (it is about 0.5 MB) unless refresh
        is asked for; clients of the same server share it."""
        if self._object_info is None or refresh:
            with _CATALOGUE_LOCK:
                cached = None if refresh else _CATALOGUES.get(self.base_url)
                self._object_info = cached if cached is not None else self._json("GET", "/object_info")
                _CATALOGUES[self.base_url] = self._object_info
        return self._object_info

    def queue(self) -> QueueState:
        data = self._json("GET", "/queue")
        return QueueState(running=tuple(str(item[1]) for item in data.get("queue_running", [])),
                          pending=tuple(str(item[1]) for item in data.get("queue_pending", [])))

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt's entry; None while it is queued or running, or if unknown."""
        data = self._json("GET", f"/history/{quote(prompt_id, safe='')}")
        entry = data.get(prompt_id) if isinstance(data, dict) else None
        return HistoryEntry.from_json(prompt_id, entry) if entry else None

    # actions

    def upload_image(self, path: str | os.PathLike[str], subfolder: str = "", overwrite: bool = False,
                     folder_type: Literal["input", "output"] = "input") -> UploadedImage:
        """Upload into the server's input folder (or output folder: /upload/image stores any file
        there, e.g. a LoRA under output/loras/, which ComfyUI lists as a LoRA). Without overwrite, a
        different file of the same name gets renamed ("x (1).png"); identical bytes reuse the name."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files = {"image": (path.name, path.read_bytes(), content_type)}
        form = {"subfolder": subfolder, "type": folder_type, "overwrite": "true" if overwrite else "false"}
        data = self._json("POST", "/upload/image", files=files, data=form)
        return UploadedImage(name=data["name"], subfolder=data.get("subfolder", ""), type=data.get("type", folder_type))

    def download(self, file: OutputFile, target: str | os.PathLike[str]) -> Path:
        """Stream one server file from /view to `target` (a temporary name, then renamed): for files
        that no history entry lists, such as what SaveLoRA writes."""
        target = Path(target)
        _safe_target(target.parent.resolve(), file)  # the server-side name must be a plain name too
        self._download(file, target)
        return target

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt; with prompt_id, only if that prompt is the one running."""
        self._json("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {})

    def cancel(self) -> None:
        """Make the run() in progress (in any thread) interrupt its prompt and raise Interrupted."""
        self._cancel.set()

    # validation

    def validate(self, workflow: Mapping[str, Any], required_packs: Mapping[str, str] | None = None) -> None:
        """Raise WorkflowValidationError listing every problem the server would refuse.

        required_packs maps custom node classes to the pack that provides them, so a class
        missing from the server is reported with the pack to install."""
        had_cache = self._object_info is not None
        problems = check_workflow(workflow, self.object_info(), required_packs or {})
        if problems and had_cache:  # a model or a node pack may have been installed since we cached
            problems = check_workflow(workflow, self.object_info(refresh=True), required_packs or {})
        if problems:
            raise WorkflowValidationError(problems)

    # running

    def run(self, workflow: Mapping[str, Any], output_dir: str | os.PathLike[str], prompt_id: str | None = None,
            timeout: float | None = None, required_packs: Mapping[str, str] | None = None) -> RunResult:
        """Validate, queue, follow and download one workflow. `timeout` bounds queueing plus
        execution (None: wait as long as it takes)."""
        if not self._run_lock.acquire(blocking=False):
            raise ComfyUIError("run() is already in progress on this client; ComfyUI routes a prompt's events "
                               "to one socket per client_id, so give each concurrent run its own client")
        try:
            self._cancel.clear()
            return self._run(workflow, Path(output_dir), prompt_id or str(uuid.uuid4()), timeout, required_packs)
        finally:
            self._run_lock.release()

    def _run(self, workflow: Mapping[str, Any], output_dir: Path, prompt_id: str, timeout: float | None,
             required_packs: Mapping[str, str] | None) -> RunResult:
        started = time.monotonic()
        self.validate(workflow, required_packs)
        server = self._server or self.system_stats()
        deadline = None if timeout is None else started + timeout
        with _EventSocket(self._ws_url()) as events:  # opened before the POST: missed events are not replayed
            events.connect(self.timeout)
            self._submit(workflow, prompt_id)
            submitted = time.monotonic()
            watch = _Watch(self, workflow, prompt_id, events, deadline, timeout)
            entry = watch.wait()
        finished = time.monotonic()
        outputs = self._download_all(entry, output_dir)
        done = time.monotonic()
        execute_s = _server_seconds(entry)
        if execute_s is None:
            execute_s = finished - (watch.started_at or submitted)
        timings = Timings(submit_s=submitted - started, queue_s=max(0.0, finished - submitted - execute_s),
                          execute_s=execute_s, download_s=done - finished, total_s=done - started)
        self._log(f"[{prompt_id[:8]}] done: {len(outputs)} file(s) in {timings.total_s:.2f}s "
                  f"(queue {timings.queue_s:.2f}s, execute {execute_s:.2f}s, download {timings.download_s:.2f}s)")
        return RunResult(prompt_id=prompt_id, outputs=outputs, node_outputs=entry.outputs, timings=timings,
                         server=server, submissions=watch.submissions)

    def _submit(self, workflow: Mapping[str, Any], prompt_id: str) -> None:
        body = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}
        url = f"{self.base_url}/prompt"
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                response = self._session.post(url, json=body, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                cause: object = exc
            else:
                if response.status_code not in _TRANSIENT_STATUS:
                    return self._accepted(response, prompt_id)
                cause = f"HTTP {response.status_code}"
            self._log(f"[{prompt_id[:8]}] POST /prompt failed ({cause}); checking whether it was queued anyway")
            time.sleep(self.backoff * 2 ** attempt)
            if self._locate(prompt_id) != "lost":
                self._log(f"[{prompt_id[:8]}] the server had queued it; not posting again")
                return None
        raise ComfyUIUnavailable(url, attempts, cause)

    def _accepted(self, response: requests.Response, prompt_id: str) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {"error": {"message": response.text[:500]}}
        if response.status_code == 400:
            raise PromptRejected(prompt_id, body.get("error") or {}, body.get("node_errors") or {})
        if response.status_code != 200:
            raise ComfyUIError(f"POST /prompt returned HTTP {response.status_code}: {response.text[:500]}")
        if body.get("node_errors"):
            # partial acceptance: the outputs that failed validation would silently not be made
            self._abandon(prompt_id)
            raise PromptRejected(prompt_id, {"message": "some outputs failed validation; the prompt was withdrawn"},
                                 body["node_errors"])
        self._log(f"[{prompt_id[:8]}] queued as number {body.get('number')}")

    def _locate(self, prompt_id: str) -> HistoryEntry | Literal["queued", "lost"]:
        # /queue first: a prompt moves from the queue to the history, so this order cannot miss it
        if prompt_id in self.queue():
            return "queued"
        return self.history(prompt_id) or "lost"

    def _abandon(self, prompt_id: str) -> None:
        """Best effort: drop the prompt if still pending, stop it if running."""
        for path, body in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                self._request("POST", path, json=body)
            except ComfyUIUnavailable as exc:
                self._log(f"[{prompt_id[:8]}] could not reach {path} to stop the prompt: {exc}")

    # downloads

    def _download_all(self, entry: HistoryEntry, output_dir: Path) -> list[Path]:
        root = output_dir.resolve()
        files = entry.files()
        wanted = [file for file in files if file.type != "temp"]
        if len(wanted) < len(files):
            self._log(f"[{entry.prompt_id[:8]}] skipping {len(files) - len(wanted)} temp preview file(s)")
        # every name is checked before anything is written
        targets = {_safe_target(root, file): file for file in wanted}
        for target, file in targets.items():
            self._download(file, target)
        return list(targets)

    def _download(self, file: OutputFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        cause: object = None
        for attempt in range(self.retries + 1):
            try:
                self._stream_to(params, temporary)
                os.replace(temporary, target)
                return
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                cause = exc
                time.sleep(self.backoff * 2 ** attempt)
            finally:
                temporary.unlink(missing_ok=True)
        raise ComfyUIUnavailable(f"{self.base_url}/view?{urlencode(params)}", self.retries + 1, cause)

    def _stream_to(self, params: dict[str, Any], path: Path) -> None:
        with self._request("GET", "/view", params=params, stream=True) as response:
            if response.status_code != 200:
                raise ComfyUIError(f"GET /view?{urlencode(params)} returned HTTP {response.status_code}")
            with open(path, "xb") as out:
                for chunk in response.iter_content(_CHUNK):
                    out.write(chunk)

    # HTTP

    def _ws_url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode({"clientId": self.client_id}), ""))

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                cause: object = exc
            else:
                if response.status_code not in _TRANSIENT_STATUS:
                    return response
                cause = f"HTTP {response.status_code}"
                response.close()
            if attempt + 1 < attempts:
                time.sleep(self.backoff * 2 ** attempt)
        raise ComfyUIUnavailable(url, attempts, cause)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code != 200:
            raise ComfyUIError(f"{method} {path} returned HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None


# -- following a run -------------------------------------------------------------------------


class _Watch:
    """Follows one prompt to its end: WebSocket events, reconnects, polling, one resubmission."""

    def __init__(self, client: ComfyUIClient, workflow: Mapping[str, Any], prompt_id: str, socket: _EventSocket,
                 deadline: float | None, timeout: float | None) -> None:
        self.client = client
        self.workflow = workflow
        self.prompt_id = prompt_id
        self.socket = socket
        self.deadline = deadline
        self.timeout = timeout
        self.submissions = 1
        self.started_at: float | None = None
        self.queue_remaining: int | None = None
        self.tag = f"[{prompt_id[:8]}]"
        self.next_check = time.monotonic() + client.poll_interval * _SAFETY_CHECK_TICKS
        if not socket.connected:
            client._log(f"{self.tag} no WebSocket ({socket.failure}); polling /history")

    def wait(self) -> HistoryEntry:
        try:
            while True:
                self._check_stop()
                entry = self._step()
                if entry is not None:
                    return self._successful(entry)
        except ComfyUIError:
            raise
        except BaseException:  # KeyboardInterrupt, a run being terminated, a failing progress callback
            self.client._abandon(self.prompt_id)  # so the GPU does not keep working for nobody
            raise

    def _step(self) -> HistoryEntry | None:
        if not self.socket.connected:
            self.client._cancel.wait(self._tick())
            return self._ask_server()
        message = self.socket.receive(self._tick())
        if message is _DROPPED:
            return self._recover()
        if message is not None and self._handle(message):
            entry = self.client.history(self.prompt_id)
            if entry is None:  # not how 0.3.64 behaves, but never wait on a socket that is done
                self.socket.close()
            return entry
        if time.monotonic() >= self.next_check:  # a socket can go quiet without closing
            return self._ask_server()
        return None

    def _tick(self) -> float:
        tick = self.client.poll_interval
        if self.deadline is not None:
            tick = min(tick, self.deadline - time.monotonic())
        return max(tick, 0.001)

    def _check_stop(self) -> None:
        if self.client._cancel.is_set():
            self.client._abandon(self.prompt_id)
            raise Interrupted(self.prompt_id, "cancelled by the caller")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.client._abandon(self.prompt_id)
            raise ComfyUITimeout(self.prompt_id, self.timeout or 0.0)

    def _recover(self) -> HistoryEntry | None:
        client = self.client
        client._log(f"{self.tag} WebSocket dropped; reconnecting")
        for attempt in range(client.retries):
            time.sleep(client.backoff * 2 ** attempt)
            if self.socket.connect(client.timeout):
                client._log(f"{self.tag} WebSocket reconnected")
                break
        else:
            client._log(f"{self.tag} cannot reconnect ({self.socket.failure}); polling /history every "
                        f"{client.poll_interval:g}s")
        return self._ask_server()  # events sent while we were away are gone: ask where the prompt is

    def _ask_server(self) -> HistoryEntry | None:
        self.next_check = time.monotonic() + self.client.poll_interval * _SAFETY_CHECK_TICKS
        where = self.client._locate(self.prompt_id)
        if where == "lost":
            self._resubmit()
            return None
        return None if where == "queued" else where

    def _resubmit(self) -> None:
        if self.submissions > 1:
            raise PromptLost(self.prompt_id)
        self.client._log(f"{self.tag} the server no longer knows this prompt (restarted?); resubmitting it once "
                         "with the same prompt_id")
        self.client._submit(self.workflow, self.prompt_id)
        self.submissions += 1

    def _successful(self, entry: HistoryEntry) -> HistoryEntry:
        if entry.status == "success":
            return entry
        error = entry.message("execution_error")
        if error is not None:
            raise _execution_failed(error)
        if entry.message("execution_interrupted") is not None:
            raise Interrupted(self.prompt_id, "interrupted on the server")
        raise ComfyUIError(f"prompt {self.prompt_id} ended with status {entry.status!r} and no error message")

    def _handle(self, message: Mapping[str, Any]) -> bool:
        """Log and report one event; True when it says our prompt is done."""
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "status":
            self._on_status(data)
            return False
        if data.get("prompt_id") != self.prompt_id:  # other clients' broadcasts, stale runs
            return False
        if kind == "executing":
            if data.get("node") is None:
                return True
            self.client._log(f"{self.tag} executing {self._node(data['node'])}")
        elif kind == "progress":
            self._on_progress(data)
        elif kind == "execution_start":
            self.started_at = time.monotonic()
            self.client._log(f"{self.tag} execution started")
        elif kind == "execution_cached" and data.get("nodes"):
            self.client._log(f"{self.tag} cached: {', '.join(self._node(n) for n in data['nodes'])}")
        elif kind == "executed":
            count = sum(len(v) for v in (data.get("output") or {}).values() if isinstance(v, list))
            self.client._log(f"{self.tag} {self._node(data.get('node'))} produced {count} output item(s)")
        elif kind == "execution_success":
            self.client._log(f"{self.tag} execution succeeded")
        elif kind == "execution_error":
            raise _execution_failed(data)
        elif kind == "execution_interrupted":
            raise Interrupted(self.prompt_id, f"interrupted on the server in {self._node(data.get('node_id'))}")
        return False

    def _on_status(self, data: Mapping[str, Any]) -> None:
        remaining = ((data.get("status") or {}).get("exec_info") or {}).get("queue_remaining")
        if self.started_at is None and remaining and remaining != self.queue_remaining:
            self.client._log(f"{self.tag} waiting: {remaining} prompt(s) in the server queue")
        self.queue_remaining = remaining

    def _on_progress(self, data: Mapping[str, Any]) -> None:
        value, maximum = int(data.get("value", 0)), int(data.get("max", 0))
        event = ProgressEvent(node=str(data.get("node")), value=value, max=maximum,
                              percent=100.0 * value / maximum if maximum else 0.0)
        self.client._log(f"{self.tag} {self._node(event.node)} {value}/{maximum} ({event.percent:.0f}%)")
        self.client._progress(event)

    def _node(self, node_id: Any) -> str:
        node = self.workflow.get(str(node_id))
        class_type = node.get("class_type", "?") if isinstance(node, Mapping) else "?"
        return f"node {node_id} ({class_type})"


class _Dropped:
    pass


_DROPPED = _Dropped()


class _EventSocket:
    """The /ws event stream. receive() gives a message, None when nothing came, or _DROPPED."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.failure: object = None
        self._ws: websocket.WebSocket | None = None

    def __enter__(self) -> _EventSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self, timeout: float) -> bool:
        self.close()
        try:
            self._ws = websocket.create_connection(self.url, timeout=timeout)
        except (OSError, websocket.WebSocketException) as exc:
            self.failure = exc
        return self.connected

    def receive(self, wait: float) -> dict[str, Any] | None | _Dropped:
        assert self._ws is not None
        self._ws.settimeout(wait)
        try:
            opcode, payload = self._ws.recv_data()
        except (websocket.WebSocketTimeoutException, TimeoutError):
            return None
        except (OSError, websocket.WebSocketException) as exc:
            self.failure = exc
            self.close()
            return _DROPPED
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.failure = "closed by the server"
            self.close()
            return _DROPPED
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return None  # binary frames carry previews
        try:
            message = json.loads(payload)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def close(self) -> None:
        if self._ws is not None:
            self._ws.shutdown()  # no close handshake: the socket may already be dead
            self._ws = None


# -- helpers ---------------------------------------------------------------------------------


def _execution_failed(data: Mapping[str, Any]) -> ExecutionFailed:
    return ExecutionFailed(str(data.get("node_id")), str(data.get("node_type")), str(data.get("exception_type")),
                           str(data.get("exception_message")), prompt_id=str(data.get("prompt_id", "")),
                           traceback=list(data.get("traceback") or []))


def _server_seconds(entry: HistoryEntry) -> float | None:
    """Execution time from the server's own timestamps (milliseconds) in the history entry."""
    start = entry.message("execution_start")
    end = entry.message("execution_success")
    if start and end and "timestamp" in start and "timestamp" in end:
        return max(0.0, (end["timestamp"] - start["timestamp"]) / 1000)
    return None


def _describe_node_errors(node_errors: Mapping[str, Any]) -> list[str]:
    lines = []
    for node_id, info in sorted(node_errors.items(), key=lambda item: _node_key(item[0])):
        for error in info.get("errors", []):
            input_name = (error.get("extra_info") or {}).get("input_name")
            where = f"node {node_id} ({info.get('class_type', '?')})" + (f" input '{input_name}'" if input_name else "")
            text = str(error.get("message", ""))
            if error.get("details") and error.get("details") != input_name:
                text += f": {error['details']}"
            lines.append(f"{where}: {text} [{error.get('type', '?')}]")
    return lines


def _safe_target(root: Path, file: OutputFile) -> Path:
    """The local path for a server-reported file, refusing anything that could leave root."""
    name, subfolder = file.filename, file.subfolder
    if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\x00]", name):
        raise UnsafeOutputPath(file, "the filename must be a plain file name")
    if not isinstance(subfolder, str) or "\x00" in subfolder or re.match(r"([/\\]|[A-Za-z]:)", subfolder):
        raise UnsafeOutputPath(file, "the subfolder must be a relative path")
    parts = [part for part in re.split(r"[/\\]", subfolder) if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeOutputPath(file, "the subfolder must not contain '..'")
    target = root.joinpath(*parts, name)
    if not target.resolve().is_relative_to(root):  # e.g. a symlinked subfolder
        raise UnsafeOutputPath(file, f"it resolves outside {root}")
    return target


# -- workflow validation ---------------------------------------------------------------------


def check_workflow(workflow: Mapping[str, Any], catalogue: Mapping[str, Any],
                   required_packs: Mapping[str, str]) -> list[ValidationProblem]:
    """Every reason the server would refuse this API-format workflow, per /object_info.

    Stricter than the server on literal types: it coerces (bool("false") is True, int(2.7) is 2),
    which hides mistakes, so here an INT must be an integer, a BOOLEAN a bool, and so on."""
    if not isinstance(workflow, Mapping) or not workflow:
        return [ValidationProblem(None, None, None, "it must be a non-empty {node_id: node} mapping")]
    if "nodes" in workflow and "links" in workflow:
        return [ValidationProblem(None, None, None, "this is the editor (UI) format; /prompt needs the API format "
                                  "(export with 'Save (API)')")]
    problems: list[ValidationProblem] = []
    for node_id, node in sorted(workflow.items(), key=lambda item: _node_key(item[0])):
        problems += _check_node(str(node_id), node, workflow, catalogue, required_packs)
    classes = [node.get("class_type") for node in workflow.values() if isinstance(node, Mapping)]
    if all(isinstance(c, str) and c in catalogue for c in classes) and not any(catalogue[c].get("output_node") for c in classes):
        problems.append(ValidationProblem(None, None, None, "there is no output node (SaveImage, SaveVideo, "
                                          "PreviewImage, ...), so ComfyUI would refuse it"))
    return problems


def _check_node(node_id: str, node: Any, workflow: Mapping[str, Any], catalogue: Mapping[str, Any],
                required_packs: Mapping[str, str]) -> list[ValidationProblem]:
    if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
        return [ValidationProblem(node_id, "?", None, "not a node: expected {'class_type': ..., 'inputs': {...}}")]
    class_type = node["class_type"]
    if class_type not in catalogue:
        return [ValidationProblem(node_id, class_type, None, _unknown_class(class_type, catalogue, required_packs))]
    inputs = node.get("inputs", {})
    if not isinstance(inputs, Mapping):
        return [ValidationProblem(node_id, class_type, None, "'inputs' must be a mapping")]
    spec = catalogue[class_type].get("input", {})
    required = spec.get("required", {})
    problems = []
    for name, config in {**required, **spec.get("optional", {})}.items():
        if name not in inputs:
            message = "required input is missing" if name in required else None
        else:
            message = _check_value(inputs[name], config, workflow, catalogue)
        if message:
            problems.append(ValidationProblem(node_id, class_type, name, message))
    return problems


def _unknown_class(class_type: str, catalogue: Mapping[str, Any], required_packs: Mapping[str, str]) -> str:
    if class_type in required_packs:
        return (f"node class '{class_type}' is not installed on this server; install the custom node pack "
                f"'{required_packs[class_type]}'")
    close = difflib.get_close_matches(class_type, list(catalogue), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "if it comes from a custom node pack, install that pack"
    return f"unknown node class '{class_type}' (not on this server); {hint}"


def _check_value(value: Any, config: Any, workflow: Mapping[str, Any], catalogue: Mapping[str, Any]) -> str | None:
    input_type = config[0]
    options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
    if isinstance(value, list):
        return _check_link(value, input_type, workflow, catalogue)
    if isinstance(value, Mapping) and "__value__" in value:
        return None  # an explicitly wrapped literal list
    if input_type in _PRIMITIVES:
        return _check_primitive(value, input_type, options)
    choices = _combo_choices(input_type, options)
    if choices is not None and value not in choices:
        return _not_in_list(value, choices)
    return None


def _check_primitive(value: Any, input_type: str, options: Mapping[str, Any]) -> str | None:
    if input_type == "BOOLEAN":
        ok = isinstance(value, bool)
    elif input_type == "STRING":
        ok = isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    else:
        ok = input_type == "FLOAT" or float(value).is_integer()
    if not ok:
        return f"expected {input_type}, got {value!r}"
    if "min" in options and value < options["min"]:
        return f"value {value!r} is below the minimum {options['min']}"
    if "max" in options and value > options["max"]:
        return f"value {value!r} is above the maximum {options['max']}"
    return None


def _check_link(link: list[Any], input_type: Any, workflow: Mapping[str, Any],
                catalogue: Mapping[str, Any]) -> str | None:
    if len(link) != 2 or not isinstance(link[0], str) or isinstance(link[1], bool) or not isinstance(link[1], int):
        return (f"a link must be ['<node id>', <output index>], got {link!r} "
                "(wrap a literal list as {'__value__': [...]})")
    source, index = link
    node = workflow.get(source)
    if not isinstance(node, Mapping):
        return f"linked to node '{source}', which is not in the workflow"
    spec = catalogue.get(node["class_type"]) if isinstance(node.get("class_type"), str) else None
    if spec is None:
        return None  # the bad class is reported on that node
    outputs = spec.get("output", [])
    if not 0 <= index < len(outputs):
        return (f"linked to output {index} of node {source} ({node['class_type']}), "
                f"which has {len(outputs)} output(s)")
    if not _types_match(outputs[index], input_type):
        return (f"expects {_type_name(input_type)} but node {source} ({node['class_type']}) "
                f"output {index} is {_type_name(outputs[index])}")
    return None


def _types_match(received: Any, expected: Any) -> bool:
    received, expected = _type_name(received), _type_name(expected)
    if "*" in (received, expected):
        return True
    return bool(set(received.split(",")) & set(expected.split(",")))


def _type_name(input_type: Any) -> str:
    return "COMBO" if isinstance(input_type, list) else str(input_type)


def _combo_choices(input_type: Any, options: Mapping[str, Any]) -> list[Any] | None:
    """The allowed values, or None when the server checks the value itself (uploads, remote lists)."""
    if any(key.endswith("_upload") or key == "remote" for key in options):
        return None
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO" and isinstance(options.get("options"), list):
        return options["options"]
    return None


def _not_in_list(value: Any, choices: list[Any]) -> str:
    if not choices:  # model and file lists are empty until files are installed on the server
        return f"{value!r} is not available: the server lists no values for this input"
    listed = str(choices) if len(choices) <= 20 else f"the {len(choices)} values the server lists"
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{value!r} is not one of {listed}{hint}"


def _node_key(node_id: Any) -> tuple[int, str]:
    text = str(node_id)
    return (int(text), text) if text.isdigit() else (1 << 62, text)
