"""The shared transport against a real aiohttp server: total deadlines, size caps, strict JSON."""

from __future__ import annotations

import base64
import socket
import threading
import tracemalloc
from collections.abc import Iterator

import pytest
from aiohttp import web

from anime_pipeline.services.http import (
    MAX_JSON_DEPTH,
    BadJSON,
    ConnectionFailed,
    DeadlineExceeded,
    HTTPTransport,
    MalformedResponse,
    ResponseTooLarge,
    Timeout,
    decode_json,
    field,
    multipart,
)
from tests.services.fake_ollama import BackgroundServer, unused_url
from tests.services.hostile import HTML, Endless, Huge, Trickle, deep_json, middleware

MiB = 1 << 20


class Server:
    """A tiny app: /echo answers what it got; `hostile` routes answer the hostile way."""

    def __init__(self) -> None:
        self.hostile: dict = {}
        self.seen: list[dict[str, str]] = []
        app = web.Application(middlewares=[middleware(self.hostile)])
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/cut", self._cut)
        self._server = BackgroundServer(app)
        self.url = self._server.start()

    async def _echo(self, request: web.Request) -> web.Response:
        self.seen.append(dict(request.headers))
        body = await request.read()
        return web.json_response({"method": request.method, "query": dict(request.query), "bytes": len(body)})

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"{" * 10)
        request.transport.abort()  # type: ignore[union-attr]
        return response

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


def transport(server: Server, total: float = 5.0) -> HTTPTransport:
    return HTTPTransport(server.url, Timeout(total=total))


def test_json_round_trip_with_query_and_body(server: Server) -> None:
    answer = transport(server).request("POST", "/echo", params={"a": "1 2"}, json={"x": [1, 2]})
    sent = len(b'{"x":[1,2]}')
    assert answer.status == 200 and answer.json() == {"method": "POST", "query": {"a": "1 2"}, "bytes": sent}


def test_credentials_in_the_url_become_basic_auth_and_are_shown_nowhere(server: Server) -> None:
    host = server.url.removeprefix("http://")
    http = HTTPTransport(f"http://ana:s3cret@{host}", Timeout(total=5))
    http.request("GET", "/echo")
    assert server.seen[-1]["Authorization"] == "Basic " + base64.b64encode(b"ana:s3cret").decode()
    assert "s3cret" not in http.url
    server.hostile["/echo"] = Trickle(0.5)
    with pytest.raises(DeadlineExceeded) as caught:
        HTTPTransport(f"http://ana:s3cret@{host}", Timeout(total=1)).request("GET", "/echo?token=abc")
    assert "s3cret" not in str(caught.value) and "abc" not in str(caught.value) and host in str(caught.value)


def test_a_body_trickling_one_byte_every_half_second_ends_at_the_total_deadline(server: Server) -> None:
    server.hostile["/echo"] = Trickle(0.5)  # every read succeeds within any per-read timeout
    with pytest.raises(DeadlineExceeded, match="no complete answer within 1 s") as caught:
        transport(server, total=1).request("GET", "/echo")
    assert caught.value.seconds == 1


def test_a_trickling_status_line_ends_at_the_total_deadline(server: Server) -> None:
    server.hostile["/echo"] = Trickle(0.5, headers_too=True)
    with pytest.raises(DeadlineExceeded):
        transport(server, total=1).request("GET", "/echo")


def test_a_stream_that_never_ends_ends_at_the_deadline(server: Server) -> None:
    server.hostile["/echo"] = Endless(b'{"done": false}\n', interval=0.05)
    with pytest.raises(DeadlineExceeded):
        with transport(server, total=1).stream("GET", "/echo", limit=100 * MiB) as answer:
            for _ in answer.lines():
                pass


