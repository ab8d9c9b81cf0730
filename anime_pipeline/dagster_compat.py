"""The private Dagster APIs this project uses, in one place, each behind a small function.

Dagster gives no public API yet for these; `tests/test_dagster_compat.py` exercises every one
against a real instance so that an upgrade that changes them fails loudly there, not in a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCause, StaleStatus
from dagster._core.loader import LoadingContextForTest

__all__ = ["StaleCause", "StaleStatus", "claim_slot", "claimed_slots", "free_run_slots", "free_slot", "latest_check_evaluations",
           "pool_limit", "stale_resolver"]


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
    return instance.event_log_storage.claim_concurrency_slot(pool, run_id, step_key).is_claimed


def free_slot(instance: dg.DagsterInstance, run_id: str, step_key: str) -> None:
    instance.event_log_storage.free_concurrency_slot_for_step(run_id, step_key)


def free_run_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Give back every pool slot a run holds or waits for (as run monitoring does for a dead run)."""
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def claimed_slots(instance: dg.DagsterInstance, pool: str) -> int:
    """How many of the pool's slots are held right now."""
    return len(instance.event_log_storage.get_concurrency_info(pool).claimed_slots)


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The pool's configured limit (initialised to the instance default on first use); None: unlimited."""
    storage = instance.event_log_storage
    storage.initialize_concurrency_limit_to_default(pool)
    return storage.get_concurrency_info(pool).limit
