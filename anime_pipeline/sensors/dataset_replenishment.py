"""The dataset replenishment sensor: keeps every character's approved images at its dataset_target, one
learner-steered batch at a time, held back by the six guards of SPEC §5 (production/replenishment.py).

Off by default (its switch in the UI's Automation tab, or `anime-pipeline replenish on|off`). Each tick
judges every character of every show; for each one that may have a batch it requests a run of its
`approved_dataset` asked for exactly one batch (`{"batches": 1}`), tagged `anime/replenish=<character>`.
That run generates and reviews the batch, records the automatic decisions, leaves the rest for a person
and judges the dataset with its gates.

Where the guards' state lives, so it survives daemon and machine restarts and a retried tick:
- counts, consecutive rejects and resets: the decision log and the reset log (storage);
- batches in flight, each batch's time and end: the instance's runs by tag — runs launched from the UI or
  the CLI with the tag count too;
- the batches it requested (for the daily limit and cooldown, should a run be deleted) and a generation
  counter for run keys: the cursor. A batch is identified by its run key (`replenish:<character>:<n>`),
  so the cursor and the runs never count one batch twice, and a retried tick requests the same key,
  which Dagster launches once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg
from pydantic import BaseModel, ValidationError

from anime_pipeline import dagster_compat
from anime_pipeline.assets.keys import asset_key
from anime_pipeline.config.project import CharacterRef, Project
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.replenishment import DAY, Batch, CharacterReplenishment, replenishment

SENSOR_NAME = "dataset_replenishment"
JOB_NAME = "replenish_datasets"
REPLENISH_TAG = "anime/replenish"  # value: the character key
GENERATION_TAG = "anime/replenish_batch"  # value: the sensor's batch counter for the character
RUN_KEY_TAG = "dagster/run_key"
MINIMUM_INTERVAL = 30
# Unfinished runs, spelled out: Dagster's own lists are internal.
NOT_FINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.SUSPENDED]
Clock = Callable[[], float]


class Requested(BaseModel):
    run_key: str
    at: float


class CharacterCursor(BaseModel):
    generation: int = 0
    requested: list[Requested] = []


class ReplenishCursor(BaseModel):
    """The sensor's cursor: what it requested in the last day, per character, and its run-key counters."""

    characters: dict[str, CharacterCursor] = {}

    @classmethod
    def parse(cls, text: str | None) -> ReplenishCursor:
        """A missing or unreadable cursor (edited by hand, an older version) starts afresh: the runs still
        carry every batch, so the guards hold as before."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except (ValidationError, ValueError):
            return cls()

    def requested(self, key: str, run_key: str, now: float) -> None:
        entry = self.characters.setdefault(key, CharacterCursor())
        entry.generation = max(entry.generation, generation_of(run_key))
        entry.requested = [r for r in entry.requested if r.at > now - DAY] + [Requested(run_key=run_key, at=now)]


def run_key(key: str, generation: int) -> str:
    return f"replenish:{key}:{generation}"


def generation_of(key: str) -> int:
    tail = key.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class RunLedger:
    """The replenishment runs the instance knows: every unfinished one, and every one of the last day."""

    def __init__(self, instance: dg.DagsterInstance, keys: Sequence[str], now: float):
        tagged = {REPLENISH_TAG: list(keys)}
        unfinished = instance.get_run_records(dg.RunsFilter(tags=tagged, statuses=NOT_FINISHED))
        since = datetime.fromtimestamp(now - DAY, timezone.utc)
        recent = instance.get_run_records(dg.RunsFilter(tags=tagged, created_after=since))
        self.records = {r.dagster_run.run_id: r for r in [*unfinished, *recent]}
        self.in_flight = sum(r.dagster_run.status in NOT_FINISHED for r in self.records.values())
        self._instance = instance

    def batches(self, key: str, cursor: CharacterCursor | None) -> list[Batch]:
        """The character's batches, one per run key: the cursor's requests joined with their runs."""
        requested = cursor.requested if cursor else []
        out: dict[str, Batch] = {r.run_key: Batch(key=r.run_key, requested_at=r.at) for r in requested}
        for record in self.records.values():
            run = record.dagster_run
            if run.tags.get(REPLENISH_TAG) != key:
                continue
            batch_key = run.tags.get(RUN_KEY_TAG, run.run_id)
            at = out[batch_key].requested_at if batch_key in out else record.create_timestamp.timestamp()
            out[batch_key] = Batch(key=batch_key, requested_at=at, finished_at=record.end_time,
                                   in_flight=run.status in NOT_FINISHED, run_id=run.run_id, status=run.status.value)
        return sorted(out.values(), key=lambda b: b.requested_at)

    def next_generation(self, key: str, cursor: CharacterCursor | None) -> int:
        """One past every batch counter the cursor or a run of the character used."""
        runs = list(self.records.values())
        if cursor is None:  # a lost cursor: the character's newest run still carries its counter
            runs += self._instance.get_run_records(dg.RunsFilter(tags={REPLENISH_TAG: key}), limit=1)
        counters = [int(tag) for r in runs if r.dagster_run.tags.get(REPLENISH_TAG) == key
                    and (tag := r.dagster_run.tags.get(GENERATION_TAG, "")).isdigit()]
        return max([cursor.generation if cursor else 0, *counters]) + 1


def assess(project: Project, paths: StoragePaths, ledger: RunLedger, cursor: ReplenishCursor,
           now: float) -> list[CharacterReplenishment]:
    """Every character's state, judged independently against the project's batches in flight now."""
    return [replenishment(ref, paths, ledger.batches(key, cursor.characters.get(key)), ledger.in_flight, now)
            for key, ref in project.characters.items()]


def replenishment_state(instance: dg.DagsterInstance, project: Project, paths: StoragePaths,
                        now: float | None = None) -> list[CharacterReplenishment]:
    """What `anime-pipeline replenish status` and the studio page show: each character's guards, counts,
    last batch and next eligible time, from the instance's runs and the sensor's stored cursor."""
    now = time.time() if now is None else now
    cursor = ReplenishCursor.parse(dagster_compat.sensor_cursor(instance, SENSOR_NAME))
    return assess(project, paths, RunLedger(instance, list(project.characters), now), cursor, now)


def run_request(ref: CharacterRef, generation: int, state: CharacterReplenishment) -> dg.RunRequest:
    key = asset_key("approved_dataset", ref.key)
    return dg.RunRequest(
        run_key=run_key(ref.key, generation), asset_selection=[key],
        run_config={"ops": {key.to_python_identifier(): {"config": {"batches": 1}}}},
        tags={REPLENISH_TAG: ref.key, GENERATION_TAG: str(generation),
              "anime/replenish_reason": f"{state.counts.approved}/{state.counts.target} approved; "
                                        f"batch of {ref.config.dataset.batch_size}"})


@dataclass(frozen=True)
class Tick:
    requests: list[dg.RunRequest]
    lines: list[str]  # per character, what happened to it
    all_at_target: bool


def evaluate(project: Project, paths: StoragePaths, instance: dg.DagsterInstance, cursor: ReplenishCursor,
             now: float) -> Tick:
    """One tick (the cursor is updated with what it requests). Characters are judged longest-waiting first,
    each against the batches in flight including the ones this tick requested before it."""
    ledger = RunLedger(instance, list(project.characters), now)
    batches = {key: ledger.batches(key, cursor.characters.get(key)) for key in project.characters}
    order = sorted(batches, key=lambda key: (max((b.requested_at for b in batches[key]), default=0.0), key))
    requests, lines, at_target, in_flight = [], [], True, ledger.in_flight
    for key in order:
        ref = project.characters[key]
        state = replenishment(ref, paths, batches[key], in_flight, now)
        at_target &= state.held_by == "target"
        if not state.eligible:
            lines.append(state.describe())
            continue
        generation = ledger.next_generation(key, cursor.characters.get(key))
        requests.append(run_request(ref, generation, state))
        cursor.requested(key, run_key(key, generation), now)
        in_flight += 1
        lines.append(f"{key}: batch {generation} requested ({state.counts.approved}/{state.counts.target} "
                     f"approved, {state.counts.awaiting_review} awaiting review)")
    return Tick(requests=requests, lines=lines, all_at_target=at_target)


def build_replenishment_job(project: Project) -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.assets(
        *(asset_key("approved_dataset", key) for key in project.characters)),
        description="One learner-steered batch of dataset candidates per run, then the dataset's gates "
                    "(launched by the dataset_replenishment sensor).")


def build_replenishment_sensor(project: Project, job: dg.UnresolvedAssetJobDefinition,
                               clock: Clock = time.time) -> dg.SensorDefinition:
    """The sensor over the loaded project; `clock` is where it reads the time (tests pass their own)."""

    @dg.sensor(name=SENSOR_NAME, job=job, minimum_interval_seconds=MINIMUM_INTERVAL,
               default_status=dg.DefaultSensorStatus.STOPPED, required_resource_keys={"storage"},
               description="Tops up each character's approved dataset to its dataset_target, one "
                           "learner-steered batch at a time, within the show's dataset: guards (cooldown, "
                           "daily limit, consecutive rejects, images awaiting review, batches in flight).")
    def dataset_replenishment(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = ReplenishCursor.parse(context.cursor)
        tick = evaluate(project, context.resources.storage.paths, context.instance, cursor, clock())
        for line in tick.lines:
            context.log.info(line)
        skip = None if tick.requests else "\n".join(
            (["target reached for every character"] if tick.all_at_target else []) + tick.lines)
        return dg.SensorResult(run_requests=tick.requests, cursor=cursor.model_dump_json(), skip_reason=skip)

    return dataset_replenishment
