"""A run launcher whose run workers start warm: each run is a process forked from a server that imported Dagster
and the code location's modules once, instead of a fresh interpreter importing them for every run (~2.5 s of CPU
per run: Dagster's DefaultRunLauncher has its code server *spawn* each run worker). On a box that launches many
short runs — a backfill of shots, one run per shot — that import was most of the time from a launch to the first
render, and it competed with the runs already rendering (BENCHMARKS.md, "Shots through the daemon").

    run_launcher:
      module: anime_pipeline.launcher
      class: PreloadedRunLauncher
      config:
        preload_modules: [anime_pipeline.definitions]

The run workers run on the machine of the process that launches them (the daemon, with the queued run
coordinator). The show files are read by every run; Python code is what the fork server imported when it started
(the first time the process needed its launcher): restart the daemon after changing it, as Dagster's own code
servers must be reloaded. A run's worker
tags the run with its owner process (recovery.owner_tags), so `terminate` and the dead-run recovery find it.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import signal
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.process import BaseProcess
from typing import Any

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.dagster_compat import ConfigurableClass, ConfigurableClassData, LaunchRunContext, RunLauncher
from anime_pipeline.recovery import HOST_TAG, PID_TAG, START_TAG, alive, owner_tags


_in_run_worker = False  # set in a run's worker: a launcher made there must not start a fork server of its own


def run_worker(run_id: str, instance_ref: str) -> None:
    """A run's worker process, forked from the fork server: the run's steps execute here, as in `dagster api
    execute_run` (in process, or handed to Celery by the run's executor)."""
    global _in_run_worker
    _in_run_worker = True
    dagster_compat.execute_run(run_id, instance_ref, owner_tags())


def _ready() -> None:
    """A first child of the fork server, forked once its preloads are imported."""


class PreloadedRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run in a process forked from a fork server that preloaded `preload_modules`."""

    def __init__(self, preload_modules: Sequence[str] = (), inst_data: ConfigurableClassData | None = None):
        self._inst_data = inst_data
        self._preload = list(preload_modules)
        self._context: multiprocessing.context.ForkServerContext | None = None
        self._workers: dict[str, BaseProcess] = {}
        self._lock = threading.Lock()  # the daemon launches from several dequeue threads
        super().__init__()

    def register_instance(self, instance: dg.DagsterInstance) -> None:
        super().register_instance(instance)
        # The fork server starts (and imports everything once) in the background as soon as the launcher is made,
        # so a launch that comes later does not wait for it; the daemon makes it at its first launch.
        if not _in_run_worker:
            threading.Thread(target=self._fork_server, name="fork-server-start", daemon=True).start()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, dg.Field]:
        return {"preload_modules": dg.Field([str], is_required=False, default_value=[],
                                            description="modules the fork server imports once for every run")}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData,
                          config_value: Mapping[str, Any]) -> PreloadedRunLauncher:
        return cls(preload_modules=config_value.get("preload_modules", []), inst_data=inst_data)

    def _fork_server(self) -> multiprocessing.context.ForkServerContext:
        with self._lock:
            if self._context is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["dagster", *dagster_compat.RUN_WORKER_MODULES,
                                                *dagster_compat.instance_modules(self._instance), __name__,
                                                *self._preload])
                warm = context.Process(target=_ready, name="fork-server-warm")
                warm.start()  # starts the fork server, which imports the preloads before it forks this one
                warm.join()
                self._context = context
            return self._context

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        ref = dg.serialize_value(self._instance.get_ref())
        server = self._fork_server()
        with self._lock:
            self._reap()
            worker = server.Process(target=run_worker, args=(run.run_id, ref), name=f"dagster-run-{run.run_id[:8]}")
            worker.start()
            self._workers[run.run_id] = worker
        self._instance.report_engine_event(f"Launched run worker process {worker.pid} (forked from the preloaded "
                                           "fork server).", run, cls=self.__class__)

    def _reap(self) -> None:
        for run_id, worker in list(self._workers.items()):
            if not worker.is_alive():
                worker.join()
                worker.close()
                del self._workers[run_id]

    def terminate(self, run_id: str) -> bool:
        """Interrupts the run's worker (SIGINT, as Ctrl-C: the run ends canceled); only on the worker's machine."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or run.tags.get(HOST_TAG) != platform.node():
            return False
        pid = int(run.tags.get(PID_TAG) or 0)
        if not pid or not alive(pid, run.tags.get(START_TAG, "")):
            return False
        self._instance.report_run_canceling(run)
        os.kill(pid, signal.SIGINT)
        return True

    def join(self, timeout: float = 30) -> None:
        with self._lock:
            for worker in self._workers.values():
                worker.join(timeout)
            self._reap()
