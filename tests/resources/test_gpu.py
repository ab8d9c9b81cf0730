import multiprocessing
import shutil
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from anime_pipeline import dagster_compat
from anime_pipeline.resources.gpu import GpuLease
from tests.deploy.services import PG, database, wait_for
from tests.worlds import EMBEDDED_OVERRIDES, REPO


def test_two_gpus_run_two_steps_at_once_and_never_two_on_one_card(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        active: dict[str, int] = {"gpu-0": 0, "gpu-1": 0}
        worst: dict[str, int] = {"gpu-0": 0, "gpu-1": 0}
        together = [0]  # most steps rendering at the same moment, across both cards
        lock = threading.Lock()

        def step(run_id: str) -> None:
            with GpuLease(instance, run_id, "shot_clip", ["gpu-0", "gpu-1"], poll_seconds=0.02) as pool:
                with lock:
                    active[pool] += 1
                    worst[pool] = max(worst[pool], active[pool])
                    together[0] = max(together[0], sum(active.values()))
                time.sleep(0.2)
                with lock:
                    active[pool] -= 1

        threads = [threading.Thread(target=step, args=(f"run-{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert worst == {"gpu-0": 1, "gpu-1": 1}  # never two on one card
        assert together[0] == 2  # and both cards at once
        for pool in ("gpu-0", "gpu-1"):
            info = instance.event_log_storage.get_concurrency_info(pool)
            assert info.claimed_slots == [] and info.pending_steps == []


def test_a_slot_held_by_a_dead_run_is_freed_by_run_id(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        lease = GpuLease(instance, "dead-run", "shot_clip", ["gpu-0"])
        assert lease.__enter__() == "gpu-0"  # the run dies here, never exiting the lease
        instance.event_log_storage.free_concurrency_slots_for_run("dead-run")  # what run monitoring does
        with GpuLease(instance, "next-run", "shot_clip", ["gpu-0"], poll_seconds=0.01) as pool:
            assert pool == "gpu-0"


def test_on_sqlite_nothing_listens_and_a_released_card_is_found_by_polling(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        assert dagster_compat.postgres_connection(instance) is None
        first = GpuLease(instance, "run-a", "shot_clip", ["gpu-0"])
        assert first.__enter__() == "gpu-0"
        first.release()
        with GpuLease(instance, "run-b", "shot_clip", ["gpu-0"], poll_seconds=0.01) as pool:
            assert pool == "gpu-0"
        first.__exit__(None, None, None)


class Stopped(Exception):
    """What Dagster raises in a step whose run is terminated (DagsterExecutionInterruptedError) stands here."""


def test_a_step_stopped_while_it_waits_leaves_no_claim_in_any_queue(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        with GpuLease(instance, "run-a", "shot_clip", ["gpu-0", "gpu-1"]), \
                GpuLease(instance, "run-b", "shot_clip", ["gpu-0", "gpu-1"]):

            def stop_once_waiting(message: str) -> None:
                if "busy" in message:
                    raise Stopped(message)

            with pytest.raises(Stopped):
                GpuLease(instance, "run-c", "shot_clip", ["gpu-0", "gpu-1"], log=stop_once_waiting).__enter__()
            for pool in ("gpu-0", "gpu-1"):  # a card freed later goes to a live step, not to the stopped one
                pending = instance.event_log_storage.get_concurrency_info(pool).pending_steps
                assert [step for step in pending if step.run_id == "run-c"] == []


def test_a_pool_two_processes_initialised_at_once_still_holds_one_step(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as instance:
        storage = instance.event_log_storage
        initialise = storage.initialize_concurrency_limit_to_default

        def with_another_process_at_once(pool: str) -> bool:
            """The interleaving of two processes initialising the new pool at the same moment: each counted no
            slot before the other's insert, so the other's slot lands too (Dagster's own allocator adds it)."""
            done = initialise(pool)
            with storage.index_transaction() as conn:
                storage._allocate_concurrency_slots(conn, pool, 2)  # noqa: SLF001
            return done

        monkeypatch.setattr(storage, "initialize_concurrency_limit_to_default", with_another_process_at_once)
        with GpuLease(instance, "run-a", "shot_clip", ["gpu-0"]) as pool:
            assert pool == "gpu-0"
            assert not dagster_compat.claim_slot(instance, "gpu-0", "run-b", "shot_clip@gpu-0")  # never two
        assert storage.get_concurrency_info("gpu-0").slot_count == 1



@pytest.fixture
def postgres_instance(tmp_path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose pools live in a fresh PostgreSQL database (dropped after)."""
    with database() as name:
        home = tmp_path / "pg-home"
        home.mkdir()
        (home / "dagster.yaml").write_text(
            "storage:\n  postgres:\n"
            f"    postgres_url: postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{name}\n"
            "concurrency:\n  pools:\n    default_limit: 1\n")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield instance


def waiting(instance: dg.DagsterInstance, pool: str, run_id: str) -> bool:
    """Whether `run_id` has a claim queued for `pool` that holds no slot yet."""
    return any(step.run_id == run_id and step.assigned_timestamp is None
               for step in instance.event_log_storage.get_concurrency_info(pool).pending_steps)


def in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_on_postgres_a_freed_card_wakes_its_waiting_step_before_its_next_poll(postgres_instance):
    instance = postgres_instance
    holder = GpuLease(instance, "run-a", "shot_clip", ["gpu-0"])
    assert holder.__enter__() == "gpu-0"
    # a poll far longer than the deadline below: only the release's notification wakes the waiter in time
    waiter = GpuLease(instance, "run-b", "shot_clip", ["gpu-0"], poll_seconds=300)
    claimed = threading.Event()

    def step() -> None:
        with waiter:
            claimed.set()

    thread = in_thread(step)
    wait_for(lambda: waiting(instance, "gpu-0", "run-b"), "the waiting step's claim", 20)
    holder.release()
    assert claimed.wait(30), "the release did not wake the step waiting for the card"
    thread.join(30)
    holder.__exit__(None, None, None)  # a lease released early exits without freeing anyone else's slot
    assert instance.event_log_storage.get_concurrency_info("gpu-0").claimed_slots == []


def test_a_lease_gives_its_card_back_between_renders_and_reclaims_the_same_card_for_a_retry(postgres_instance):
    instance = postgres_instance
    retrying = GpuLease(instance, "run-a", "shot_clip", ["gpu-0", "gpu-1"])
    card = retrying.__enter__()
    other = GpuLease(instance, "run-b", "shot_clip", [card])
    other_renders, other_may_end, reclaimed = threading.Event(), threading.Event(), threading.Event()

    def other_step() -> None:
        with other:
            other_renders.set()
            other_may_end.wait(30)

    def retry() -> None:
        retrying.reclaim()
        reclaimed.set()

    first = in_thread(other_step)
    wait_for(lambda: waiting(instance, card, "run-b"), "the other step's claim", 20)
    retrying.release()  # rendered: the waiting step takes the card while this one scores its attempt
    assert other_renders.wait(30)
    second = in_thread(retry)
    wait_for(lambda: waiting(instance, card, "run-a"), "the retry's claim", 20)
    assert not reclaimed.is_set()  # the retry waits for its own card, not the free one
    other_may_end.set()
    assert reclaimed.wait(30) and retrying.held == card
    first.join(30), second.join(30)
    retrying.__exit__(None, None, None)
    info = instance.event_log_storage.get_concurrency_info(card)
    assert info.claimed_slots == [] and info.pending_steps == []


def _lease_claim(instance: dg.DagsterInstance, pool: str, run_id: str) -> bool:
    """What a GPU lease does."""
    return dagster_compat.pool_limit(instance, pool) is not None and dagster_compat.claim_slot(
        instance, pool, run_id, f"shot_clip@{pool}")


def _executor_claim(instance: dg.DagsterInstance, pool: str, run_id: str) -> bool:
    """What Dagster's executor does for a step with a static `pool=` (its InstanceConcurrencyContext)."""
    storage = instance.event_log_storage
    if storage.get_concurrency_info(pool).slot_count == 0:
        storage.initialize_concurrency_limit_to_default(pool)
    return storage.claim_concurrency_slot(pool, run_id, "train").is_claimed


def _claim_at_once(home: str, pool: str, run_id: str, start, claimed, claim) -> None:
    """One step process: its own instance on the shared storage, claiming `pool` the moment all are ready."""
    with dg.DagsterInstance.from_config(home) as instance:
        start.wait(timeout=60)
        if claim(instance, pool, run_id):
            claimed.append(run_id)


def _race(home: str, claim=_lease_claim, rounds: int = 4, racers: int = 6, card: str = "gpu") -> list[list[str]]:
    """Per round, the runs that got a new pool of limit 1 (`card`-<round>) when `racers` processes claimed it at
    the same moment."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        outcome = []
        for round_ in range(rounds):
            start, claimed = manager.Barrier(racers), manager.list()
            processes = [context.Process(target=_claim_at_once, args=(home, f"{card}-{round_}", f"run-{i}", start,
                                                                        claimed, claim)) for i in range(racers)]
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=60)
            assert all(p.exitcode == 0 for p in processes)
            outcome.append(list(claimed))
        return outcome


def test_processes_claiming_a_card_at_the_same_moment_on_sqlite_get_it_once(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES):
        assert [len(winners) for winners in _race(str(home))] == [1, 1, 1, 1]


def test_processes_claiming_a_card_at_the_same_moment_on_postgres_get_it_once(postgres_instance):
    assert [len(winners) for winners in _race(postgres_instance.root_directory)] == [1, 1, 1, 1]


def test_on_the_production_storage_dagsters_own_claims_get_a_card_once_too(tmp_path, monkeypatch):
    """A step with a static pool is claimed by Dagster's executor, through the storage dagster.yaml names."""
    with database() as name:
        home = tmp_path / "prod-home"
        home.mkdir()
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        for key, value in {"HOST": PG["host"], "PORT": str(PG["port"]), "USER": PG["user"], "DATABASE": name}.items():
            monkeypatch.setenv(f"PG{key}", value)
        with dg.DagsterInstance.from_config(str(home)) as instance:  # the schema, made once before the race
            assert type(instance.event_log_storage).__name__ == "OneClaimerPostgresEventLogStorage"
        assert [len(winners) for winners in _race(str(home), _executor_claim)] == [1, 1, 1, 1]
        assert [len(winners) for winners in _race(str(home), rounds=1, card="lease")] == [1]  # no lock taken twice


def test_a_claim_lock_held_too_long_is_a_clear_error_on_sqlite_and_postgres(tmp_path, postgres_instance, monkeypatch):
    monkeypatch.setattr(dagster_compat, "CLAIM_LOCK_SECONDS", 0.2)
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as sqlite_instance:
        for instance in (sqlite_instance, postgres_instance):
            with dagster_compat._one_claimer(instance, "gpu-0"):  # noqa: SLF001 — a stuck process holding it
                with multiprocessing.get_context("fork").Pool(1) as other:
                    message = other.apply(_claim_message, (instance.root_directory, "gpu-0"))
            assert message == "pool gpu-0: another process has held its claim lock for over 0.2 s"
            assert _lease_claim(instance, "gpu-0", "run-a")  # free again after


def _claim_message(home: str, pool: str) -> str:
    with dg.DagsterInstance.from_config(home) as instance:
        try:
            dagster_compat.claim_slot(instance, pool, "run-b", f"shot_clip@{pool}")
        except TimeoutError as exc:
            return str(exc)
    return "claimed"
