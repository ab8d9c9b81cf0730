"""ComfyUIClient: validate an API-format workflow, run it, and download what it made.

Every HTTP call goes through services.http: a total deadline per call (`timeout` for JSON routes,
`download_timeout` per output file) and a size cap per route (ResponseLimits). Connection failures
and 502/503/504 are retried with backoff through `reconnect_window` seconds, sized for a real
ComfyUI restart (loading custom nodes and models takes a minute or two), then ComfyUIUnavailable.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from anime_pipeline.services.comfyui.errors import (ComfyUIBadResponse, ComfyUIError, ComfyUIRequestTimeout,
                                                    ComfyUIResponseTooLarge, ComfyUIUnavailable, PromptRejected,
                                                    UnsafeOutputPath, WorkflowValidationError)
from anime_pipeline.services.comfyui.graph import catalogue_problem, check_workflow
from anime_pipeline.services.comfyui.watch import (TRANSIENT_STATUS, EventSocket, RunWatch, ServerCalls,
                                                   pauses)
from anime_pipeline.services.comfyui.wire import (HistoryEntry, OutputFile, ProgressEvent, QueueState, RunResult,
                                                  SystemStats, Timings, UploadedImage)
from anime_pipeline.services.http import (JSON_LIMIT, MEDIA_LIMIT, ConnectionFailed, DeadlineExceeded,
                                          HTTPTransport, MalformedResponse, Response, ResponseTooLarge, Timeout,
                                          TransportError, multipart)

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

MiB = 1 << 20
_NAME_BYTES = 255  # the longest file name Linux and macOS file systems take
_PATH_BYTES = 4000  # just under PATH_MAX


@dataclass(frozen=True)
class ResponseLimits:
    """The most bytes one answer may have, per kind of route."""

    json: int = JSON_LIMIT  # /prompt, /queue, /history, /system_stats, /upload/image
    catalogue: int = 64 * MiB  # /object_info: a server with many custom node packs sends tens of MB
    file: int = MEDIA_LIMIT  # one output file from /view
    event: int = 16 * MiB  # one WebSocket message


_CATALOGUES: dict[str, dict[str, Any]] = {}  # base URL -> /object_info, shared by the clients of a process
_CATALOGUE_LOCK = threading.Lock()


class ComfyUIClient:
    """One ComfyUI server. One run() at a time per client: ComfyUI sends a prompt's events to a single
    socket per client_id, so concurrent runs need separate clients. cancel() may be called from any
    thread."""

    def __init__(self, base_url: str, client_id: str | None = None, timeout: float = 30.0,
                 reconnect_window: float = 120.0, backoff: float = 0.5, poll_interval: float = 1.0,
                 log: Callable[[str], None] | None = None, progress: Callable[[ProgressEvent], None] | None = None,
                 download_timeout: float = 600.0, limits: ResponseLimits = ResponseLimits()) -> None:
        """`timeout` bounds each JSON call whole (connect to last byte) and `download_timeout` each
        output file; connection failures are retried for `reconnect_window` seconds, waiting
        `backoff` seconds at first and doubling; `poll_interval` is how often a run checks for
        cancel/timeout and how often it polls /history when it has no WebSocket."""
        self._http = HTTPTransport(base_url, Timeout(total=timeout))
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout = timeout
        self.reconnect_window = reconnect_window
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.download_timeout = download_timeout
        self.limits = limits
        self._log = log or _logger.info
        self._progress = progress or (lambda event: None)
        self._object_info: dict[str, Any] | None = None
        self._server: SystemStats | None = None
        self._cancel = threading.Event()
        self._run_lock = threading.Lock()
        self._run_deadline: float | None = None  # while a run with a timeout is in progress

    def __enter__(self) -> ComfyUIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing is held between calls (each has its own connection); kept for `with`."""

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
                self._object_info = cached if cached is not None else self._catalogue()
                _CATALOGUES[self.base_url] = self._object_info
        return self._object_info

    def _catalogue(self) -> dict[str, Any]:
        catalogue = self._json("GET", "/object_info", limit=self.limits.catalogue)
        problem = catalogue_problem(catalogue)
        if problem:
            raise ComfyUIBadResponse("GET /object_info", problem)
        return catalogue

    def queue(self) -> QueueState:
        return QueueState.from_json(self._json("GET", "/queue"))

    def history(self, prompt_id: str) -> HistoryEntry | None:
        """The finished prompt's entry; None while it is queued or running, or if unknown."""
        path = f"/history/{quote(prompt_id, safe='')}"
        data = self._json("GET", path)
        if not isinstance(data, dict):
            raise ComfyUIBadResponse(f"GET {path}", "the answer is not an object")
        entry = data.get(prompt_id)
        return HistoryEntry.from_json(prompt_id, entry, f"GET {path}") if entry else None

    # actions

    def upload_image(self, path: str | os.PathLike[str], subfolder: str = "", overwrite: bool = False,
                     folder_type: Literal["input", "output"] = "input") -> UploadedImage:
        """Upload into the server's input folder (or output folder: /upload/image stores any file
        there, e.g. a LoRA under output/loras/, which ComfyUI lists as a LoRA). Without overwrite, a
        different file of the same name gets renamed ("x (1).png"); identical bytes reuse the name."""
        path = Path(path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        form = {"subfolder": subfolder, "type": folder_type, "overwrite": "true" if overwrite else "false"}
        body, form_type = multipart(form, {"image": (path.name, path.read_bytes(), content_type)})
        answer = UploadedImage.from_json(self._json("POST", "/upload/image", body=body, content_type=form_type))
        return answer if answer.type == folder_type else UploadedImage(answer.name, answer.subfolder, folder_type)

    def download(self, file: OutputFile, target: str | os.PathLike[str]) -> Path:
        """Stream one server file from /view to `target` (a temporary name, then renamed): for files
        that no history entry lists, such as what SaveLoRA writes."""
        target = Path(target)
        _safe_target(target.parent.resolve(), file)  # the server-side name must be a plain name too
        self._download(file, target)
        return target

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Stop the running prompt; with prompt_id, only if that prompt is the one running."""
        self._expect_ok(self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else {}))

    def cancel(self) -> None:
        """Make the run() in progress (in any thread) interrupt its prompt and raise Interrupted."""
        self._cancel.set()

    # validation

    def validate(self, workflow: Mapping[str, Any], required_packs: Mapping[str, str] | None = None) -> None:
        """Raise WorkflowValidationError listing every problem the server would refuse.

        A cached catalogue can be stale (a pack installed since), so a problem found against it is
        checked once more against a fresh one before it is reported."""
        problems = check_workflow(workflow, self.object_info(), required_packs or {})
        if problems:
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
            self._run_deadline = None
            self._run_lock.release()

    def _run(self, workflow: Mapping[str, Any], output_dir: Path, prompt_id: str, timeout: float | None,
             required_packs: Mapping[str, str] | None) -> RunResult:
        started = time.monotonic()
        self.validate(workflow, required_packs)
        server = self._server or self.system_stats()
        self._run_deadline = None if timeout is None else started + timeout
        # opened before the POST: missed events are not replayed
        with EventSocket(self._ws_url(), self.limits.event) as events:
            events.connect(min(self.timeout, 10.0))
            self._submit(workflow, prompt_id)
            submitted = time.monotonic()
            watch = RunWatch(self._calls(), workflow, prompt_id, events, self._run_deadline, timeout)
            entry = watch.wait()
        self._run_deadline = None
        finished = time.monotonic()
        outputs = self._download_all(entry, output_dir)
        done = time.monotonic()
        execute_s = entry.server_seconds()
        if execute_s is None:
            execute_s = finished - (watch.started_at or submitted)
        timings = Timings(submit_s=submitted - started, queue_s=max(0.0, finished - submitted - execute_s),
                          execute_s=execute_s, download_s=done - finished, total_s=done - started)
        self._log(f"[{prompt_id[:8]}] done: {len(outputs)} file(s) in {timings.total_s:.2f}s "
                  f"(queue {timings.queue_s:.2f}s, execute {execute_s:.2f}s, download {timings.download_s:.2f}s)")
        return RunResult(prompt_id=prompt_id, outputs=outputs, node_outputs=entry.outputs, timings=timings,
                         server=server, submissions=watch.submissions)

    def _calls(self) -> ServerCalls:
        return ServerCalls(history=self.history, locate=self._locate, submit=self._submit, abandon=self._abandon,
                           log=self._log, progress=self._progress, cancel=self._cancel,
                           poll_interval=self.poll_interval, backoff=self.backoff,
                           reconnect_window=self.reconnect_window, connect_timeout=min(self.timeout, 10.0))

    def _submit(self, workflow: Mapping[str, Any], prompt_id: str) -> None:
        """POST /prompt; when the answer is lost, look for the prompt before posting again, so that it
        is never queued twice (ComfyUI does not reject a duplicate prompt_id)."""
        body = {"prompt": workflow, "client_id": self.client_id, "prompt_id": prompt_id}

        def post() -> None:
            with self._transport_errors("POST /prompt", retry_on=(ConnectionFailed, DeadlineExceeded)):
                response = self._http.request("POST", "/prompt", json=body, timeout=self._call_timeout(),
                                              limit=self.limits.json)
            _retry_on_status(response.status)
            self._accepted(response, prompt_id)

        def queued_anyway(cause: str) -> bool:
            self._log(f"[{prompt_id[:8]}] POST /prompt failed ({cause}); checking whether it was queued anyway")
            if self._locate(prompt_id) == "lost":
                return False
            self._log(f"[{prompt_id[:8]}] the server had queued it; not posting again")
            return True

        self._with_retries("/prompt", post, after_pause=queued_anyway)

    def _accepted(self, response: Response, prompt_id: str) -> None:
        what = "POST /prompt"
        if response.status == 400:
            body = _json_or_none(response)
            body = body if isinstance(body, dict) else {"error": {"message": response.excerpt()}}
            error, node_errors = body.get("error"), body.get("node_errors")
            error = error if isinstance(error, dict) else {"message": error} if error else {}
            raise PromptRejected(prompt_id, error, node_errors if isinstance(node_errors, dict) else {})
        body = self._expect_ok(response)
        if not isinstance(body, dict):
            raise ComfyUIBadResponse(what, "the answer is not an object")
        node_errors = body.get("node_errors")
        if node_errors:
            # partial acceptance: the outputs that failed validation would silently not be made
            self._abandon(prompt_id)
            raise PromptRejected(prompt_id, {"message": "some outputs failed validation; the prompt was withdrawn"},
                                 node_errors if isinstance(node_errors, dict) else {"?": node_errors})
        self._log(f"[{prompt_id[:8]}] queued as number {str(body.get('number'))[:40]}")

    def _locate(self, prompt_id: str) -> HistoryEntry | Literal["queued", "lost"]:
        # /queue first: a prompt moves from the queue to the history, so this order cannot miss it
        if prompt_id in self.queue():
            return "queued"
        return self.history(prompt_id) or "lost"

    def _abandon(self, prompt_id: str) -> None:
        """Best effort: drop the prompt if still pending, stop it if running."""
        for path, body in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                self._request("POST", path, json=body, until=time.monotonic(),
                              timeout=Timeout(total=min(self.timeout, 10.0)))
            except ComfyUIError as exc:
                self._log(f"[{prompt_id[:8]}] could not reach {path} to stop the prompt: {exc}")

    # downloads

    def _download_all(self, entry: HistoryEntry, output_dir: Path) -> list[Path]:
        root = output_dir.resolve()
        files = entry.files(f"GET /history/{entry.prompt_id}")
        wanted = [file for file in files if file.type != "temp"]
        if len(wanted) < len(files):
            self._log(f"[{entry.prompt_id[:8]}] skipping {len(files) - len(wanted)} temp preview file(s)")
        # every name is checked before anything is written
        targets = {_safe_target(root, file): file for file in wanted}
        _refuse_nesting(root, targets)
        for target, file in targets.items():
            self._download(file, target)
        return list(targets)

    def _download(self, file: OutputFile, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        params = {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}
        temporary = target.with_name(f".{target.name[:200]}.{uuid.uuid4().hex[:8]}.part")

        def download() -> None:
            try:
                with self._transport_errors(f"GET /view?{urlencode(params)}"):
                    self._stream_to(params, temporary)
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)

        self._with_retries("/view", download)

    def _stream_to(self, params: dict[str, Any], path: Path) -> None:
        timeout = Timeout(total=self.download_timeout, connect=min(self.timeout, 10.0))
        with self._http.stream("GET", "/view", params=params, timeout=timeout, limit=self.limits.file) as answer:
            _retry_on_status(answer.status)
            if answer.status != 200:
                raise ComfyUIBadResponse(f"GET /view?{urlencode(params)}", f"HTTP {answer.status}")
            with open(path, "xb") as out:
                for chunk in answer.chunks():
                    out.write(chunk)

    # HTTP

    def _ws_url(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + "/ws", urlencode({"clientId": self.client_id}), ""))

    def _retry_until(self) -> float:
        until = time.monotonic() + self.reconnect_window
        return until if self._run_deadline is None else min(until, self._run_deadline)

    def _call_timeout(self) -> Timeout:
        """The per-call deadline, cut to what is left of the run's (a call may not outlive the run)."""
        total = self.timeout
        if self._run_deadline is not None:
            total = max(0.05, min(total, self._run_deadline - time.monotonic()))
        return Timeout(total=total, connect=min(total, 10.0))

    @contextmanager
    def _transport_errors(self, what: str, retry_on: tuple[type[TransportError], ...] = (ConnectionFailed,)
                          ) -> Iterator[None]:
        """Transport failures as this family's errors, or as _Retry for those worth another attempt."""
        try:
            yield
        except retry_on as exc:
            raise _Retry(exc.reason) from None
        except DeadlineExceeded as exc:
            raise ComfyUIRequestTimeout(what, exc.seconds) from None
        except ResponseTooLarge as exc:
            raise ComfyUIResponseTooLarge(what, exc.limit) from None
        except TransportError as exc:
            raise ComfyUIBadResponse(what, exc.reason) from None

    def _with_retries(self, path: str, attempt: Callable[[], _T], *, until: float | None = None,
                      after_pause: Callable[[str], bool] | None = None) -> _T | None:
        """attempt() until it returns, again after each _Retry (waiting `backoff`, doubling) until
        `until` (default: the reconnect window, cut to the run's deadline); then ComfyUIUnavailable.
        `after_pause(cause)` True ends the retries early with None."""
        attempts, retry = 0, pauses(self.backoff, self._retry_until() if until is None else until)
        while True:
            attempts += 1
            try:
                return attempt()
            except _Retry as exc:
                cause = exc.cause
            pause = next(retry, None)
            if pause is None:
                window = self.reconnect_window if until is None else None
                raise ComfyUIUnavailable(f"{self._http.url}{path}", attempts, cause, window)
            time.sleep(pause)
            if after_pause is not None and after_pause(cause):
                return None

    def _request(self, method: str, path: str, *, limit: int | None = None, until: float | None = None,
                 timeout: Timeout | None = None, **kwargs: Any) -> Response:
        """One JSON call, retried on connection failures and 502/503/504 (see _with_retries)."""
        def attempt() -> Response:
            with self._transport_errors(f"{method} {path}"):
                response = self._http.request(method, path, timeout=timeout or self._call_timeout(),
                                              limit=limit or self.limits.json, **kwargs)
            _retry_on_status(response.status)
            return response

        return self._with_retries(path, attempt, until=until)

    def _json(self, method: str, path: str, *, limit: int | None = None, **kwargs: Any) -> Any:
        return self._expect_ok(self._request(method, path, limit=limit, **kwargs))

    @staticmethod
    def _expect_ok(response: Response) -> Any:
        """The JSON of a 200 answer (None for an empty body); anything else is ComfyUIBadResponse."""
        what = f"{response.method} {urlsplit(response.url).path}"
        if response.status != 200:
            raise ComfyUIBadResponse(what, f"HTTP {response.status}: {response.excerpt()}")
        if not response.body.strip():
            return None
        try:
            return response.json()
        except MalformedResponse as exc:
            raise ComfyUIBadResponse(what, exc.reason) from None


class _Retry(Exception):
    """An attempt that may succeed later: a connection failure, a 502/503/504."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _retry_on_status(status: int) -> None:
    if status in TRANSIENT_STATUS:
        raise _Retry(f"HTTP {status}")


def _json_or_none(response: Response) -> Any:
    try:
        return response.json()
    except MalformedResponse:
        return None


def _unsafe(file: OutputFile, reason: str) -> UnsafeOutputPath:
    return UnsafeOutputPath(file.node_id, file.subfolder, file.filename, reason)


def _safe_target(root: Path, file: OutputFile) -> Path:
    """The local path for a server-reported file, refusing anything that could leave root or that the
    file system cannot hold."""
    name, subfolder = file.filename, file.subfolder
    if not isinstance(name, str) or name in ("", ".", "..") or re.search(r"[/\\\x00]", name):
        raise _unsafe(file, "the filename must be a plain file name")
    if not isinstance(subfolder, str) or "\x00" in subfolder or re.match(r"([/\\]|[A-Za-z]:)", subfolder):
        raise _unsafe(file, "the subfolder must be a relative path")
    parts = [part for part in re.split(r"[/\\]", subfolder) if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(file, "the subfolder must not contain '..'")
    if any(len(part.encode("utf-8", "surrogatepass")) > _NAME_BYTES for part in [*parts, name]):
        raise _unsafe(file, f"a name is longer than {_NAME_BYTES} bytes")
    target = root.joinpath(*parts, name)
    if len(str(target).encode("utf-8", "surrogatepass")) > _PATH_BYTES:
        raise _unsafe(file, f"the path would be longer than {_PATH_BYTES} bytes")
    if not target.resolve().is_relative_to(root):  # e.g. a symlinked subfolder
        raise _unsafe(file, f"it resolves outside {root}")
    if target.is_dir():
        raise _unsafe(file, "it names a directory")
    return target


def _refuse_nesting(root: Path, targets: Mapping[Path, OutputFile]) -> None:
    """No file may need another's path, or an existing file's, as its folder ("x" and "x/y.png")."""
    for target, file in targets.items():
        for parent in target.relative_to(root).parents[:-1]:
            if root / parent in targets or (root / parent).is_file():
                raise _unsafe(file, f"its folder {parent.as_posix()!r} is also a file")
