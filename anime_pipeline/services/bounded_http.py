"""One HTTP exchange with a total deadline and a size cap, for the speech, ACE-Step and Jellyfin clients.

`requests` bounds each socket read, not the exchange: a server that drips a byte now and then
keeps a download alive forever. Here a watchdog shuts the socket down when the deadline passes,
so connecting, sending, waiting for headers and reading the body together never outlast it.
Every failure is a `TransportError`; each client turns it into its own family's error, so a
caller catches one type per service.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from anime_pipeline.services import redact_url

CHUNK = 64 * 1024
EXCERPT_CHARS = 300


class TransportError(Exception):
    """No complete answer: `reason` says why in a few words (never with a credential in it)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = redact_url(url), reason
        super().__init__(f"{self.url}: {reason}")


class Unreachable(TransportError):
    pass


class DeadlineExceeded(TransportError):
    pass


class TooLarge(TransportError):
    pass


class Deadline:
    """A point in (monotonic) time that every step of one operation shares."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline must be positive, got {seconds}")
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when the deadline comes first."""
        time.sleep(max(0.0, min(seconds, self.remaining())))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body.decode("utf-8"))

    def excerpt(self) -> str:
        text = self.body.decode("utf-8", errors="replace").strip()
        return text[:EXCERPT_CHARS] + ("…" if len(text) > EXCERPT_CHARS else "")


@dataclass(frozen=True)
class Endpoint:
    """A base URL split once: credentials in it become a Basic header, never part of a message."""

    scheme: str
    host: str
    port: int
    prefix: str
    basic_auth: str | None
    display: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{redact_url(url)!r} is not an http(s) URL")
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), auth, redact_url(url).rstrip("/"))

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.display}{path}{query}"


def exchange(endpoint: Endpoint, method: str, path: str, *, deadline: Deadline, max_bytes: int,
             params: dict[str, Any] | None = None, json_body: Any = None, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Reply:
    """Send one request and read the whole answer, within `deadline` and at most `max_bytes` of body."""
    url = endpoint.url(path, params)
    if deadline.expired:
        raise DeadlineExceeded(url, f"no time left of the {deadline.seconds:g} s deadline")
    send_headers = {"Accept": "*/*", "Connection": "close", **(headers or {})}
    if endpoint.basic_auth and "Authorization" not in send_headers:
        send_headers["Authorization"] = endpoint.basic_auth
    if json_body is not None:
        body = json.dumps(json_body).encode()
        send_headers["Content-Type"] = "application/json"
    target = endpoint.prefix + path + (f"?{urlencode(params)}" if params else "")
    connection = _connection(endpoint, deadline.remaining())
    watchdog: threading.Timer | None = None
    try:
        connection.connect()
        # http.client drops its reference to the socket once a closing response is read: keep ours.
        watchdog = threading.Timer(max(0.0, deadline.remaining()), _shut, args=(connection.sock,))
        watchdog.daemon = True
        watchdog.start()
        connection.request(method, target, body=body, headers=send_headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     _read_body(response, url, max_bytes, deadline))
    except TransportError:
        raise
    except (OSError, http.client.HTTPException) as exc:
        if deadline.expired or isinstance(exc, TimeoutError | socket.timeout):
            raise DeadlineExceeded(url, f"no complete answer within {deadline.seconds:g} s") from None
        raise Unreachable(url, _problem(exc)) from None
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.close()


def _connection(endpoint: Endpoint, timeout: float) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        return http.client.HTTPSConnection(endpoint.host, endpoint.port, timeout=timeout,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=timeout)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the exchange ended on its own


def _read_body(response: http.client.HTTPResponse, url: str, max_bytes: int, deadline: Deadline) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(url, f"the answer declares {int(declared)} bytes, more than the {max_bytes}-byte cap")
    chunks, size = [], 0
    while chunk := response.read1(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(url, f"the answer is larger than the {max_bytes}-byte cap")
        chunks.append(chunk)
    if deadline.expired:
        raise DeadlineExceeded(url, f"no complete answer within {deadline.seconds:g} s")
    if response.length:  # http.client counts down Content-Length: bytes still owed
        raise Unreachable(url, f"the server closed the connection {response.length} bytes short of its answer")
    return b"".join(chunks)


def _problem(exc: BaseException) -> str:
    """A short cause: the OS's own words for the usual suspects, the exception's name otherwise."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset by the server"
    if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return "the server closed the connection before answering in full"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or type(exc).__name__})"
    return str(exc).splitlines()[0][:EXCERPT_CHARS] if str(exc) else type(exc).__name__
