"""The replenishment guards as plain judgement: each one holding, saying why and until when."""

from __future__ import annotations

from anime_pipeline.config.schema import DatasetPolicy
from anime_pipeline.production.replenishment import (
    DAY,
    Batch,
    Counts,
    ResetLog,
    consecutive_rejects,
    holding,
    judge,
    next_eligible,
    utc,
)

POLICY = DatasetPolicy()
NOW = 1_796_000_000.0  # 2026-11-30T...: a fixed moment, the guards read no clock of their own
KEY = "show/mio"


def counts(**changes) -> Counts:
    return Counts(**{"target": 12, "approved": 3, "awaiting_review": 0, "rejected": 0, "consecutive_rejects": 0,
                     "has_anchor": True, **changes})


def guards(c: Counts = None, batches=(), in_flight: int = 0, policy: DatasetPolicy = POLICY):
    states = judge(KEY, policy, c or counts(), list(batches), in_flight, NOW)
    return {g.guard: g for g in states}, holding(states)


def test_nothing_holds_a_character_below_target_with_no_history():
    states, held = guards()
    assert held is None and not any(g.holds for g in states.values())
    assert next_eligible(list(states.values()), NOW) == NOW


def test_target_anchor_review_buffer_and_rejects_hold_until_a_person_acts():
    for c, guard, words in ((counts(approved=12), "target", "target reached: 12/12 approved"),
                            (counts(has_anchor=False), "anchor", "materialize show/mio/character_embedding"),
                            (counts(awaiting_review=3), "awaiting_review", "3 candidate(s) await a person (limit 3)"),
                            (counts(consecutive_rejects=5), "consecutive_rejects",
                             "anime-pipeline replenish reset show/mio")):
        states, held = guards(c)
        assert held.guard == guard and words in held.detail and held.until is None, held
        assert next_eligible(list(states.values()), NOW) is None


def test_in_flight_holds_for_the_character_s_own_run_and_at_the_project_cap():
    own = Batch(key="replenish:show/mio:4", requested_at=NOW - 5, in_flight=True, run_id="abc", status="STARTED")
    _, held = guards(batches=[own])
    assert held.guard == "in_flight" and held.detail == "its batch abc is STARTED"
    _, held = guards(in_flight=2)
    assert held.guard == "in_flight" and "2 batch(es) in flight across the project (limit 2)" in held.detail
    _, held = guards(in_flight=1)
    assert held is None


def test_cooldown_counts_from_the_last_batch_s_end_and_says_until_when():
    done = Batch(key="k1", requested_at=NOW - 100, finished_at=NOW - 20, run_id="r1", status="SUCCESS")
    states, held = guards(batches=[done])
    assert held.guard == "cooldown" and held.until == NOW + 40
    assert held.describe().startswith(f"cooldown holds until {utc(NOW + 40)}")
    assert next_eligible(list(states.values()), NOW) == NOW + 40
    _, held = guards(batches=[done], policy=DatasetPolicy(cooldown_seconds=10))
    assert held is None


def test_the_daily_limit_lets_go_when_the_oldest_batch_of_the_window_turns_a_day_old():
    batches = [Batch(key=f"k{i}", requested_at=NOW - DAY + 600 + i * 3600) for i in range(10)]
    batches.append(Batch(key="old", requested_at=NOW - DAY - 1))  # outside the window
    _, held = guards(batches=batches)
    assert held.guard == "daily_limit" and held.until == NOW + 600 and "10 batch(es) in the last 24 h" in held.detail
    _, held = guards(batches=batches[1:])
    assert held is None
    _, held = guards(batches=batches, policy=DatasetPolicy(daily_batch_limit=12))
    assert held is None


def test_consecutive_rejects_skip_undecided_stop_at_an_approval_and_honour_a_reset(tmp_path):
    decisions = {"c0001": "approve", "c0002": "reject", "c0003": "human_review", "c0004": "reject",
                 "c0010": "reject"}
    assert consecutive_rejects(decisions) == 3  # c0010 sorts after c0004 by number, not by text
    assert consecutive_rejects({**decisions, "c0004": "approve"}) == 1
    assert consecutive_rejects(decisions, after="c0004") == 1
    log = ResetLog(tmp_path / "replenishment.jsonl")
    assert log.latest() is None
    log.record("human:ana", "c0004")
    with open(log.path, "a") as fh:
        fh.write('{"at": "2026-')  # torn by a crash: earlier resets survive
    assert log.latest().after_candidate == "c0004" and log.latest().by == "human:ana"
