"""The private Dagster APIs this project uses, in one place, each behind a small function.

Dagster gives no public API yet for these; `tests/test_dagster_compat.py` exercises every one
against a real instance so that an upgrade that changes them fails loudly there, not in a run.
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy.exc
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCause, StaleStatus
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.instance.ref import InstanceRef
from dagster._core.launcher import LaunchRunContext, RunLauncher
from dagster._core.loader import LoadingContextForTest
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._serdes import ConfigurableClass, ConfigurableClassData, create_snapshot_id

__all__ = ["ConfigurableClass", "ConfigurableClassData", "LaunchRunContext", "RUN_WORKER_MODULES", "RunLauncher",
           "SensorSwitchError", "StaleCause", "StaleStatus", "claim_slot", "claimed_slots", "execute_run",
           "free_run_slots", "free_slot", "instance_modules", "latest_check_evaluations", "pool_limit",
           "pool_advisory_lock", "postgres_connection", "postgres_storage_arguments",
           "sensor_cursor", "sensor_running", "set_sensor_running", "stale_resolver"]

# The code location `workspace.yaml` loads (`python_module: anime_pipeline.definitions`): Dagster names it
# after the module, and the daemon finds a sensor's stored state by (location, repository, sensor name).
CODE_LOCATION = "anime_pipeline.definitions"


def latest_check_evaluations(instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey]
                             ) -> Mapping[dg.AssetCheckKey, dg.AssetCheckEvaluation | None]:
    """Per check, its latest completed evaluation; None while it never ran, is running, or was lost."""
    keys = list(keys)
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    out: dict[dg.AssetCheckKey, dg.AssetCheckEvaluation | None] = {}
    for key in keys:
        record = records.get(key)
        data = record.event.dagster_event.event_specific_data if record is not None and record.event else None
        out[key] = data if isinstance(data, dg.AssetCheckEvaluation) else None
    return out


def stale_resolver(instance: dg.DagsterInstance, graph) -> CachingStaleStatusResolver:
    """Dagster's own stale-status computation (what the UI shows), over an asset graph."""
    return CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))


def claim_slot(instance: dg.DagsterInstance, pool: str, run_id: str, step_key: str) -> bool:
    """Claim a pool slot the way Dagster's own step-level pools do; True when it is held."""
    with _one_claimer(instance, pool):
        return instance.event_log_storage.claim_concurrency_slot(pool, run_id, step_key).is_claimed


@contextmanager
def _one_claimer(instance: dg.DagsterInstance, pool: str) -> Iterator[None]:
    """Claims of one pool, one process at a time. Dagster's claim reads a free slot, then writes it in another
    statement (its row lock ends with the read: the storage runs in autocommit), and assigns queued claims from
    a count read before its write: six processes claiming a new card at once got it two to four times, on
    SQLite and PostgreSQL alike (tests/resources/test_gpu.py). PostgreSQL: a session advisory lock, so it
    holds across machines; SQLite (one machine): a file lock beside the instance. The production storage
    (`anime_pipeline.instance_storage`) takes the advisory lock in its own claims, Dagster's executor's too."""
    storage = instance.event_log_storage
    if getattr(storage, "claims_one_at_a_time", False):
        yield  # a second session's lock on the same pool would wait for this one's forever
        return
    if not _on_postgres(storage):
        path = Path(instance.root_directory) / "pool-claims" / f"{pool}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:  # the lock goes when the file closes, or its process dies

            def try_lock() -> bool:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    return False

            _until_locked(try_lock, pool)
            yield
        return
    with pool_advisory_lock(storage, pool):
        yield


CLAIM_LOCK_SECONDS = 60.0  # a claim holds its pool's lock for milliseconds; longer means a stuck process


def _until_locked(try_lock: Callable[[], bool], pool: str) -> None:
    """Tries the lock every 10 ms (the wait stays interruptible: a stopped run's step leaves at once)."""
    deadline = time.monotonic() + CLAIM_LOCK_SECONDS
    while not try_lock():
        if time.monotonic() > deadline:
            raise TimeoutError(f"pool {pool}: another process has held its claim lock for over "
                               f"{CLAIM_LOCK_SECONDS:g} s")
        time.sleep(0.01)


@contextmanager
def pool_advisory_lock(storage, pool: str) -> Iterator[None]:
    """Holds PostgreSQL's session advisory lock of `pool` (`storage`: a PostgreSQL event log storage)."""
    import psycopg2

    key = int.from_bytes(hashlib.sha256(f"anime_pipeline pool {pool}".encode()).digest()[:8], "big", signed=True)
    connection = _postgres_connection_of(storage)
    try:
        with connection.cursor() as cursor:

            def try_lock() -> bool:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                return bool(cursor.fetchone()[0])

            _until_locked(try_lock, pool)
        try:
            yield
        finally:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg2.Error:
                pass  # the session is gone (the server restarted), and its lock with it
    finally:
        connection.close()  # a session that dies holding the lock loses it with the connection


def postgres_storage_arguments(config_value: Mapping) -> dict:
    """A PostgreSQL event log storage's constructor arguments from its dagster.yaml config, as Dagster's own
    `from_config_value` makes them (for a subclass: Dagster's builds its own class)."""
    from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

    return {"postgres_url": pg_url_from_config(config_value),
            "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
            "token_provider": get_token_provider_from_config(config_value)}


def free_slot(instance: dg.DagsterInstance, run_id: str, step_key: str) -> None:
    instance.event_log_storage.free_concurrency_slot_for_step(run_id, step_key)


