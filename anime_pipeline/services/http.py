"""HTTP for the service clients: a total deadline per call, a size cap per answer, strict JSON.

requests and urllib3 time each socket read, not a call: a server that trickles a byte every half
second, or streams and never ends, holds the caller forever, and nothing caps what gets buffered.
Here every call runs on its own connection (http.client) under a watchdog: when the call's total
deadline passes, the watchdog shuts the socket down, which wakes any read blocked on it, and the
call raises DeadlineExceeded. Bodies are read in chunks and abandoned once past the caller's cap.

    http = HTTPTransport("http://127.0.0.1:8188", Timeout(total=30))
    data = http.request("GET", "/system_stats").json()
    with http.stream("GET", "/view", params={...}, limit=MEDIA_LIMIT) as answer:
        for chunk in answer.chunks(): ...

Errors are TransportError subclasses naming the redacted URL; each client turns them into its own
family's errors, so they never reach the client's callers. decode_json and field() raise BadJSON,
which the clients turn into their "bad response" error naming the route and the field.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from anime_pipeline.services import redact_text, redact_url

MiB = 1 << 20
JSON_LIMIT = 8 * MiB  # an API's JSON answer
MEDIA_LIMIT = 256 * MiB  # one image, clip or audio file
MAX_JSON_DEPTH = 64  # ComfyUI's /object_info nests 13 levels; nothing a service sends needs more
EXCERPT_CHARS = 200
_CHUNK = 1 << 16
_SOCKET_SLACK_S = 1.0  # socket timeouts run past the deadline: the watchdog, not the socket, ends a call
REQUIRED = object()


@dataclass(frozen=True)
class Timeout:
    """`total` bounds a whole call: connecting, sending, the status line and headers and the whole
    body, every chunk of a stream included. `connect` bounds the TCP (and TLS) connect alone."""

    total: float
    connect: float = 10.0

    def __post_init__(self) -> None:
        for name in ("total", "connect"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ValueError(f"Timeout.{name} must be a positive number of seconds, got {value!r}")


# -- errors ------------------------------------------------------------------------------------


class TransportError(Exception):
    """Why a call got no usable answer. The URL is redacted; clients translate these."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method, self.url, self.reason = method, redact_url(url), redact_text(reason)
        super().__init__(f"{method} {self.url}: {self.reason}")


class ConnectionFailed(TransportError):
    """No complete answer came: refused, unknown host, reset, or closed before the body ended."""


