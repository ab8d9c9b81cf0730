"""The production instance's event log storage (dagster.yaml `event_log_storage`): Dagster's PostgreSQL storage
whose pool claims are taken one process at a time per pool, Dagster's executor's own as well as the GPU leases'.

Dagster's claim reads a free slot and writes it in two autocommitted statements, so processes claiming a card at
the same moment could each get it (`dagster_compat._one_claimer`); a step with a static `pool=` (a local trainer,
metrics on a GPU) is claimed by Dagster's executor, which no lease of ours wraps. Loaded only by the instance,
so the code location does not import the PostgreSQL driver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_postgres import PostgresEventLogStorage

from anime_pipeline import dagster_compat


class OneClaimerPostgresEventLogStorage(PostgresEventLogStorage):
    claims_one_at_a_time = True  # `dagster_compat.claim_slot` leaves the locking to these methods

    @classmethod
    def from_config_value(cls, inst_data: dagster_compat.ConfigurableClassData | None,
                          config_value: Mapping[str, Any]) -> OneClaimerPostgresEventLogStorage:
        return cls(inst_data=inst_data, **dagster_compat.postgres_storage_arguments(config_value))

    def claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str, priority: int | None = None):
        with dagster_compat.pool_advisory_lock(self, concurrency_key):
            return super().claim_concurrency_slot(concurrency_key, run_id, step_key, priority)

    def initialize_concurrency_limit_to_default(self, concurrency_key: str) -> bool:
        # two processes initialising a new pool at once each counted no slot and added one: a card of limit 1 had two
        with dagster_compat.pool_advisory_lock(self, concurrency_key):
            info = self.get_concurrency_info(concurrency_key)
            if info.limit is not None and info.slot_count == info.limit:
                # made by the process this one waited for; Dagster's insert of the existing row would abort the
                # transaction its update then runs in, failing the step
                return True
            return super().initialize_concurrency_limit_to_default(concurrency_key)
