"""Replenishment: whether a character may get another batch of dataset candidates now, and if not which
guard holds it and until when (SPEC §5). Plain judgement over durable facts — the decision log, the reset
log, the recorded batches, and the batches the orchestration layer saw (its runs and its own requests) —
so the replenishment sensor, `anime-pipeline replenish status` and the studio page say the same thing.

The guards, in the order they are judged (the first that holds is the one a skip names):
target reached · no identity anchor yet · images awaiting a person · consecutive rejects · batches in
flight (this character's, and across the project) · cooldown · daily limit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.config.schema import DatasetPolicy
from anime_pipeline.manifest import Record
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.batches import latest_batch_record
from anime_pipeline.production.candidates import DecisionLog, list_candidates
from anime_pipeline.storage import append_jsonl, read_jsonl

GuardName = Literal["target", "anchor", "awaiting_review", "consecutive_rejects", "in_flight", "cooldown",
                    "daily_limit"]
GUARDS: tuple[GuardName, ...] = ("target", "anchor", "awaiting_review", "consecutive_rejects", "in_flight",
                                 "cooldown", "daily_limit")
DAY = 86_400.0
WAITS_FOR: dict[GuardName, str] = {  # what a hold with no end time waits on
    "target": "", "anchor": "until the identity anchor is materialized",
    "awaiting_review": "until a person reviews them", "consecutive_rejects": "until a person acts",
    "in_flight": "until a batch run finishes", "cooldown": "", "daily_limit": ""}


def utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Batch(Record):
    """One replenishment batch as the guards count it: requested by the sensor and/or seen as a run."""

    key: str  # the run key, or the run id of a run launched without one
    requested_at: float  # epoch seconds
    finished_at: float | None = None
    in_flight: bool = False
    run_id: str | None = None
    status: str | None = None  # the run's status, when a run was seen

    @property
    def last_activity(self) -> float:
        return max(self.requested_at, self.finished_at or 0.0)


class Counts(Record):
    target: int
    approved: int
    awaiting_review: int
    rejected: int
    consecutive_rejects: int
    has_anchor: bool


class GuardState(Record):
    guard: GuardName
    holds: bool
    detail: str
    until: float | None = None  # when it lets go by itself; None while it holds: when a person or a run acts

    def describe(self) -> str:
        if not self.holds:
            return f"{self.guard}: clear ({self.detail})"
        when = f" until {utc(self.until)}" if self.until is not None else f" {WAITS_FOR[self.guard]}".rstrip()
        return f"{self.guard} holds{when}: {self.detail}"


class LastBatch(Record):
    batch: int
    started_at: str
    finished_at: str
    made: tuple[str, ...]
    automatic: dict[str, str]
    learner: str  # the plan's summary: its steering and fixes


class CharacterReplenishment(Record):
    """Everything a person needs to see about one character's replenishment."""

    key: str
    name: str
    counts: Counts
    batches_today: int
    in_flight: tuple[str, ...]  # this character's unfinished batch runs
    guards: tuple[GuardState, ...]
    held_by: GuardName | None
    next_eligible_at: float | None  # None: it waits on a person (or a run) rather than on the clock
    last_batch: LastBatch | None  # the latest recorded batch (what the learner chose, what was decided)
    latest: Batch | None  # the latest batch requested or run

    @property
    def eligible(self) -> bool:
        return self.held_by is None

    def describe(self) -> str:
        if self.held_by is None:
            return f"{self.key}: eligible — {self.counts.approved}/{self.counts.target} approved"
        if self.held_by == "target":
            return f"{self.key}: target reached ({self.counts.approved}/{self.counts.target} approved)"
        return f"{self.key}: {next(g for g in self.guards if g.holds).describe()}"


class Reset(Record):
    at: str
    by: str
    after_candidate: str | None  # rejects up to this candidate no longer count


class ResetLog:
    """A person's resets of the consecutive-rejects guard, append-only (fsync'd), next to the decision log."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, by: str, after_candidate: str | None) -> Reset:
        entry = Reset(at=utc(time.time()), by=by, after_candidate=after_candidate)
        append_jsonl(self.path, entry.model_dump())
        return entry

    def latest(self) -> Reset | None:
        resets = []
        for line in read_jsonl(self.path):
            try:
                resets.append(Reset.model_validate(line))
            except ValidationError:
                continue  # a hand-edited line: kept in the file, not counted
        return resets[-1] if resets else None


def candidate_number(candidate_id: str) -> int:
    return int(candidate_id[1:]) if candidate_id[1:].isdigit() else -1


def consecutive_rejects(decisions: Mapping[str, str], after: str | None = None) -> int:
    """Rejected candidates in a row, newest first, back to the last approved one (undecided ones neither
    count nor break the run); only candidates made after a reset's `after` count."""
    floor = candidate_number(after) if after else -1
    run = 0
    for candidate in sorted(decisions, key=candidate_number, reverse=True):
        if candidate_number(candidate) <= floor or decisions[candidate] == "approve":
            break
        run += decisions[candidate] == "reject"
    return run


