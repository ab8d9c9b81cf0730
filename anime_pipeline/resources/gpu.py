"""GPU leases: a step that can render on any of several cards claims one card's Dagster pool slot.

Each GPU is a pool (`gpu-<id>`, limit 1 in dagster.yaml). An asset's static `pool=` can name only
one pool, so a step that may use either of two ComfyUI servers claims the slot itself, through
the same instance storage Dagster's own pools use: it shows on the UI's concurrency page, two
cards work in parallel, a card never runs two steps (its claims are serialised across processes:
`dagster_compat.claim_slot`), and run monitoring frees the slot of a run that died holding it (slots are
keyed by run id). A renderer gives its card back between renders
(`GpuLease.release`/`reclaim`), and a release wakes the steps waiting for the card (`slot_freed`).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType

import dagster as dg

from anime_pipeline import dagster_compat

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Placement:
    """Where a step's service sessions run. `held_pool`: the step's static pool, claimed by Dagster's executor
    before the step started (claiming it again would wait for itself). `card`: the card the step is bound to
    (with Celery, its queue's): the session uses that card's server and claims its pool slot itself.
    `scores_on_gpu`: the step's metrics run on a GPU, so a renderer keeps its card while the step scores."""

    held_pool: str | None = None
    card: str | None = None
    scores_on_gpu: bool = False


class GpuLease:
    """Context manager: waits for the first free pool among `pools`, returns its name, frees it on exit.

    `release()` gives the card back early (its render is done; the step still downloads and scores) and
    `reclaim()` waits for the same card again (a retry). A freed card wakes the steps waiting for it at once on
    PostgreSQL (`slot_freed`); SQLite, and slots freed by run monitoring, are found by polling."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, step_key: str, pools: Sequence[str],
                 log: Callable[[str], None] = lambda _: None, poll_seconds: float = POLL_SECONDS):
        if not pools:
            raise ValueError("a GPU lease needs at least one pool")
        self.instance = instance
        self.run_id, self.step_key, self.pools = run_id, step_key, list(pools)
        self.log, self.poll_seconds = log, poll_seconds
        self.held: str | None = None
        self.bound: str | None = None  # the card this lease got first; a reclaim waits for it alone
        self._claims = True  # False for a pool without a limit: used without a claim

    def _claim_key(self, pool: str) -> str:
        return f"{self.step_key}@{pool}"

    def _limited(self, pool: str) -> bool:
        return dagster_compat.pool_limit(self.instance, pool) is not None

    def __enter__(self) -> str:
        unlimited = [p for p in self.pools if not self._limited(p)]
        if unlimited:  # no limit configured for this pool: nothing to wait for
            self.log(f"pool {unlimited[0]} has no limit configured; using it without a claim")
            self.bound, self._claims = unlimited[0], False
            return unlimited[0]
        self.bound, self._claims = self._wait(self.pools), True
        return self.bound

    def release(self) -> None:
        """Give the card back before the block ends (idempotent)."""
        if self.held is not None:
            dagster_compat.free_slot(self.instance, self.run_id, self._claim_key(self.held))
            pool, self.held = self.held, None
            announce_slot_freed(self.instance, pool)

    def reclaim(self) -> None:
        """Wait for the card this lease got first, when `release()` gave it back (no-op while held)."""
        if self.bound is None:
            raise RuntimeError("reclaim() of a GPU lease that was never entered")
        if self.held is None and self._claims:
            self._wait([self.bound], again=True)

    def _wait(self, pools: Sequence[str], again: bool = False) -> str:
        """Claim the first of `pools` that is free, waiting for one; `again`: a reclaim, logged only if it waits."""
        started = time.monotonic()
        try:
            pool = self._claim_first(pools)
            if pool is None:
                self.log(f"all of {list(pools)} are busy; waiting for one")
                # listening from before the next attempt: a release between the two is not missed
                with slot_freed(self.instance) as wake:
                    order = list(pools)
                    while (pool := self._claim_first(order)) is None:
                        freed = wake(self.poll_seconds)
                        order = sorted(pools, key=lambda p: p not in freed)  # the card just given back first
        except BaseException:  # a run stopped while it waited: its queued claims leave with it
            self._withdraw(pools)
            raise
        waited = time.monotonic() - started
        if not again or waited > 0.05:
            self.log(f"claimed {pool}" + (f" after waiting {waited:.1f} s" if waited > 0.05 else ""))
        return pool

    def _claim_first(self, pools: Sequence[str]) -> str | None:
        for pool in pools:
            if dagster_compat.claim_slot(self.instance, pool, self.run_id, self._claim_key(pool)):
                self.held = pool
                self._withdraw([p for p in pools if p != pool])  # its claims queued in the others
                return pool
        return None

    def _withdraw(self, pools: Sequence[str]) -> None:
        """Free the slots or queued claims this lease has in `pools`."""
        for pool in pools:
            dagster_compat.free_slot(self.instance, self.run_id, self._claim_key(pool))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()  # claims still queued in other pools were withdrawn when this one was claimed


SLOT_FREED = "anime_pipeline_slot_freed"  # the PostgreSQL notification channel; the payload is the pool


@contextmanager
def slot_freed(instance: dg.DagsterInstance) -> Iterator[Callable[[float], set[str]]]:
    """A `wait(seconds)` that returns early, with the pools freed meanwhile, when a lease gives a card back. On
    PostgreSQL it listens on the pools' database (a step waiting for a card starts within milliseconds of the
    card's release, not at its next poll: the polls cost the cards ~0.2 s of idle per hand-over,
    benchmarks/daemon_makespan.py); else it sleeps."""
    connection = dagster_compat.postgres_connection(instance)
    if connection is None:
        def sleep(seconds: float) -> set[str]:
            time.sleep(seconds)
            return set()

        yield sleep
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {SLOT_FREED}")  # before the claims are tried again: no release is missed
        driver = connection.driver_connection

        def wait(seconds: float) -> set[str]:
            if not driver.notifies:
                select.select([driver], [], [], seconds)
            driver.poll()
            freed = {notice.payload for notice in driver.notifies}
            driver.notifies.clear()
            return freed

        yield wait
    finally:
        connection.close()


def announce_slot_freed(instance: dg.DagsterInstance, pool: str) -> None:
    """Wake the steps waiting for a card (PostgreSQL; nothing to do on SQLite, where they poll)."""
    connection = dagster_compat.postgres_connection(instance)
    if connection is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", (SLOT_FREED, pool))
    finally:
        connection.close()
