"""An in-process fake Ollama server that answers like the real one (reference/protocols.md §2),
with knobs for every failure the client must handle. Also the background-thread aiohttp runner
the other fakes reuse."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.services.hostile import Hostile, middleware

BUSY_TEXT = "server busy, please try again.  maximum pending requests exceeded"  # Ollama's ErrMaxQueue
STREAM_CHUNKS = 3
MAX_BODY = 64 * 2**20  # Ollama sets no body limit; aiohttp's 1 MiB default would refuse one base64 512×768 PNG

Content = str | dict[str, Any]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any


class BackgroundServer:
    """An aiohttp app on 127.0.0.1 at a free port, served by its own event loop in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    async def _start(self) -> str:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class Served:
    """A fake whose aiohttp app serves while the fake is used as a context manager; `url` is set then."""

    url = ""

    def serve(self, app: web.Application) -> None:
        self._server = BackgroundServer(app)

    def __enter__(self):
        self.url = self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def unused_url() -> str:
    """A loopback URL nothing listens on: connecting to it is refused, like a server that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeOllama:
    """Knobs (set any time, also while serving):
    - `answer(*contents)`: queue message contents, one per chat request (dicts are JSON-encoded;
      strings go out verbatim, so "{not json" is a malformed answer);
    - `responder(body) -> content`: used when the queue is empty;
    - `models`: installed names (others get Ollama's 404);
    - `delay`: seconds before any chat answer (for client timeouts);
    - `busy`: the next N chat requests get 503 queue-full; -1 means every one;
    - `server_error`: every chat request gets HTTP 500 with this text;
    - `stream_error`: streamed answers send one chunk, then this as a final {"error"} line;
    - `hostile[path]`: a hostile.py mode answered instead of the real answer;
    - `requests`: every request received, in order."""

    def __init__(self, models: tuple[str, ...] = ("gemma3:latest",), delay: float = 0.0) -> None:
        self.models = list(models)
        self.delay = delay
        self.answers: deque[Content] = deque()
        self.responder: Callable[[dict[str, Any]], Content] | None = None
        self.busy = 0
        self.server_error: str | None = None
        self.stream_error: str | None = None
        self.requests: list[Received] = []
        self.hostile: dict[str, Hostile] = {}
        app = web.Application(client_max_size=MAX_BODY, middlewares=[middleware(self.hostile)])
        app.router.add_get("/", self._root)
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)
        self._server = BackgroundServer(app)
        self.url = ""

    def __enter__(self) -> FakeOllama:
        self.url = self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def answer(self, *contents: Content) -> None:
        self.answers.extend(contents)

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == "/api/chat"]

    def _installed(self, name: str) -> bool:
        return name in self.models or (":" not in name and f"{name}:latest" in self.models)

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.11.4"})

    async def _tags(self, request: web.Request) -> web.Response:
        self.requests.append(Received("GET", "/api/tags", None))
        models = [{"name": name, "model": name, "modified_at": _now(), "size": 3_338_801_804,
                   "digest": f"{abs(hash(name)):064x}"[:64],
                   "details": {"parent_model": "", "format": "gguf", "family": name.split(":")[0],
                               "families": [name.split(":")[0]], "parameter_size": "4.3B",
                               "quantization_level": "Q4_K_M"},
                   "capabilities": ["completion", "vision"]} for name in self.models]
        return web.json_response({"models": models})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return error(400, f"invalid character in request body: {exc}")
        self.requests.append(Received("POST", "/api/chat", body))
        if self.delay:
            await asyncio.sleep(self.delay)
        refusal = self._refusal(body)
        if refusal is not None:
            return refusal
        content = self._next_content(body)
        if content is None:
            return error(500, "fake ollama: no answer scripted for this request")
        if body.get("stream", True):  # Ollama streams unless told not to
            return await self._stream(request, body["model"], content)
        return web.json_response({**self._envelope(body["model"], content), "done": True, "done_reason": "stop",
                                  **self._metrics()})

    def _refusal(self, body: dict[str, Any]) -> web.Response | None:
        """Ollama's checks in its order: request shape, model, format, then the queue."""
        model, fmt = body.get("model"), body.get("format")
        if not model:
            return error(400, "model is required")
        if not self._installed(model):
            return error(404, f'model "{model}" not found, try pulling it first')
        if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
            return error(400, f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON Schema object')
        if self.busy:
            if self.busy > 0:
                self.busy -= 1
            return error(503, BUSY_TEXT)
        if self.server_error:
            return error(500, self.server_error)
        return None

    def _next_content(self, body: dict[str, Any]) -> str | None:
        if self.answers:
            content = self.answers.popleft()
        elif self.responder is not None:
            content = self.responder(body)
        else:
            return None
        return content if isinstance(content, str) else json.dumps(content)

    @staticmethod
    def _envelope(model: str, content: str) -> dict[str, Any]:
        return {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": content}}

    @staticmethod
    def _metrics() -> dict[str, int]:
        return {"total_duration": 5_191_566_416, "load_duration": 2_154_458, "prompt_eval_count": 26,
                "prompt_eval_duration": 383_809_000, "eval_count": 298, "eval_duration": 4_799_921_000}

    async def _stream(self, request: web.Request, model: str, content: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        size = max(1, -(-len(content) // STREAM_CHUNKS))
        for start in range(0, len(content), size):
            line = {**self._envelope(model, content[start:start + size]), "done": False}
            await response.write(json.dumps(line).encode() + b"\n")
            if self.stream_error:
                await response.write(json.dumps({"error": self.stream_error}).encode() + b"\n")
                return response
        final = {**self._envelope(model, ""), "done": True, "done_reason": "stop", **self._metrics()}
        await response.write(json.dumps(final).encode() + b"\n")
        await response.write_eof()
        return response
