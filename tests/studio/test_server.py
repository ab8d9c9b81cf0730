"""The studio as its own process: killed mid-stream it loses nothing acknowledged; the token never
reaches its output; it refuses to listen beyond loopback without a token."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from anime_pipeline.storage import read_jsonl
from anime_pipeline.studio.security import TOKEN_ENV
from tests.studio.studio_data import CSRF, HOSHI

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60
ANNOUNCED = re.compile(r"studio on (http://\S+) ")
TOKEN = "process-level-secret-token-7f3a"


class Studio:
    """`python -m anime_pipeline.studio` in a subprocess, its output collected line by line."""

    def __init__(self, storage: Path, configs: Path, *args: str, env: dict[str, str] | None = None):
        environment = {**os.environ, "PYTHONPATH": str(REPO), "ANIME_PIPELINE_STORAGE": str(storage),
                       "ANIME_PIPELINE_CONFIGS": str(configs), **(env or {})}
        self.process = subprocess.Popen([sys.executable, "-m", "anime_pipeline.studio", *args], env=environment,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=storage.parent)
        self.lines: list[str] = []
        self._first: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            self._first.put(line)
        self._first.put("")  # the process ended

    def url(self) -> str:
        while True:
            line = self._first.get(timeout=DEADLINE_S)
            match = ANNOUNCED.search(line)
            if match or not line:
                assert match, "".join(self.lines)
                return match.group(1)

    def output(self) -> str:
        self.process.wait(DEADLINE_S)
        return "".join(self.lines)


def studio_log(storage: Path) -> Path:
    show, character = HOSHI.split("/")
    return storage / show / "characters" / character / "decisions.jsonl"


def _reviewer(url: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    csrf = CSRF.search(session.get(f"{url}/characters/{HOSHI}", timeout=10).text).group(1)
    session.headers.update({"Origin": url, "X-CSRF-Token": csrf})
    return session, csrf


def _cut_off_request(url: str) -> socket.socket:
    """A decision request whose body stops half-way: the server is killed while it waits for the rest."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    body = json.dumps({"ids": ["c0005"], "status": "rejected", "user": "carol", "reason": "cut-off"}).encode()
    head = (f"POST /api/decisions/{HOSHI} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) + 200}\r\nOrigin: {url}\r\n\r\n").encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock


def test_killing_the_server_mid_stream_loses_no_acknowledged_decision(hoshi_storage, configs_dir):
    studio = Studio(hoshi_storage, configs_dir, "--port", "0")
    url = studio.url()
    acknowledged: list[tuple[str, list[str]]] = []
    enough, stop, lock = threading.Event(), threading.Event(), threading.Lock()

    def review(name: str) -> None:  # two people deciding as fast as the server answers
        session, _ = _reviewer(url)
        for n in range(10_000):
            ids = [f"c{(n + k) % 6:04d}" for k in range(3)]
            payload = {"ids": ids, "status": ("approved", "rejected")[n % 2], "user": name, "reason": f"{name}-{n}"}
            try:
                response = session.post(f"{url}/api/decisions/{HOSHI}", json=payload, timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if response.status_code == 200:
                with lock:
                    acknowledged.append((payload["reason"], ids))
                    if len(acknowledged) >= 40:
                        enough.set()
            if stop.is_set():
                return

    reviewers = [threading.Thread(target=review, args=(name,)) for name in ("alice", "bob")]
    for thread in reviewers:
        thread.start()
    cut_off = _cut_off_request(url)
    assert enough.wait(DEADLINE_S), studio.output()
    studio.process.send_signal(signal.SIGKILL)
    studio.process.wait(DEADLINE_S)
    stop.set()
    for thread in reviewers:
        thread.join(DEADLINE_S)
    cut_off.close()

    lines = studio_log(hoshi_storage).read_text().splitlines()
    entries = [json.loads(line) for line in lines if line]  # every line whole: nothing torn
    by_request: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_request[entry["reason"]].append(entry["candidate"])
    for reason, ids in acknowledged:
        assert by_request[reason] == ids, reason  # every acknowledged decision is there, once
    human = {r: ids for r, ids in by_request.items() if r.startswith(("alice-", "bob-"))}
    assert all(len(ids) == 3 for ids in human.values())  # a request is recorded whole or not at all
    assert "cut-off" not in by_request


def test_the_token_never_reaches_the_output_or_the_answers(hoshi_storage, configs_dir):
    studio = Studio(hoshi_storage, configs_dir, "--port", "0", env={TOKEN_ENV: TOKEN})
    url = studio.url()
    session, csrf = _reviewer(url)
    answers = [
        session.post(f"{url}/login", data={"csrf": csrf, "token": TOKEN[::-1]}, allow_redirects=False, timeout=10),
        session.post(f"{url}/login", data={"csrf": csrf, "token": TOKEN}, allow_redirects=False, timeout=10),
        session.post(f"{url}/api/decisions/{HOSHI}", json={"ids": ["c0000"], "status": "approved", "user": "alice"},
                     timeout=10),
        requests.post(f"{url}/api/decisions/{HOSHI}", json={"ids": ["c0001"], "status": "approved", "user": "ci"},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10),
        requests.post(f"{url}/api/decisions/{HOSHI}", json={"ids": ["c0002"], "status": "approved", "user": "ci"},
                      headers={"Authorization": f"Bearer {TOKEN}x"}, timeout=10),
        requests.get(f"{url}/characters/{HOSHI}?token={TOKEN[:4]}", timeout=10),
    ]
    assert [a.status_code for a in answers] == [401, 303, 200, 200, 401, 200]
    studio.process.send_signal(signal.SIGTERM)
    output = studio.output()
    assert "token required for writing actions" in output and "POST /login" in output  # the log is being kept
    assert TOKEN not in output and TOKEN[::-1] not in output
    for answer in answers:
        assert TOKEN not in answer.text and TOKEN not in str(answer.headers)
    assert TOKEN not in studio_log(hoshi_storage).read_text()
    deciders = [e["decider"] for e in read_jsonl(studio_log(hoshi_storage)) if e["decider"].startswith("human:")]
    assert deciders == ["human:alice", "human:ci"]


def test_listening_beyond_loopback_needs_the_token(hoshi_storage, configs_dir):
    refused = Studio(hoshi_storage, configs_dir, "--host", "0.0.0.0", "--port", "0")
    assert refused.process.wait(DEADLINE_S) == 2
    output = refused.output()
    assert "refusing to listen on 0.0.0.0" in output and TOKEN_ENV in output and "Traceback" not in output
    allowed = Studio(hoshi_storage, configs_dir, "--host", "0.0.0.0", "--port", "0", env={TOKEN_ENV: TOKEN})
    assert allowed.url().startswith("http://0.0.0.0:")
    allowed.process.send_signal(signal.SIGTERM)
    assert TOKEN not in allowed.output()


def test_a_port_in_use_is_a_clear_error(hoshi_storage, configs_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        studio = Studio(hoshi_storage, configs_dir, "--port", port)
        assert studio.process.wait(DEADLINE_S) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in studio.output()


@pytest.fixture(autouse=True)
def _no_token_leaks_in(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
