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
def database(port: int = PG["port"]) -> Iterator[str]:
    import psycopg2

    name = f"anime_pipeline_test_{uuid.uuid4().hex[:10]}"
    def admin(statement: str) -> None:  # a connection each time: the server may have restarted meanwhile
        connection = psycopg2.connect(dbname="postgres", **{**PG, "port": port})
        connection.autocommit = True
        try:
            connection.cursor().execute(statement)
        finally:
            connection.close()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _none() -> Iterator[None]:
    yield None


@dataclass
class Deployment:
    """A Dagster home on the production dagster.yaml (PostgreSQL), Celery on a vhost, and the environment
    every process of the deployment shares."""

    home: Path
    env: dict[str, str]
    workers: list[subprocess.Popen]

    def start_worker(self, name: str, *queues: str) -> subprocess.Popen:
        """`dagster-celery worker start -A dagster_celery.app -y celery.yaml -i anime_pipeline.definitions -q QUEUE
        -n NAME`, in its own process group (the CLI runs `celery` under it)."""
        args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "celery.yaml"),
                "-i", "anime_pipeline.definitions", "-n", name, "-l", "INFO"]
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
def deployment(tmp_path: Path, backend: str = "rpc://", broker: str | None = None,
               pg_port: int = PG["port"]) -> Iterator[Deployment]:
    """`broker`: a private broker's URL; by default a fresh vhost on the machine's broker. `pg_port`: a private
    PostgreSQL server's; by default the machine's."""
    with (vhost() if broker is None else _none()) as host, database(pg_port) as db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(REPO), "PGHOST": PG["host"], "PGPORT": str(pg_port), "PGUSER": PG["user"],
               "PGDATABASE": db, "ANIME_PIPELINE_EXECUTOR": "celery",
               "ANIME_PIPELINE_CELERY_BROKER": broker or f"pyamqp://guest:guest@127.0.0.1:5672/{host}",
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateBroker:
    """A RabbitMQ node of this test's own (its own name, ports, data and cookie), so that restarting it
    disturbs no one else's tests on the machine's shared broker."""

    RABBIT = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves: the /usr/sbin wrappers reset the environment

    def __init__(self, root: Path):
        root.mkdir(parents=True)
        (root / "home").mkdir()
        cookie = root / "home" / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex)
        cookie.chmod(0o400)
        (root / "plugins").write_text("[].")
        (root / "rabbitmq.conf").write_text("")  # not the machine's, which binds the shared broker's port
        self.node, self.port = f"anime-test-{uuid.uuid4().hex[:8]}@localhost", free_port()
        self.env = {**os.environ, "HOME": str(root / "home"), "RABBITMQ_NODENAME": self.node,
                    "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                    "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
                    "RABBITMQ_MNESIA_BASE": str(root / "mnesia"), "RABBITMQ_LOG_BASE": str(root / "log"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "plugins"), "RABBITMQ_PID_FILE": str(root / "pid")}
        self.pid_file = root / "pid"

    @property
    def url(self) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:{self.port}//"

    def _ctl(self, *args: str) -> str:
        done = subprocess.run([str(self.RABBIT / "rabbitmqctl"), "-n", self.node, "-q", *args], env=self.env,
                              capture_output=True, text=True, timeout=90)
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        subprocess.run([str(self.RABBIT / "rabbitmq-server"), "-detached"], env=self.env, check=True, timeout=60)
        self._ctl("wait", str(self.pid_file), "--timeout", "60")

    def stop(self) -> None:
        self._ctl("stop", str(self.pid_file))

    def messages(self, queue: str) -> int:
        """Messages waiting in `queue` (0 when it does not exist)."""
        for line in self._ctl("list_queues", "name", "messages").splitlines():
            name, _, count = line.partition("\t")
            if name == queue:
                return int(count)
        return 0


@contextmanager
def private_broker(root: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(root)
    broker.start()
    try:
        yield broker
    finally:
        try:
            broker.stop()
        except RuntimeError:
            pass  # already stopped


@contextmanager
def redis_results() -> Iterator[str]:
    """The machine's Redis as the result backend; the results this test's tasks left are deleted after."""
    import redis

    url = "redis://127.0.0.1:6379/0"
    before = set(redis.Redis.from_url(url).scan_iter("celery-task-meta-*"))
    try:
        yield url
    finally:
        client = redis.Redis.from_url(url)
        ours = set(client.scan_iter("celery-task-meta-*")) - before
        if ours:
            client.delete(*ours)


class PrivatePostgres:
    """A PostgreSQL server of this test's own (initdb in a temporary folder, another port), so that restarting it
    disturbs no one else's tests on the machine's shared server."""

    def __init__(self):
        import tempfile

        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.root = Path(tempfile.mkdtemp(prefix="anime-test-pg-"))  # outside pytest's root-only folders
        shutil.chown(self.root, "postgres", "postgres")
        self.data, self.port = self.root / "data", free_port()
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                          f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(server.root, ignore_errors=True)
