"""Hostile answers the in-process fakes give instead of the real ones, per route (issue 14's classes).

    fake.hostile["/history"] = HTML                 # a proxy's error page where JSON was expected
    fake.hostile["/view"] = Huge(2 * 1024**3)       # a 2 GB "image", sent as fast as it is read
    fake.hostile["/api/chat"] = Trickle(0.5)        # one byte every half second, forever

A route key matches its path and every path below it ("/history" also matches "/history/<id>").
Every endless mode stops as soon as the client hangs up, so a fake never outlives its test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Body:
    """A fixed answer: HTML, JSON of the wrong shape, nesting too deep."""

    content: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True)
class Trickle:
    """One byte every `interval` seconds, forever: of the body (status line and headers sent at
    once), or from the status line on."""

    interval: float = 0.5
    headers_too: bool = False


@dataclass(frozen=True)
class Endless:
    """A chunked body that never ends."""

    chunk: bytes = b"x" * 65536
    interval: float = 0.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class Huge:
    """A Content-Length of `size` bytes, sent as zeros for as long as the client reads."""

    size: int
    content_type: str = "image/png"


Hostile = Body | Trickle | Endless | Huge
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HTML = Body(b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
            b"<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>", "text/html")


def deep_json(depth: int) -> Body:
    return Body(b"[" * depth + b"]" * depth)


def middleware(routes: Mapping[str, Hostile]) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware answering the routes in `routes` (edited at any time) the hostile way."""

    @web.middleware
    async def hostile(request: web.Request, handler: Handler) -> web.StreamResponse:
        mode = next((mode for route, mode in list(routes.items())
                     if request.path == route or request.path.startswith(route.rstrip("/") + "/")), None)
        if mode is None:
            return await handler(request)
        return await serve(request, mode)

    return hostile


async def serve(request: web.Request, mode: Hostile) -> web.StreamResponse:
    if isinstance(mode, Body):
        return web.Response(body=mode.content, status=mode.status, content_type=mode.content_type)
    if isinstance(mode, Trickle) and mode.headers_too:
        return await _trickle_everything(request, mode.interval)
    if isinstance(mode, Trickle):
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()  # no length to refuse up front: only the deadline can end it
        return await _forever(request, response, b" ", mode.interval)
    if isinstance(mode, Endless):
        response = web.StreamResponse(headers={"Content-Type": mode.content_type})
        response.enable_chunked_encoding()
        return await _forever(request, response, mode.chunk, mode.interval)
    response = web.StreamResponse(headers={"Content-Length": str(mode.size), "Content-Type": mode.content_type})
    return await _forever(request, response, bytes(1 << 16), 0.0)


async def _forever(request: web.Request, response: web.StreamResponse, chunk: bytes,
                   interval: float) -> web.StreamResponse:
    await response.prepare(request)
    try:
        while not _gone(request):
            await response.write(chunk)
            await asyncio.sleep(interval)
    except (ConnectionError, RuntimeError):  # the client hung up mid-write
        pass
    return response


async def _trickle_everything(request: web.Request, interval: float) -> web.StreamResponse:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: " + b"a" * (1 << 20)
    for byte in head:
        if _gone(request):
            break
        request.transport.write(bytes([byte]))  # type: ignore[union-attr]
        await asyncio.sleep(interval)
    if request.transport is not None:
        request.transport.abort()
    return web.Response()


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()
