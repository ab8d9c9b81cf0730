"""GPU leases: a step that can render on any of several cards claims one card's Dagster pool slot.

Each GPU is a pool (`gpu-<id>`, limit 1 in dagster.yaml). An asset's static `pool=` can name only
one pool, so a step that may use either of two ComfyUI servers claims the slot itself, through
the same instance storage Dagster's own pools use: it shows on the UI's concurrency page, two
cards work in parallel, a card never runs two steps, and run monitoring frees the slot of a run
that died holding it (slots are keyed by run id).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import dagster as dg

from anime_pipeline import dagster_compat

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Placement:
    """Where a step's service sessions run. `held_pool`: the step's static pool, claimed by Dagster's executor
    before the step started (claiming it again would wait for itself). `card`: the card the step is bound to
    (with Celery, its queue's): the session uses that card's server and claims its pool slot itself."""

    held_pool: str | None = None
    card: str | None = None


class GpuLease:
    """Context manager: waits for the first free pool among `pools`, returns its name, frees it on exit."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, step_key: str, pools: Sequence[str],
                 log: Callable[[str], None] = lambda _: None, poll_seconds: float = POLL_SECONDS):
        if not pools:
            raise ValueError("a GPU lease needs at least one pool")
        self.instance = instance
        self.run_id, self.step_key, self.pools = run_id, step_key, list(pools)
        self.log, self.poll_seconds = log, poll_seconds
        self.held: str | None = None

    def _claim_key(self, pool: str) -> str:
        return f"{self.step_key}@{pool}"

    def _limited(self, pool: str) -> bool:
        return dagster_compat.pool_limit(self.instance, pool) is not None

    def __enter__(self) -> str:
        unlimited = [p for p in self.pools if not self._limited(p)]
        if unlimited:  # no limit configured for this pool: nothing to wait for
            self.log(f"pool {unlimited[0]} has no limit configured; using it without a claim")
            return unlimited[0]
        waited = 0.0
        while True:
            for pool in self.pools:
                if dagster_compat.claim_slot(self.instance, pool, self.run_id, self._claim_key(pool)):
                    self.held = pool
                    self._withdraw(exclude=pool)
                    self.log(f"claimed {pool}" + (f" after waiting {waited:.1f} s" if waited else ""))
                    return pool
            if waited == 0.0:
                self.log(f"all of {self.pools} are busy; waiting for one")
            time.sleep(self.poll_seconds)
            waited += self.poll_seconds

    def _withdraw(self, exclude: str | None = None) -> None:
        for pool in self.pools:
            if pool != exclude:
                dagster_compat.free_slot(self.instance, self.run_id, self._claim_key(pool))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._withdraw()  # frees the held slot and any claim still waiting in a queue
        self.held = None
