"""The preloaded run launcher: runs execute in workers forked from a warm fork server, can be terminated, and a
dead worker's run is found by the recovery."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from anime_pipeline.dagster_compat import LaunchRunContext
from anime_pipeline.recovery import PID_TAG, clean_dead_runs
from tests.deploy.services import BIN, PG, REPO, database, wait_for

PRELOAD = "anime_pipeline.definitions"


class Out(dg.Config):
    folder: str


@dg.op
def record_process(config: Out) -> None:
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace")
    Path(config.folder, "process.json").write_text(json.dumps({"pid": os.getpid(), "ppid": os.getppid(),
                                                               "parent": parent}))


@dg.op
def wait_until_interrupted(config: Out) -> None:
    Path(config.folder, "started").write_text("")
    for _ in range(600):
        time.sleep(0.1)


@dg.job(executor_def=dg.in_process_executor)
def quick():
    record_process()


@dg.job(executor_def=dg.in_process_executor)
def endless():
    wait_until_interrupted()


defs = dg.Definitions(jobs=[quick, endless])  # the code location the daemon test's workspace loads


@pytest.fixture
def instance(tmp_path: Path):
    launcher = {"module": "anime_pipeline.launcher", "class": "PreloadedRunLauncher",
                "config": {"preload_modules": [PRELOAD]}}
    with dg.instance_for_test(overrides={"run_launcher": launcher}, temp_dir=str(tmp_path)) as made:
        yield made
        made.run_launcher.join(timeout=30)


def _launch(instance: dg.DagsterInstance, job: dg.JobDefinition, folder: Path) -> str:
    run = instance.create_run_for_job(job, run_config={"ops": {job.nodes[0].name: {"config": {"folder": str(folder)}}}},
                                      job_code_origin=dg.reconstructable(globals()[job.name]).get_python_origin())
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run.run_id


def _status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def test_a_run_executes_in_a_worker_forked_from_the_preloaded_server(instance, tmp_path: Path):
    run_id = _launch(instance, quick, tmp_path)
    wait_for(lambda: instance.get_run_by_id(run_id).is_finished, "the run to finish", 90)
    assert _status(instance, run_id) == dg.DagsterRunStatus.SUCCESS
    process = json.loads((tmp_path / "process.json").read_text())
    assert instance.get_run_by_id(run_id).tags[PID_TAG] == str(process["pid"])  # the worker owns its run
    assert "forkserver" in process["parent"] and PRELOAD in process["parent"]  # forked from the preloaded server
    assert process["ppid"] != os.getpid()


def test_terminate_interrupts_the_runs_worker(instance, tmp_path: Path):
    run_id = _launch(instance, endless, tmp_path)
    wait_for(lambda: (tmp_path / "started").exists(), "the step to start", 90)
    assert instance.run_launcher.terminate(run_id)
    wait_for(lambda: instance.get_run_by_id(run_id).is_finished, "the run to end", 90)
    assert _status(instance, run_id) == dg.DagsterRunStatus.CANCELED
    assert not instance.run_launcher.terminate(run_id)  # nothing left to terminate


def test_a_killed_worker_leaves_a_run_the_recovery_finds(instance, tmp_path: Path):
    run_id = _launch(instance, endless, tmp_path)
    wait_for(lambda: (tmp_path / "started").exists(), "the step to start", 90)
    pid = int(instance.get_run_by_id(run_id).tags[PID_TAG])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: [d.run_id for d in clean_dead_runs(instance)] == [run_id]
          or instance.get_run_by_id(run_id).is_finished, "the recovery to find the dead run", 90)
    assert _status(instance, run_id) == dg.DagsterRunStatus.FAILURE


def test_the_daemon_launches_queued_runs_through_it_on_the_production_instance(tmp_path: Path, monkeypatch):
    """The repository's dagster.yaml (PostgreSQL, the queued run coordinator, this launcher) with a real
    dagster-daemon: a run queued by `dagster job launch` is executed by a worker forked from the fork server."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_file:\n      relative_path: {Path(__file__)}\n"
                         f"      working_directory: {REPO}\n      location_name: launcher\n")
    (tmp_path / "run.yaml").write_text(json.dumps({"ops": {"record_process": {"config": {"folder": str(tmp_path)}}}}))
    with database() as name:
        env = {**os.environ, "DAGSTER_HOME": str(home), "PGHOST": PG["host"], "PGPORT": str(PG["port"]),
               "PGUSER": PG["user"], "PGDATABASE": name, "PYTHONPATH": str(REPO)}
        for key in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
            monkeypatch.setenv(key, env[key])
        with dg.DagsterInstance.from_config(str(home)) as instance:  # the schema, before the processes start
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], cwd=REPO, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            try:
                launched = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "quick",
                                           "-c", str(tmp_path / "run.yaml")], cwd=REPO, env=env, capture_output=True,
                                          text=True)
                assert launched.returncode == 0, launched.stdout + launched.stderr
                (run,) = instance.get_runs()
                wait_for(lambda: instance.get_run_by_id(run.run_id).is_finished,
                         "the daemon to launch and finish the run", 180)
            finally:
                os.killpg(daemon.pid, signal.SIGTERM)
                daemon.wait(timeout=60)
            finished = instance.get_run_by_id(run.run_id)
            assert finished.status == dg.DagsterRunStatus.SUCCESS
            process = json.loads((tmp_path / "process.json").read_text())
            assert finished.tags[PID_TAG] == str(process["pid"])
            assert "forkserver" in process["parent"] and PRELOAD in process["parent"]