def postgres_connection(instance: dg.DagsterInstance):
    """A new connection (SQLAlchemy's DB-API proxy; `.driver_connection` is psycopg2's, in autocommit) to the
    PostgreSQL database holding the instance's pools; None when they live elsewhere (SQLite). The caller closes it."""
    return _postgres_connection_of(instance.event_log_storage)


def _on_postgres(storage) -> bool:
    from dagster_postgres import PostgresEventLogStorage

    return isinstance(storage, PostgresEventLogStorage)


def _postgres_connection_of(storage):
    if not _on_postgres(storage):
        return None
    connection = storage._engine.raw_connection()  # noqa: SLF001
    connection.driver_connection.autocommit = True
    return connection


def free_run_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Give back every pool slot a run holds or waits for (as run monitoring does for a dead run)."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def claimed_slots(instance: dg.DagsterInstance, pool: str) -> int:
    """How many of the pool's slots are held right now."""
    return len(instance.event_log_storage.get_concurrency_info(pool).claimed_slots)


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The pool's configured limit (initialised to the instance default on first use); None: unlimited."""
    storage = instance.event_log_storage
    info = storage.get_concurrency_info(pool)
    if info.limit is None or info.slot_count == info.limit:  # unlimited, or its slots are there already
        return info.limit
    with _one_claimer(instance, pool):  # two processes initialising a new pool at once each added a slot
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except sqlalchemy.exc.SQLAlchemyError:
            # On PostgreSQL, initialising a pool whose row exists fails (its insert's IntegrityError aborts the
            # transaction the update then runs in): a process without this lock (the UI, a Dagster executor's own
            # pool) created the row first.
            pass
        info = storage.get_concurrency_info(pool)
        if info.limit is not None and info.slot_count > info.limit:
            # Dagster's own initialisation, racing ours, reads the count before it writes: a card of limit 1 had
            # two slots. Setting the count locks the pool's row and removes the extra slots, unclaimed ones first.
            storage.set_concurrency_slots(pool, info.limit)
    return info.limit


def _sensor_state(instance: dg.DagsterInstance, name: str, location: str) -> InstigatorState | None:
    """The sensor's stored state (on/off and cursor) as the daemon finds it, by its selector."""
    selector = create_snapshot_id(InstigatorSelector(location_name=location, repository_name=SINGLETON_REPOSITORY_NAME,
                                                         name=name))
    return next((state for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
                 if state.selector_id == selector), None)


def sensor_cursor(instance: dg.DagsterInstance, name: str, location: str = CODE_LOCATION) -> str | None:
    """The cursor the daemon last stored for the sensor; None before its first tick."""
    state = _sensor_state(instance, name, location)
    data = state.instigator_data if state is not None else None
    return getattr(data, "cursor", None)


def sensor_running(instance: dg.DagsterInstance, name: str, default_running: bool,
                   location: str = CODE_LOCATION) -> bool:
    """Whether the daemon runs the sensor: its switch (UI or CLI) if ever set, else its default status."""
    state = _sensor_state(instance, name, location)
    if state is None or state.status == InstigatorStatus.DECLARED_IN_CODE:
        return default_running
    return state.status == InstigatorStatus.RUNNING


def set_sensor_running(instance: dg.DagsterInstance, name: str, running: bool, workspace: Path,
                       location: str = CODE_LOCATION) -> bool:
    """Turn the sensor on or off for the daemon and the UI, as `dagster sensor start|stop -w workspace.yaml`
    does: load the workspace's code location (in its own code server, so the stored state carries the
    very origin the daemon and the UI load), find the sensor, store its state. Returns whether it now runs."""
    target = WorkspaceFileTarget(paths=[str(workspace)])
    with WorkspaceProcessContext(instance, target, version=dg.__version__, code_server_log_level="WARNING") as process:
        context = process.create_request_context()
        error = context.get_code_location_error(location)
        if error is not None or not context.has_code_location(location):
            first = error.message.strip().splitlines()[-1] if error is not None else "it is not in the workspace"
            raise SensorSwitchError(f"the code location {location!r} of {workspace} did not load: {first}")
        sensor = context.get_code_location(location).get_repository(SINGLETON_REPOSITORY_NAME).get_sensor(name)
        if running:
            state = instance.start_sensor(sensor)
        else:
            state = instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)
    return state.status == InstigatorStatus.RUNNING


class SensorSwitchError(Exception):
    """The workspace could not be loaded to switch a sensor (its message names the location and why)."""


# What a run worker imports to execute a run (execute_run below), for a fork server to preload.
RUN_WORKER_MODULES = ("dagster._cli.api", "dagster._utils.interrupts")


def instance_modules(instance: dg.DagsterInstance) -> list[str]:
    """The modules of the instance's configured storages, compute log manager and artifact storage (e.g.
    dagster_postgres), which every run worker imports when it opens the instance."""
    ref = instance.get_ref()
    parts = (ref.storage_data, ref.run_storage_data, ref.event_storage_data, ref.schedule_storage_data,
             ref.compute_logs_data, ref.local_artifact_storage_data)
    return sorted({part.module_name for part in parts if part is not None})


def execute_run(run_id: str, instance_ref: str, tags: Mapping[str, str]) -> None:
    """Executes a launched run in this process, as `dagster api execute_run` does, after tagging the run with
    `tags`: Ctrl-C and SIGTERM interrupt it (the run ends canceled)."""
    # imported here: Dagster's CLI modules are not needed by every importer of this module
    from dagster._cli.api import _execute_run_command_body
    from dagster._utils.interrupts import capture_interrupts, setup_interrupt_handlers

    setup_interrupt_handlers()
    with capture_interrupts(), dg.DagsterInstance.from_ref(dg.deserialize_value(instance_ref, InstanceRef)) as instance:
        instance.add_run_tags(run_id, dict(tags))
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)
