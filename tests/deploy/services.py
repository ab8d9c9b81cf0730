"""Real services for the deployment tests: a fresh RabbitMQ vhost and PostgreSQL database per test (removed
after), a Dagster home on them, and Celery workers started as the deployment guide starts them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    """Poll until `condition` holds; fail naming `what` past the deadline (a bound, never a measurement)."""
    until = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > until:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def vhost() -> Iterator[str]:
    name = f"anime-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@contextmanager
def database() -> Iterator[str]:
    import psycopg2

    name = f"anime_pipeline_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Deployment:
    """A Dagster home on the production dagster.yaml (PostgreSQL), Celery on a vhost, and the environment
    every process of the deployment shares."""

    home: Path
    env: dict[str, str]
    workers: list[subprocess.Popen]

    def start_worker(self, name: str, *queues: str) -> subprocess.Popen:
        """`dagster-celery worker start -A dagster_celery.app -y celery.yaml -q QUEUE -n NAME`, in its own
        process group (the CLI runs `celery` under it)."""
        args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "celery.yaml"),
                "-n", name, "-l", "INFO"]
        for queue in queues:
            args += ["-q", queue]
        log = open(self.home / f"worker-{name}.log", "ab")
        worker = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """The whole worker (CLI, celery main process and its child), as a box losing power does."""
        try:
            os.killpg(worker.pid, sig)
        except ProcessLookupError:
            pass
        worker.wait(timeout=30)

    def instance(self):
        """This test's view of the deployment's instance (libpq reads the PG* variables `deployment` sets)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.home))

    def log(self, name: str) -> str:
        path = self.home / f"worker-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def deployment(tmp_path: Path, backend: str = "rpc://") -> Iterator[Deployment]:
    with vhost() as host, database() as db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(REPO), "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"],
               "PGDATABASE": db, "ANIME_PIPELINE_EXECUTOR": "celery",
               "ANIME_PIPELINE_CELERY_BROKER": f"pyamqp://guest:guest@127.0.0.1:5672/{host}",
               "ANIME_PIPELINE_CELERY_BACKEND": backend,
               "ANIME_PIPELINE_STORAGE": str(tmp_path / "storage"), "ANIME_PIPELINE_CONFIGS": str(tmp_path / "configs")}
        made = Deployment(home, env, [])
        saved = {key: os.environ.get(key) for key in env if key.startswith("PG")}
        os.environ.update({key: value for key, value in env.items() if key.startswith("PG")})
        with made.instance():  # creates the schema once, before processes race to
            pass
        try:
            yield made
        finally:
            for worker in made.workers:
                if worker.poll() is None:
                    made.kill(worker)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
