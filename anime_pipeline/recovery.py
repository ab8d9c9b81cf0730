"""Runs whose process died (SIGKILL, power loss) must never block later work.

Runs started by `anime-pipeline demo` / `backfill` carry the host, pid and process start time of the
process that executes them. Before starting new work the CLI looks for runs still marked as in
progress whose process is gone, marks them failed and gives back their pool slots — what run
monitoring does for daemon-launched runs in production (it is enabled in both dagster.yaml files).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from anime_pipeline import dagster_compat

HOST_TAG, PID_TAG, START_TAG = "anime/host", "anime/pid", "anime/process_start"
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING,
               dg.DagsterRunStatus.NOT_STARTED]


def process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc), so a reused pid is not mistaken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5), counted after the command name


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the one executing a run."""
    pid = os.getpid()
    return {HOST_TAG: platform.node(), PID_TAG: str(pid), START_TAG: process_start(pid) or ""}


def alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return not started or process_start(pid) == started


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job: str
    pid: int

    def describe(self) -> str:
        return f"run {self.run_id[:8]} of {self.job} (process {self.pid} is gone): marked failed, pool slots freed"


def clean_dead_runs(instance: dg.DagsterInstance) -> list[DeadRun]:
    """Mark this host's in-progress runs whose executing process died as failed and free their slots."""
    cleaned = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={HOST_TAG: platform.node()})):
        pid = int(run.tags.get(PID_TAG, "0") or 0)
        if not pid or alive(pid, run.tags.get(START_TAG, "")):
            continue
        instance.report_run_failed(run, f"the process that executed this run (pid {pid}) died")
        dagster_compat.free_run_slots(instance, run.run_id)
        cleaned.append(DeadRun(run.run_id, run.job_name, pid))
    return cleaned
