import threading
import time

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.resources.gpu import GpuLease
from tests.worlds import EMBEDDED_OVERRIDES


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