def test_an_endless_body_stops_at_the_cap_in_bounded_memory(server: Server) -> None:
    server.hostile["/echo"] = Endless()
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge, match="1048576-byte cap"):
            transport(server).request("GET", "/echo", limit=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB


def test_an_announced_length_over_the_cap_is_refused_before_reading(server: Server) -> None:
    server.hostile["/echo"] = Huge(2 * 1024 * MiB)
    with pytest.raises(ResponseTooLarge, match="announced 2147483648 bytes"):
        with transport(server).stream("GET", "/echo", limit=256 * MiB):
            pytest.fail("the body must not be offered")


def test_connection_refused_and_a_body_cut_short_are_connection_failures(server: Server) -> None:
    with pytest.raises(ConnectionFailed, match="connection refused"):
        HTTPTransport(unused_url(), Timeout(total=5)).request("GET", "/")
    with pytest.raises(ConnectionFailed, match="closed"):
        transport(server).request("GET", "/cut")


def raw_server(answer: bytes) -> str:
    """A socket that reads one request and answers these bytes, whatever they are."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_once() -> None:
        with listener, listener.accept()[0] as connection:
            connection.recv(65536)
            connection.sendall(answer)

    threading.Thread(target=answer_once, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize(("answer", "error"), [
    (b"garbage\r\n\r\n", MalformedResponse),
    (b"\xff\xfe\x00\x01" * 10, MalformedResponse),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", MalformedResponse),  # too many headers
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", MalformedResponse),  # a header line too long
    (b"HTTP/9.9 200 OK\r\n\r\n{}", MalformedResponse),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ConnectionFailed),
    (b"", ConnectionFailed),
])
def test_an_answer_that_is_not_http_is_a_transport_error(answer: bytes, error: type) -> None:
    with pytest.raises(error):
        HTTPTransport(raw_server(answer), Timeout(total=5)).request("GET", "/")


def test_html_where_json_was_expected_is_malformed(server: Server) -> None:
    server.hostile["/echo"] = HTML
    with pytest.raises(MalformedResponse, match="HTML or XML page where JSON was expected: '<!DOCTYPE"):
        transport(server).request("GET", "/echo").json()


def test_multipart_form_reaches_the_server_intact(server: Server) -> None:
    body, content_type = multipart({"subfolder": "proto"}, {"image": ('a"b.png', b"\x89PNG", "image/png")})
    answer = transport(server).request("POST", "/echo", body=body, content_type=content_type)
    assert content_type.startswith("multipart/form-data; boundary=") and answer.json()["bytes"] == len(body)


@pytest.mark.parametrize(("data", "problem"), [
    (deep_json(100_000).content, f"nested deeper than {MAX_JSON_DEPTH} levels"),  # RecursionError in json
    (deep_json(MAX_JSON_DEPTH + 1).content, f"nested deeper than {MAX_JSON_DEPTH} levels"),
    (b'{"value": 1e999}', "out of range"),
    (b'{"value": NaN}', "NaN is not a JSON value"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{'single': 1}", "not valid JSON"),
    (b"1" * 5000, "not valid JSON"),  # more digits than int() takes
])
def test_decode_json_refuses_what_json_loads_would_choke_on_or_let_through(data: bytes, problem: str) -> None:
    with pytest.raises(BadJSON, match=problem):
        decode_json(data)


def test_decode_json_takes_what_the_services_send() -> None:
    assert decode_json(deep_json(MAX_JSON_DEPTH).content) is not None
    assert decode_json('\ufeff{"a": [1, 2.5, "x", null, true]}'.encode()) == {"a": [1, 2.5, "x", None, True]}


def test_field_checks_types_and_names_the_field() -> None:
    data = {"n": True, "s": "x", "z": None}
    assert field(data, "s", str) == "x" and field(data, "missing", int, default=3) == 3
    with pytest.raises(BadJSON, match=r"^entry\.n is a boolean, not a number$"):
        field(data, "n", (int, float), "entry")
    with pytest.raises(BadJSON, match=r"^z is null$"):
        field(data, "z", str)
    with pytest.raises(BadJSON, match=r"^missing is missing$"):
        field(data, "missing", str)


@pytest.mark.parametrize("url", ["ftp://host/x", "http://", "http://ana:s3cret@host:notaport/"])
def test_a_bad_service_url_is_refused_without_echoing_credentials(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        HTTPTransport(url, Timeout(total=1))
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), True])
def test_a_timeout_must_be_a_positive_number(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        Timeout(total=seconds)