class DeadlineExceeded(TransportError):
    def __init__(self, method: str, url: str, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(method, url, f"no complete answer within {seconds:g} s")


class ResponseTooLarge(TransportError):
    def __init__(self, method: str, url: str, limit: int, announced: int | None = None) -> None:
        self.limit = limit
        said = f"announced {announced} bytes" if announced is not None else "kept sending"
        super().__init__(method, url, f"answer larger than the {limit}-byte cap for this route ({said})")


class MalformedResponse(TransportError):
    """Not a valid HTTP answer, or a body that is not the JSON the route sends."""


class BadJSON(ValueError):
    """A body, a message or a field that is not the JSON expected; the text says where and why."""


# -- JSON --------------------------------------------------------------------------------------


def excerpt(data: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """The start of a server's text for an error message: control characters escaped, shortened."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    more = f"… ({len(text)} characters)" if len(text) > limit else ""
    return repr(text[:limit]) + more


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return {dict: "an object", list: "an array", str: "a string"}.get(type(value), type(value).__name__)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJSON(f"the number {excerpt(text, 40)} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise BadJSON(f"{name} is not a JSON value")


def decode_json(data: bytes | str) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, finite numbers, at most MAX_JSON_DEPTH levels deep."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise BadJSON(f"not UTF-8 text (byte {exc.start}): {excerpt(data)}") from None
    if text.lstrip()[:1] == "<":
        raise BadJSON(f"an HTML or XML page where JSON was expected: {excerpt(text.lstrip())}")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except BadJSON:
        raise
    except RecursionError:
        raise BadJSON(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise BadJSON(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more digits than int() accepts
        raise BadJSON(f"not valid JSON ({excerpt(str(exc), 80)})") from None
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise BadJSON(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadJSON(f"{where} is {json_type(value)}, not an object")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadJSON(f"{where} is {json_type(value)}, not an array")
    return value


def field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str = "",
          default: Any = REQUIRED) -> Any:
    """data[key], checked to be of `kind` (a boolean is never a number); `default` when absent or null."""
    value = data.get(key)
    name = f"{where}.{key}" if where else key
    if value is None:
        if default is REQUIRED:
            raise BadJSON(f"{name} is {'null' if key in data else 'missing'}")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join(dict.fromkeys(json_type(_EXAMPLES[k]) for k in kinds if k in _EXAMPLES))
        raise BadJSON(f"{name} is {json_type(value)}, not {wanted}")
    return value


_EXAMPLES: dict[type, Any] = {str: "", int: 0, float: 0.0, dict: {}, list: [], bool: True}


# -- calls -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    method: str
    url: str  # redacted
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        try:
            return decode_json(self.body)
        except BadJSON as exc:
            raise MalformedResponse(self.method, self.url, str(exc)) from None

    def excerpt(self) -> str:
        return excerpt(self.body.strip()) if self.body.strip() else f"HTTP {self.status} with no body"


class Stream:
    """An answer whose body is read as it arrives, under the call's deadline and the route's cap."""

    def __init__(self, call: _Call, answer: http.client.HTTPResponse, limit: int) -> None:
        self._call, self._answer, self._limit = call, answer, limit
        self.status = answer.status
        self.url = redact_url(call.url)
        self.headers = {name.lower(): value for name, value in answer.getheaders()}
        if answer.length is not None and answer.length > limit:
            raise ResponseTooLarge(call.method, call.url, limit, announced=answer.length)

    def chunks(self) -> Iterator[bytes]:
        received = 0
        while True:
            data = self._call.guard(lambda: self._answer.read1(_CHUNK))
            if not data:
                if self._answer.length:  # the server closed before the length it announced
                    raise ConnectionFailed(self._call.method, self._call.url,
                                           f"connection closed after {received} bytes of the answer")
                return
            received += len(data)
            if received > self._limit:
                raise ResponseTooLarge(self._call.method, self._call.url, self._limit)
            yield data

    def lines(self) -> Iterator[bytes]:
        """NDJSON-style lines, without their newline; the cap bounds any one line too."""
        pending = b""
        for chunk in self.chunks():
            *complete, pending = (pending + chunk).split(b"\n")
            yield from complete
        if pending:
            yield pending

    def read(self) -> bytes:
        return b"".join(self.chunks())


class _Call:
    """One request on its own connection, ended by a watchdog at its total deadline."""

    def __init__(self, target: _Target, method: str, path: str, timeout: Timeout) -> None:
        self.method, self.url, self.timeout = method, target.base + path, timeout
        self._target, self._path = target, path
        self._lock = threading.Lock()
        self._expired = False
        self._socket: socket.socket | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._answer: http.client.HTTPResponse | None = None
        self._watchdog = threading.Timer(timeout.total, self._expire)
        self._watchdog.daemon = True

    def open(self, body: bytes | None, headers: Mapping[str, str]) -> http.client.HTTPResponse:
        self._watchdog.start()
        connection = self._target.connection(min(self.timeout.connect, self.timeout.total))
        self._connection = connection
        self.guard(connection.connect)
        with self._lock:
            if self._expired:
                raise DeadlineExceeded(self.method, self.url, self.timeout.total)
            self._socket = connection.sock
        connection.sock.settimeout(self.timeout.total + _SOCKET_SLACK_S)
        self.guard(lambda: connection.request(self.method, self._path, body=body, headers=dict(headers)))
        self._answer = self.guard(connection.getresponse)
        return self._answer

    def guard(self, action: Any) -> Any:
        """Run one blocking step; any failure becomes the TransportError that explains it."""
        try:
            result = action()
        except TransportError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise self._failure(exc) from exc
        if self._expired:
            raise DeadlineExceeded(self.method, self.url, self.timeout.total)
        return result

    def _failure(self, exc: Exception) -> TransportError:
        if self._expired:
            return DeadlineExceeded(self.method, self.url, self.timeout.total)
        if isinstance(exc, http.client.RemoteDisconnected):
            return ConnectionFailed(self.method, self.url, "connection closed by the server before it answered")
        if isinstance(exc, http.client.IncompleteRead):
            return ConnectionFailed(self.method, self.url, "connection closed before the whole answer arrived")
        if isinstance(exc, http.client.HTTPException):
            return MalformedResponse(self.method, self.url, f"not a valid HTTP answer ({type(exc).__name__})")
        return ConnectionFailed(self.method, self.url, _socket_problem(exc, self.timeout.connect))

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sock = self._socket
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Hang up now: the answer holds the socket open too, and a server still sending to an open
        socket nobody reads would block on it."""
        self._watchdog.cancel()
        if self._answer is not None:
            self._answer.close()
        if self._connection is not None:
            self._connection.close()


def _socket_problem(exc: BaseException, connect_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return f"no connection within {connect_s:g} s"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or exc})"
    return str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc) or type(exc).__name__


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    prefix: str  # the base URL's path
    base: str  # the whole base URL, for error messages (TransportError redacts it)
    authorization: str | None  # Basic credentials from the URL's user:password@

    def connection(self, connect_s: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=connect_s)
        return http.client.HTTPConnection(self.host, self.port, timeout=connect_s)


def _parse_base_url(base_url: str) -> _Target:
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"service URL {redact_url(base_url)!r} is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"service URL {redact_url(base_url)!r} must look like http://host:port")
    authorization = None
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    return _Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), base_url.rstrip("/"), authorization)


class HTTPTransport:
    """Calls to one server, each on its own connection, each under a total deadline and a size cap.
    Credentials in the base URL are sent as HTTP Basic authentication and shown nowhere."""

    def __init__(self, base_url: str, timeout: Timeout) -> None:
        self._target = _parse_base_url(base_url)
        self.timeout = timeout
        self.url = redact_url(self._target.base)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                body: bytes | None = None, content_type: str | None = None, timeout: Timeout | None = None,
                limit: int = JSON_LIMIT) -> Response:
        """The whole answer, read before returning; past `limit` bytes it is ResponseTooLarge."""
        with self.stream(method, path, params=params, json=json, body=body, content_type=content_type,
                         timeout=timeout, limit=limit) as answer:
            return Response(method, answer.url, answer.status, answer.headers, answer.read())

    @contextmanager
    def stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
               body: bytes | None = None, content_type: str | None = None, timeout: Timeout | None = None,
               limit: int = MEDIA_LIMIT) -> Iterator[Stream]:
        target = self._target.prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = {"Connection": "close", "User-Agent": "anime-pipeline", "Accept-Encoding": "identity"}
        if self._target.authorization:
            headers["Authorization"] = self._target.authorization
        if json is not None:
            body, content_type = _json_bytes(json), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        call = _Call(self._target, method, target, timeout or self.timeout)
        try:
            yield Stream(call, call.open(body, headers), limit)
        finally:
            call.close()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def multipart(fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its Content-Type; files map a field to (filename, bytes, type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    for name, (filename, content, kind) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; '
                f'filename="{_quoted(filename)}"\r\nContent-Type: {kind}\r\n\r\n')
        parts.append(head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
