"""`anime-pipeline dev` stops what it starts: a SIGTERM or SIGINT to the wrapper reaches dagster dev's webserver,
daemon and code server, and the port stops answering."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.worlds import REPO, write_show


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _processes() -> dict[int, tuple[int, int]]:
    """Every live (not zombie) process: pid -> (parent pid, process group), from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, parent, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue
            if state != "Z":
                out[int(entry.name)] = (int(parent), int(group))
    return out


def _group(pgid: int) -> set[int]:
    return {pid for pid, (_, group) in _processes().items() if group == pgid}


def _wait(condition, what: str, deadline_s: float) -> None:
    until = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > until:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_wrapper_stops_the_webserver_daemon_and_code_server(tmp_path: Path, sig: int):
    write_show(tmp_path / "configs")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "ANIME_PIPELINE_CONFIGS": str(tmp_path / "configs"),
           "ANIME_PIPELINE_STORAGE": str(tmp_path / "storage")}
    log = open(tmp_path / "dev.log", "wb")
    wrapper = subprocess.Popen([sys.executable, "-m", "anime_pipeline.cli", "dev", "--port", str(port)], cwd=REPO,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _answers(port) or wrapper.poll() is not None, "the UI to answer", 120)
        assert wrapper.poll() is None, (tmp_path / "dev.log").read_text()
        (dev,) = [pid for pid, (parent, _) in _processes().items() if parent == wrapper.pid]
        assert os.getpgid(dev) == dev != os.getpgid(wrapper.pid)  # dagster dev leads a group of its own
        assert len(_group(dev)) >= 3  # dagster dev, its webserver, its daemon (and code servers)
        wrapper.send_signal(sig)
        wrapper.wait(timeout=60)
        _wait(lambda: not _group(dev), "every process dagster dev started to end", 30)
        assert not _answers(port)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
