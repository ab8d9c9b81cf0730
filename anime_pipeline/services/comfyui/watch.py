"""Following one prompt to its end: the /ws event stream, reconnects, polling, one resubmission.

The prompt is done at `executing` with node null and our prompt_id, which the server sends after it
has written the history entry (`execution_success` comes before that write, so it is only logged).
When the socket drops, the watch reconnects within the reconnect window and otherwise polls
/history; after a drop it asks the server where the prompt is, since the events sent meanwhile are
gone. A prompt in neither /queue nor /history was forgotten by a restart: it is submitted once more
with the same prompt_id; a second loss raises PromptLost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from anime_pipeline.services import redact_text
from anime_pipeline.services.comfyui.errors import (ComfyUIBadResponse, ComfyUIError, ComfyUITimeout,
                                                    ExecutionFailed, Interrupted, PromptLost)
from anime_pipeline.services.comfyui.wire import HistoryEntry, ProgressEvent, reading
from anime_pipeline.services.http import BadJSON, as_object, decode_json, field

TRANSIENT_STATUS = frozenset({502, 503, 504})  # a proxy in front of a (re)starting server
MAX_PAUSE_S = 5.0  # retries back off up to this, so a restarted server is noticed within seconds
_SAFETY_CHECK_TICKS = 20  # even with a live socket, ask /queue + /history every 20 poll intervals
_WS_EVENT = "WebSocket /ws"


class _NoCredentials(logging.Filter):
    """websockets logs the handshake's headers at DEBUG, Authorization (the URL's user:password) too."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "authorization" not in record.getMessage().lower()


_WS_LOGGER = logging.getLogger(f"{__name__}.websocket")
_WS_LOGGER.addFilter(_NoCredentials())


def pauses(first: float, until: float) -> Iterator[float]:
    """Waits between retries: `first`, doubling up to MAX_PAUSE_S, for as long as they end before `until`."""
    pause = first
    while time.monotonic() + pause <= until:
        yield pause
        pause = min(pause * 2, MAX_PAUSE_S)


@dataclass(frozen=True)
class ServerCalls:
    """What a watch needs from the client that started the run."""

    history: Callable[[str], HistoryEntry | None]
    locate: Callable[[str], HistoryEntry | Literal["queued", "lost"]]
    submit: Callable[[Mapping[str, Any], str], None]
    abandon: Callable[[str], None]
    log: Callable[[str], None]
    progress: Callable[[ProgressEvent], None]
    cancel: threading.Event
    poll_interval: float
    backoff: float
    reconnect_window: float
    connect_timeout: float


class _Dropped:
    pass


DROPPED = _Dropped()


class EventSocket:
    """The /ws event stream. receive() gives a message, None when nothing came, or DROPPED."""

    def __init__(self, url: str, max_size: int) -> None:
        self.url = url
        self.max_size = max_size
        self.failure = ""
        self.refused = False  # the server answered the upgrade with a non-transient HTTP error
        self._ws: ClientConnection | None = None
        self._closing = ExitStack()

    def __enter__(self) -> EventSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def connect(self, timeout: float) -> bool:
        self.close()
        try:
            # entered as a context manager, the form every websockets release from 13 on supports
            self._ws = self._closing.enter_context(connect(self.url, open_timeout=timeout, close_timeout=1,
                                                           max_size=self.max_size, proxy=None, compression=None,
                                                           logger=_WS_LOGGER))
        except InvalidStatus as exc:
            status = exc.response.status_code
            self.failure, self.refused = f"HTTP {status}", status not in TRANSIENT_STATUS
        except (OSError, TimeoutError, WebSocketException) as exc:
            self.failure, self.refused = redact_text(str(exc) or type(exc).__name__), False
        return self.connected

    def receive(self, wait: float) -> dict[str, Any] | None | _Dropped:
        assert self._ws is not None
        try:
            payload = self._ws.recv(timeout=wait)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            self.failure = f"closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            self.close()
            return DROPPED
        if isinstance(payload, bytes):
            return None  # binary frames carry previews
        try:
            return as_object(decode_json(payload), "the event")
        except BadJSON as exc:
            raise ComfyUIBadResponse(_WS_EVENT, str(exc)) from None

    def close(self) -> None:
        self._ws = None
        self._closing.close()