def character_counts(ref: CharacterRef, paths: StoragePaths) -> Counts:
    latest = DecisionLog(paths.decisions_log(ref.key)).latest()
    kinds = {c.id: latest[c.id].decision if c.id in latest else "human_review"
             for c in list_candidates(paths.candidates(ref.key))}
    reset = ResetLog(paths.replenishment_log(ref.key)).latest()
    return Counts(target=ref.character.dataset_target, approved=sum(k == "approve" for k in kinds.values()),
                  awaiting_review=sum(k not in ("approve", "reject") for k in kinds.values()),
                  rejected=sum(k == "reject" for k in kinds.values()),
                  consecutive_rejects=consecutive_rejects(kinds, reset.after_candidate if reset else None),
                  has_anchor=(paths.embedding(ref.key) / "anchor.npy").exists())


def last_batch(paths: StoragePaths, key: str) -> LastBatch | None:
    r = latest_batch_record(paths.candidates(key))
    if r is None:
        return None
    return LastBatch(batch=r.batch, started_at=r.started_at, finished_at=r.finished_at, made=r.made,
                     automatic=r.automatic, learner=r.plan.summary())


def judge(key: str, policy: DatasetPolicy, counts: Counts, batches: Sequence[Batch], project_in_flight: int,
          now: float) -> tuple[GuardState, ...]:
    """Every guard's state for one character at `now`."""
    own = [b for b in batches if b.in_flight]
    recent = sorted(b.requested_at for b in batches if b.requested_at > now - DAY)
    last = max(batches, key=lambda b: b.last_activity, default=None)
    cooldown_end = last.last_activity + policy.cooldown_seconds if last else None
    excess = len(recent) - policy.daily_batch_limit
    in_flight_cap = project_in_flight >= policy.max_batches_in_flight
    return (
        GuardState(guard="target", holds=counts.approved >= counts.target,
                   detail=f"{'target reached: ' if counts.approved >= counts.target else ''}"
                          f"{counts.approved}/{counts.target} approved"),
        GuardState(guard="anchor", holds=not counts.has_anchor,
                   detail="identity anchor ready" if counts.has_anchor else
                   f"no identity anchor yet: materialize {key}/character_embedding first"),
        GuardState(guard="awaiting_review", holds=counts.awaiting_review >= policy.max_awaiting_review,
                   detail=f"{counts.awaiting_review} candidate(s) await a person (limit {policy.max_awaiting_review})"
                          + (f": `anime-pipeline review list {key}`" if counts.awaiting_review else "")),
        GuardState(guard="consecutive_rejects", holds=counts.consecutive_rejects >= policy.max_consecutive_rejects,
                   detail=f"{counts.consecutive_rejects} rejected in a row (limit {policy.max_consecutive_rejects})"
                          + (f": until a person approves one or resets it (`anime-pipeline replenish reset {key}`)"
                             if counts.consecutive_rejects >= policy.max_consecutive_rejects else "")),
        GuardState(guard="in_flight", holds=bool(own) or in_flight_cap,
                   detail=(f"its batch {own[0].run_id or own[0].key} is {own[0].status or 'requested'}" if own else
                           f"{project_in_flight} batch(es) in flight across the project "
                           f"(limit {policy.max_batches_in_flight})")),
        GuardState(guard="cooldown", holds=cooldown_end is not None and now < cooldown_end,
                   until=cooldown_end if cooldown_end is not None and now < cooldown_end else None,
                   detail=f"{policy.cooldown_seconds:g} s after its last batch"
                          + (f" ({utc(last.last_activity)})" if last else " (none yet)")),
        GuardState(guard="daily_limit", holds=excess >= 0, until=recent[excess] + DAY if excess >= 0 else None,
                   detail=f"{len(recent)} batch(es) in the last 24 h (limit {policy.daily_batch_limit})"),
    )


def holding(guards: Sequence[GuardState]) -> GuardState | None:
    return next((g for g in guards if g.holds), None)


def next_eligible(guards: Sequence[GuardState], now: float) -> float | None:
    """When the character may next get a batch: now when nothing holds; the latest time-bound hold's end;
    None while a hold waits on a person or a run."""
    held = [g for g in guards if g.holds]
    if any(g.until is None for g in held):
        return None
    return max((g.until for g in held if g.until is not None), default=now)


def replenishment(ref: CharacterRef, paths: StoragePaths, batches: Sequence[Batch], project_in_flight: int,
                  now: float) -> CharacterReplenishment:
    """One character's replenishment state from storage and the batches the orchestration layer saw."""
    counts = character_counts(ref, paths)
    guards = judge(ref.key, ref.config.dataset, counts, batches, project_in_flight, now)
    held = holding(guards)
    return CharacterReplenishment(
        key=ref.key, name=ref.character.name, counts=counts,
        batches_today=sum(b.requested_at > now - DAY for b in batches),
        in_flight=tuple(b.run_id or b.key for b in batches if b.in_flight), guards=guards,
        held_by=held.guard if held else None, next_eligible_at=next_eligible(guards, now),
        last_batch=last_batch(paths, ref.key), latest=max(batches, key=lambda b: b.requested_at, default=None))
