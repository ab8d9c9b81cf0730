"""Faults a Celery deployment survives, against the real RabbitMQ and PostgreSQL with workers started as
subprocesses: nothing lost, nothing done twice, no partial file visible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.production.candidates import DecisionLog
from anime_pipeline.storage import outputs
from tests.deploy.services import (
    REPO,
    deployment,
    private_broker,
    private_postgres,
    redis_results,
    wait_for,
)

JOBS = REPO / "tests" / "deploy" / "celery_jobs.py"


def _launch(made, out: Path, seconds: float) -> subprocess.Popen:
    """The run worker, as the run launcher starts it: `dagster job execute` in its own process."""
    config = out.parent / f"{out.name}.json"
    config.write_text(json.dumps({"ops": {"render": {"config": {"out": str(out), "seconds": seconds}}}}))
    log = open(made.home / "run.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "dagster", "job", "execute", "-f", str(JOBS), "-j", "fault_job",
                             "-c", str(config)], cwd=REPO, env=made.env, stdout=log, stderr=subprocess.STDOUT)


def _attempts(out: Path) -> list[str]:
    log = out / "attempts.log"
    return log.read_text().splitlines() if log.exists() else []


def _step_events(instance, run_id: str, kind: dg.DagsterEventType, step: str) -> int:
    return sum(1 for e in instance.all_logs(run_id, of_type=kind) if e.dagster_event.step_key == step)


def test_a_worker_killed_mid_step_has_its_step_redelivered_and_done_once(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with deployment(tmp_path) as made:
        first = made.start_worker("gpu0a", "gpu-0")
        made.start_worker("cpu", "cpu")
        run = _launch(made, out, seconds=4.0)
        wait_for(lambda: len(_attempts(out)) == 1 or run.poll() is not None, "the first worker to start the step", 60)
        assert run.poll() is None, (made.home / "run.log").read_text()
        wait_for(lambda: any(p.name.endswith(".partial") for p in out.iterdir()), "the step to be mid-write")
        made.kill(first)  # SIGKILL: no acknowledgement was sent, so the broker puts the task back
        assert outputs(out, "clip.*") == []  # the half-written file is never visible under its name
        made.start_worker("gpu0b", "gpu-0")
        assert run.wait(timeout=90) == 0, (made.home / "run.log").read_text()
        attempts = _attempts(out)
        assert attempts[0].startswith("start") and attempts[1:] == [attempts[1], "done"], attempts
        assert attempts[1].startswith("start") and attempts[1] != attempts[0]  # another process finished it
        assert (out / "clip.bin").read_bytes() == b"".join(bytes([c]) * 1024 for c in range(8))
        assert (out / "clip.published").read_text() == "clip.bin"
        assert "gpu0b@" in made.log("gpu0b") and "succeeded" in made.log("gpu0b")
        with made.instance() as instance:
            (record,) = instance.get_run_records()
            assert record.dagster_run.is_success
            run_id = record.dagster_run.run_id
            assert _step_events(instance, run_id, dg.DagsterEventType.STEP_SUCCESS, "render") == 1
            assert _step_events(instance, run_id, dg.DagsterEventType.STEP_FAILURE, "render") == 0
            assert dagster_compat.claimed_slots(instance, "gpu-0") == 0  # the card's slot is free again


def test_two_runs_on_one_card_take_turns_even_with_two_workers_on_its_queue(tmp_path: Path):
    outs = [tmp_path / name for name in ("a", "b")]
    for out in outs:
        out.mkdir()
    with deployment(tmp_path) as made:
        for name in ("gpu0a", "gpu0b", "cpu"):
            made.start_worker(name, "cpu" if name == "cpu" else "gpu-0")
        runs = [_launch(made, out, seconds=2.0) for out in outs]
        for run in runs:
            assert run.wait(timeout=120) == 0, (made.home / "run.log").read_text()
        card = [line.split()[0] for line in (tmp_path / "card.log").read_text().splitlines()]
        assert card == ["start", "done", "start", "done"], card  # the card's slot, claimed on the worker, held
        assert all((out / "clip.published").exists() for out in outs)
        with made.instance() as instance:
            assert dagster_compat.claimed_slots(instance, "gpu-0") == 0


def test_steps_queued_when_the_broker_restarts_are_not_lost(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    with private_broker(tmp_path / "rabbitmq") as broker, redis_results() as backend, \
            deployment(tmp_path, backend=backend, broker=broker.url) as made:
        made.start_worker("cpu", "cpu")
        run = _launch(made, out, seconds=0.5)  # no worker for gpu-0 yet: its step waits in the queue
        wait_for(lambda: broker.messages("gpu-0") == 1 or run.poll() is not None, "the step to be queued", 60)
        assert run.poll() is None, (made.home / "run.log").read_text()
        broker.stop()
        broker.start()  # a durable queue and a persistent message: the step is still there
        assert broker.messages("gpu-0") == 1
        made.start_worker("gpu0", "gpu-0")
        assert run.wait(timeout=90) == 0, (made.home / "run.log").read_text()
        assert _attempts(out) == [_attempts(out)[0], "done"]  # run once, after the restart
        assert (out / "clip.published").read_text() == "clip.bin"


def test_a_postgres_restart_mid_run_and_an_approval_made_meanwhile(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    decisions = DecisionLog(tmp_path / "storage" / "lantern-post" / "characters" / "hoshi" / "decisions.jsonl")
    with private_postgres() as postgres, deployment(tmp_path, pg_port=postgres.port) as made:
        made.start_worker("gpu0", "gpu-0")
        made.start_worker("cpu", "cpu")
        run = _launch(made, out, seconds=6.0)
        wait_for(lambda: len(_attempts(out)) == 1 or run.poll() is not None, "the step to start", 60)
        assert run.poll() is None, (made.home / "run.log").read_text()
        postgres.stop()
        decisions.record("c0001", "approve", "human:test", "approved while the database was down")
        wait_for(lambda: "done" in _attempts(out), "the step to end while the database is down", 60)
        # the step's end events wait for the database: it really met the outage
        wait_for(lambda: "Retrying failed database connection" in made.log("gpu0"), "the worker to retry", 60)
        postgres.start()
        assert run.wait(timeout=120) == 0, (made.home / "run.log").read_text()  # the run resumed
        assert _attempts(out) == [_attempts(out)[0], "done"] and (out / "clip.published").exists()
        with made.instance() as instance:
            (record,) = instance.get_run_records()
            assert record.dagster_run.is_success
            assert _step_events(instance, record.dagster_run.run_id, dg.DagsterEventType.STEP_SUCCESS, "render") == 1
    # approvals are files on the shared storage, not rows: the one made during the outage is there
    latest = decisions.latest()["c0001"]
    assert (latest.decision, latest.decider) == ("approve", "human:test")
