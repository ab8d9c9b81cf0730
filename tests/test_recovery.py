"""A demo killed mid-run (SIGKILL) never blocks the next one: the dead run is found, failed, its pool slot freed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.recovery import clean_dead_runs

DEADLINE = 300  # seconds for one small demo on a loaded 2-core machine; the bug this guards against hangs forever
SMALL_SHOW = {
    "characters": None,  # filled from the sample: the human character only (auto-approved, no human step)
    "episodes": [{"slug": "ep01", "number": 1, "title": "Short", "scenes": [{
        "slug": "sc01", "shots": [{"slug": "sh01", "type": "medium", "characters": ["mio"],
                                   "prompt": "Mio at the counter", "duration": 1.0}]}]}],
}


def _small_world(show_factory):
    import yaml

    from tests.worlds import SAMPLE

    mio = yaml.safe_load(SAMPLE.read_text())["characters"][0]
    return show_factory({**SMALL_SHOW, "characters": [mio]})


def _demo(world, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "ANIME_PIPELINE_CONFIGS": str(world.configs), "ANIME_PIPELINE_STORAGE": str(world.storage),
           "DAGSTER_HOME": str(world.home), "ANIME_PIPELINE_MODELS": str(world.root / "models")}
    return subprocess.Popen([sys.executable, "-m", "anime_pipeline.cli", "demo"], env=env, cwd=world.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            **kwargs)


def _wait_for_a_held_slot(world, process: subprocess.Popen) -> str:
    first_line = process.stdout.readline()  # printed once the demo has created its instance
    assert first_line.startswith("rendering"), first_line + process.communicate()[0]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and process.poll() is None:
        with dg.DagsterInstance.from_config(str(world.home)) as instance:
            started = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if started and dagster_compat.claimed_slots(instance, "cpu"):
                return started[0].run_id
        time.sleep(0.2)
    raise AssertionError(f"no run held the cpu slot before the demo ended: {process.communicate()[0]}")


def test_a_killed_demo_does_not_block_the_next_one(show_factory):
    world = _small_world(show_factory)
    first = _demo(world)
    run_id = _wait_for_a_held_slot(world, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    with dg.DagsterInstance.from_config(str(world.home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # left behind by the kill

    second = _demo(world)
    out, _ = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, out
    assert f"cleaned up run {run_id[:8]}" in out and "marked failed, pool slots freed" in out
    with dg.DagsterInstance.from_config(str(world.home)) as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE


def test_live_runs_and_other_hosts_runs_are_left_alone(instance):
    from anime_pipeline.recovery import (
        HOST_TAG,
        PID_TAG,
        START_TAG,
        owner_tags,
        process_start,
    )

    @dg.op
    def noop():
        return 1

    @dg.job
    def job():
        noop()

    started = dg.DagsterRunStatus.STARTED
    mine = instance.create_run_for_job(job, status=started, tags=owner_tags())
    elsewhere = instance.create_run_for_job(job, status=started, tags={HOST_TAG: "another-host", PID_TAG: "1",
                                                                        START_TAG: ""})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = instance.create_run_for_job(job, status=started, tags={**owner_tags(), PID_TAG: str(gone.pid),
                                                                  START_TAG: process_start(os.getpid()) or ""})
    cleaned = clean_dead_runs(instance)
    assert [c.run_id for c in cleaned] == [dead.run_id]
    assert instance.get_run_by_id(mine.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(elsewhere.run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