class RunWatch:
    """Follows one prompt to its end: WebSocket events, reconnects, polling, one resubmission."""

    def __init__(self, calls: ServerCalls, workflow: Mapping[str, Any], prompt_id: str, socket: EventSocket,
                 deadline: float | None, timeout: float | None) -> None:
        self.calls = calls
        self.workflow = workflow
        self.prompt_id = prompt_id
        self.socket = socket
        self.deadline = deadline
        self.timeout = timeout
        self.submissions = 1
        self.started_at: float | None = None
        self.queue_remaining: int | None = None
        self.tag = f"[{prompt_id[:8]}]"
        self.next_check = time.monotonic() + calls.poll_interval * _SAFETY_CHECK_TICKS
        if not socket.connected:
            calls.log(f"{self.tag} no WebSocket ({socket.failure}); polling /history")

    def wait(self) -> HistoryEntry:
        try:
            while True:
                self._check_stop()
                entry = self._step()
                if entry is not None:
                    return self._successful(entry)
        except (ExecutionFailed, Interrupted, PromptLost, ComfyUITimeout):
            raise  # over on the server, or stopped there already
        except BaseException as error:  # a broken answer, KeyboardInterrupt, a failing progress callback
            self.calls.abandon(self.prompt_id)  # so the GPU does not keep working for nobody
            if isinstance(error, ComfyUIError) and self._past_deadline():
                raise ComfyUITimeout(self.prompt_id, self.timeout or 0.0) from error
            raise

    def _step(self) -> HistoryEntry | None:
        if not self.socket.connected:
            self.calls.cancel.wait(self._tick())
            return self._ask_server()
        message = self.socket.receive(self._tick())
        if message is DROPPED:
            return self._recover()
        if isinstance(message, dict) and self.handle(message):
            entry = self.calls.history(self.prompt_id)
            if entry is None:  # not how 0.3.64 behaves, but never wait on a socket that is done
                self.socket.close()
            return entry
        if time.monotonic() >= self.next_check:  # a socket can go quiet without closing
            return self._ask_server()
        return None

    def _tick(self) -> float:
        tick = self.calls.poll_interval
        if self.deadline is not None:
            tick = min(tick, self.deadline - time.monotonic())
        return max(tick, 0.001)

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _check_stop(self) -> None:
        if self.calls.cancel.is_set():
            self.calls.abandon(self.prompt_id)
            raise Interrupted(self.prompt_id, "cancelled by the caller")
        if self._past_deadline():
            self.calls.abandon(self.prompt_id)
            raise ComfyUITimeout(self.prompt_id, self.timeout or 0.0)

    def _recover(self) -> HistoryEntry | None:
        calls = self.calls
        calls.log(f"{self.tag} WebSocket dropped ({self.socket.failure}); reconnecting")
        until = time.monotonic() + calls.reconnect_window
        if self.deadline is not None:
            until = min(until, self.deadline)
        for pause in pauses(calls.backoff, until):
            if calls.cancel.wait(pause):
                return None
            if self.socket.connect(calls.connect_timeout):
                calls.log(f"{self.tag} WebSocket reconnected")
                break
            if self.socket.refused:
                break
        if not self.socket.connected:
            calls.log(f"{self.tag} cannot reconnect ({self.socket.failure}); polling /history every "
                      f"{calls.poll_interval:g}s")
        return self._ask_server()  # events sent while we were away are gone: ask where the prompt is

    def _ask_server(self) -> HistoryEntry | None:
        self.next_check = time.monotonic() + self.calls.poll_interval * _SAFETY_CHECK_TICKS
        where = self.calls.locate(self.prompt_id)
        if where == "lost":
            self._resubmit()
            return None
        return None if where == "queued" else where

    def _resubmit(self) -> None:
        if self.submissions > 1:
            raise PromptLost(self.prompt_id)
        self.calls.log(f"{self.tag} the server no longer knows this prompt (restarted?); resubmitting it once "
                       "with the same prompt_id")
        self.calls.submit(self.workflow, self.prompt_id)
        self.submissions += 1

    def _successful(self, entry: HistoryEntry) -> HistoryEntry:
        if entry.status == "success":
            return entry
        error = entry.message("execution_error")
        if error is not None:
            raise ExecutionFailed.from_event(error)
        if entry.message("execution_interrupted") is not None:
            raise Interrupted(self.prompt_id, "interrupted on the server")
        raise ComfyUIBadResponse(f"GET /history/{self.prompt_id}",
                                 f"the prompt ended with status {entry.status[:40]!r} and no error message")

    def handle(self, message: Mapping[str, Any]) -> bool:
        """Log and report one event; True when it says our prompt is done."""
        with reading(_WS_EVENT):
            kind = field(message, "type", str, "event")
            data = field(message, "data", dict, f"{kind[:40]!r} event", {})
        if kind == "status":
            self._on_status(data)
            return False
        if data.get("prompt_id") != self.prompt_id:  # other clients' broadcasts, stale runs
            return False
        if kind == "executing":
            if data.get("node") is None:
                return True
            self.calls.log(f"{self.tag} executing {self._node(data['node'])}")
        elif kind == "progress":
            self._on_progress(data)
        elif kind == "execution_start":
            self.started_at = time.monotonic()
            self.calls.log(f"{self.tag} execution started")
        elif kind == "execution_cached":
            self._on_cached(data)
        elif kind == "executed":
            self._on_executed(data)
        elif kind == "execution_success":
            self.calls.log(f"{self.tag} execution succeeded")
        elif kind == "execution_error":
            raise ExecutionFailed.from_event(data)
        elif kind == "execution_interrupted":
            raise Interrupted(self.prompt_id, f"interrupted on the server in {self._node(data.get('node_id'))}")
        return False

    def _on_status(self, data: Mapping[str, Any]) -> None:
        with reading(f"{_WS_EVENT} 'status' event"):
            status = field(data, "status", dict, "data", {})
            exec_info = field(status, "exec_info", dict, "data.status", {})
            remaining = field(exec_info, "queue_remaining", int, "data.status.exec_info", None)
        if self.started_at is None and remaining and remaining != self.queue_remaining:
            self.calls.log(f"{self.tag} waiting: {remaining} prompt(s) in the server queue")
        self.queue_remaining = remaining

    def _on_progress(self, data: Mapping[str, Any]) -> None:
        event = ProgressEvent.from_event(data)
        self.calls.log(f"{self.tag} {self._node(event.node)} {event.value}/{event.max} ({event.percent:.0f}%)")
        self.calls.progress(event)

    def _on_cached(self, data: Mapping[str, Any]) -> None:
        with reading(f"{_WS_EVENT} 'execution_cached' event"):
            nodes = field(data, "nodes", list, "data", [])
        if nodes:
            self.calls.log(f"{self.tag} cached: {', '.join(self._node(n) for n in nodes)}")

    def _on_executed(self, data: Mapping[str, Any]) -> None:
        with reading(f"{_WS_EVENT} 'executed' event"):
            output = field(data, "output", dict, "data", {})
        count = sum(len(value) for value in output.values() if isinstance(value, list))
        self.calls.log(f"{self.tag} {self._node(data.get('node'))} produced {count} output item(s)")

    def _node(self, node_id: Any) -> str:
        node = self.workflow.get(str(node_id))
        class_type = node.get("class_type", "?") if isinstance(node, Mapping) else "?"
        return f"node {str(node_id)[:40]} ({class_type})"
