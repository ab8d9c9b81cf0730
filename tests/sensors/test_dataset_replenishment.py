"""The dataset replenishment sensor, driven with `build_sensor_context` on a clock of its own.

Runs are made as the daemon makes them (the request's tags, its run key and the sensor's name) at the
simulated time, and finished with their end time, so the guards read the instance exactly as they would;
a batch's results (candidates and the reviewer's decisions) are written to storage as the run would.
The end-to-end test runs the requested runs for real, after turning the sensor on as the CLI does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.test_utils import create_run_for_test, freeze_time

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.config import Project
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.candidates import DecisionLog, list_candidates
from anime_pipeline.production.replenishment import DAY, ResetLog, utc
from anime_pipeline.resources import StorageResource
from anime_pipeline.sensors.dataset_replenishment import (
    GENERATION_TAG,
    JOB_NAME,
    REPLENISH_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME,
    ReplenishCursor,
    build_replenishment_job,
    build_replenishment_sensor,
    replenishment_state,
    run_key,
)
from anime_pipeline.storage import read_json, write_json
from tests.worlds import World, write_show

T0 = 1_796_083_200.0  # 2026-12-01T00:00:00Z
MIO, HOSHI, NIGHT_MIO, NIGHT_HOSHI = "lantern-post/mio", "lantern-post/hoshi", "night-post/mio", "night-post/hoshi"


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def retarget(world: World, targets: dict[str, int], dataset: dict | None = None) -> None:
    """Every show file of the world with new dataset targets (and a dataset: section)."""
    for path in world.configs.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        for character in data["characters"]:
            character["dataset_target"] = targets.get(f"{data['show']['slug']}/{character['slug']}",
                                                      character["dataset_target"])
        if dataset:
            data["dataset"] = dataset
        path.write_text(yaml.safe_dump(data, sort_keys=False))


class Day:
    """A project of two shows (the rendered sample, and a copy whose characters have anchors but no
    candidates yet) and the moves of a day: ticks, runs launched and finished, batches' results."""

    def __init__(self, world: World, instance: dg.DagsterInstance, clock: Clock):
        self.world, self.instance, self.clock = world, instance, clock
        self.project = Project.load(world.configs)
        self.paths = StoragePaths(world.storage)
        self.sensor = build_replenishment_sensor(self.project, build_replenishment_job(self.project), clock)
        self.cursor: str | None = None
        self.template = read_json(self.paths.candidates(MIO) / "c0000.json")

    def tick(self, cursor: str | None | bool = True, instance: dg.DagsterInstance | None = None):
        """One evaluation; its cursor is kept for the next, as the daemon keeps it (pass one to override)."""
        context = dg.build_sensor_context(instance=instance or self.instance,
                                          cursor=self.cursor if cursor is True else cursor or None,
                                          resources={"storage": StorageResource(root=str(self.world.storage),
                                                                                library_root=str(self.world.storage))})
        result = self.sensor.evaluate_tick(context)
        if cursor is True:
            self.cursor = result.cursor
        return result

    def launch(self, request: dg.RunRequest | None = None, tags: dict | None = None) -> str:
        """A run as the daemon launches it for a request (or as a person would from the UI, with `tags`)."""
        tags = tags or {**request.tags, RUN_KEY_TAG: request.run_key, "dagster/sensor_name": SENSOR_NAME}
        with freeze_time(self.clock.now):
            return create_run_for_test(self.instance, job_name=JOB_NAME, tags=tags,
                                       status=dg.DagsterRunStatus.STARTED).run_id

    def finish(self, run_id: str, key: str, decisions: list[str]) -> None:
        """The batch's results in storage, then the run's end (a person's decisions come later)."""
        self.settle(key, decisions, "auto:heuristic (embedded, weight-free)")
        event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=JOB_NAME)
        self.instance.report_dagster_event(event, run_id=run_id, timestamp=self.clock.now)

    def settle(self, key: str, decisions: list[str], decider: str) -> list[str]:
        folder = self.paths.candidates(key)
        folder.mkdir(parents=True, exist_ok=True)
        start = len(list_candidates(folder))
        ids = [f"c{start + i:04d}" for i in range(len(decisions))]
        log = DecisionLog(self.paths.decisions_log(key))
        for cid, decision in zip(ids, decisions, strict=True):
            shutil.copy(self.paths.candidates(MIO) / "c0000.png", folder / f"{cid}.png")
            write_json(folder / f"{cid}.json", {**self.template, "id": cid})
            log.record(cid, decision, decider)
        return ids

    def run_batches(self, result, outcomes: dict[str, list[str]], after: float = 10) -> dict[str, str]:
        """Launch every requested run now, finish each `after` seconds later with its character's outcome."""
        runs = {r.tags[REPLENISH_TAG]: self.launch(r) for r in result.run_requests}
        self.clock.advance(after)
        for key, run_id in runs.items():
            self.finish(run_id, key, outcomes.get(key, ["approve"] * 3))
        return runs

    def state(self, instance: dg.DagsterInstance | None = None):
        return {s.key: s for s in replenishment_state(instance or self.instance, self.project, self.paths,
                                                      now=self.clock.now)}


@pytest.fixture
def day(characters: World):
    write_show(characters.configs, slug="night-post")
    for slug in ("mio", "hoshi"):  # anchors, so only the guards hold the copy's characters back
        shutil.copytree(StoragePaths(characters.storage).embedding(f"lantern-post/{slug}"),
                        StoragePaths(characters.storage).embedding(f"night-post/{slug}"))
    retarget(characters, {MIO: 200, HOSHI: 20, NIGHT_MIO: 20, NIGHT_HOSHI: 20})
    with characters.instance() as instance:
        yield Day(characters, instance, Clock(T0))


def _lines(result) -> dict[str, str]:
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in (result.skip_message or "").splitlines()
            if ": " in line}


def test_a_simulated_day_shows_every_guard_holding(day: Day):
    op = asset_key("approved_dataset", MIO).to_python_identifier()

    # 00:00:00 four characters below target: two requested (at most 2 in flight), one batch each
    first = day.tick()
    assert [r.run_key for r in first.run_requests] == [run_key(HOSHI, 1), run_key(MIO, 1)]
    mio_request = first.run_requests[1]
    assert mio_request.run_config == {"ops": {op: {"config": {"batches": 1}}}}
    assert mio_request.asset_selection == [asset_key("approved_dataset", MIO)]
    assert mio_request.tags[REPLENISH_TAG] == MIO and mio_request.tags[GENERATION_TAG] == "1"
    assert "batch of 3" in mio_request.tags["anime/replenish_reason"]
    state = day.state()
    assert state[NIGHT_MIO].held_by is None  # judged alone it could go; the tick's own requests filled the cap
    runs = {r.tags[REPLENISH_TAG]: day.launch(r) for r in first.run_requests}

    # 00:00:30 the two others wait on the cap; the requested ones on their own runs
    day.clock.advance(30)
    lines = _lines(day.tick())
    assert lines[NIGHT_MIO] == ("in_flight holds until a batch run finishes: 2 batch(es) in flight across "
                                "the project (limit 2)")
    assert lines[MIO] == f"in_flight holds until a batch run finishes: its batch {runs[MIO]} is STARTED"

    # 00:00:40 both finish: Mio's three approved, Hoshi's (non-human) three await a person
    day.clock.advance(10)
    day.finish(runs[MIO], MIO, ["approve"] * 3)
    day.finish(runs[HOSHI], HOSHI, ["human_review"] * 3)

    # 00:01:00 the copy's characters go; Mio cools down until 00:01:40; Hoshi waits for a person
    day.clock.advance(20)
    result = day.tick()
    assert [r.run_key for r in result.run_requests] == [run_key(NIGHT_HOSHI, 1), run_key(NIGHT_MIO, 1)]
    state = day.state()
    assert state[MIO].held_by == "cooldown" and state[MIO].next_eligible_at == T0 + 100
    assert state[HOSHI].held_by == "awaiting_review" and state[HOSHI].next_eligible_at is None
    day.run_batches(result, {NIGHT_MIO: ["reject"] * 3, NIGHT_HOSHI: ["reject"] * 3})

    # through the day: every character goes again whenever nothing holds it
    while day.clock.now < T0 + 20 * 60:
        day.clock.advance(61 - 10)
        day.run_batches(day.tick(), {NIGHT_MIO: ["reject"] * 3, NIGHT_HOSHI: ["reject"] * 3})
    lines = _lines(day.tick())
    state = day.state()

    # the copy's characters stopped after their 5th reject in a row (two batches of three)
    assert len(list_candidates(day.paths.candidates(NIGHT_MIO))) == 6
    assert lines[NIGHT_MIO] == ("consecutive_rejects holds until a person acts: 6 rejected in a row (limit 5): until a "
                                "person approves one or resets it (`anime-pipeline replenish reset night-post/mio`)")
    # Mio had its 10 batches of the day, the first at 00:00:00: no more until 24 h after it
    assert state[MIO].batches_today == 10 and state[MIO].counts.approved == 6 + 30
    assert lines[MIO] == (f"daily_limit holds until {utc(T0 + DAY)}: 10 batch(es) in the last 24 h (limit 10)")
    assert lines[HOSHI].startswith("awaiting_review holds until a person reviews them: 3 candidate(s) await a person")
    assert len(list_candidates(day.paths.candidates(MIO))) == 6 + 10 * 3  # batch size 3, one batch per run

    # a person acts: a reset for one, an approval for the other, a review of Hoshi's three
    ResetLog(day.paths.replenishment_log(NIGHT_MIO)).record("human:ana", "c0005")
    DecisionLog(day.paths.decisions_log(NIGHT_HOSHI)).record("c0004", "approve", "human:ana")
    for cid in ("c0006", "c0007", "c0008"):
        DecisionLog(day.paths.decisions_log(HOSHI)).record(cid, "approve", "human:ana")
    # and a run launched from the UI with the tag counts against the cap like any other
    elsewhere = day.launch(tags={REPLENISH_TAG: HOSHI})
    result = day.tick()
    assert [r.run_key for r in result.run_requests] == [run_key(NIGHT_HOSHI, 3)]  # the cap: 1 from the UI + 1
    assert day.state()[HOSHI].in_flight == (elsewhere,)

    day.finish(elsewhere, HOSHI, ["approve"] * 3)
    day.run_batches(result, {NIGHT_HOSHI: ["reject"] * 3})

    # the next day, Mio's oldest batch has aged out of the window
    day.clock.now = T0 + DAY + 1
    assert day.state()[MIO].held_by is None
    assert run_key(MIO, 11) in [r.run_key for r in day.tick().run_requests]


def test_the_state_survives_a_new_instance_object_and_even_a_lost_cursor(day: Day):
    while day.state()[MIO].batches_today < 10:
        result = day.tick()
        day.run_batches(result, {NIGHT_MIO: ["reject"] * 3, NIGHT_HOSHI: ["human_review"] * 3,
                                 HOSHI: ["human_review"] * 3})
        day.clock.advance(61)
    before = day.tick()
    assert not before.run_requests
    expected = {key: (s.held_by, s.next_eligible_at, s.batches_today, s.counts) for key, s in day.state().items()}
    assert expected[MIO][0] == "daily_limit" and expected[NIGHT_MIO][0] == "consecutive_rejects"
    assert expected[NIGHT_HOSHI][0] == "awaiting_review" and expected[HOSHI][0] == "awaiting_review"

    with dg.instance_for_test(temp_dir=str(day.world.home)) as reopened:
        assert reopened is not day.instance
        for cursor in (before.cursor, None):  # the stored cursor, and none at all (deleted by hand)
            again = day.tick(cursor=cursor, instance=reopened)
            assert not again.run_requests and again.skip_message == before.skip_message
        state = day.state(reopened)
        assert {key: (s.held_by, s.next_eligible_at, s.batches_today, s.counts) for key, s in state.items()} == expected


def test_a_retried_tick_requests_the_same_batch_and_counts_it_once(day: Day):
    cursor = day.cursor
    first = day.tick()
    retried = day.tick(cursor=cursor)  # the daemon retries a tick whose cursor it could not store
    assert [r.run_key for r in retried.run_requests] == [r.run_key for r in first.run_requests]
    day.launch(first.run_requests[1])  # had it launched the run before failing
    again = day.tick(cursor=cursor)
    assert MIO not in [r.tags[REPLENISH_TAG] for r in again.run_requests]
    assert day.state()[MIO].batches_today == 1  # the cursor's request and its run are one batch
    assert ReplenishCursor.parse("{not json") == ReplenishCursor()  # a damaged cursor starts afresh


def test_the_sensor_is_off_by_default_and_stops_itself_at_the_target(day: Day):
    assert day.sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert day.sensor.minimum_interval_seconds == 30
    retarget(day.world, {MIO: 4, HOSHI: 4})
    day.project = Project.load(day.world.configs)
    day.project.shows.pop("night-post")
    day.sensor = build_replenishment_sensor(day.project, build_replenishment_job(day.project), day.clock)
    result = day.tick()
    assert result.skip_message.splitlines()[0] == "target reached for every character"
    assert _lines(result)[MIO] == "target reached (6/4 approved)"


def test_end_to_end_the_cli_turns_it_on_and_the_runs_reach_the_target(characters: World, monkeypatch, capsys):
    """Real runs of the requested batches until the target is reached and the sensor skips, saying so."""
    from anime_pipeline import dagster_compat
    from anime_pipeline.cli import main
    from anime_pipeline.definitions import build_definitions

    retarget(characters, {MIO: 12}, dataset={"cooldown_seconds": 0})
    for name, value in (("ANIME_PIPELINE_CONFIGS", characters.configs), ("ANIME_PIPELINE_STORAGE", characters.storage),
                        ("ANIME_PIPELINE_LIBRARY", characters.storage / "library"),
                        ("ANIME_PIPELINE_MODELS", characters.root / "models"), ("DAGSTER_HOME", characters.home)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # where workspace.yaml is, as for `anime-pipeline dev`
    project = Project.load(characters.configs)
    repository = build_definitions(characters.settings(), project).get_repository_def()
    sensor, job = repository.get_sensor_def(SENSOR_NAME), repository.get_job(JOB_NAME)
    with characters.instance() as instance:
        assert not dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
        assert main(["replenish", "on"]) == 0
        cursor, skips, ran = None, [], []
        while dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False) and len(ran) < 4:
            with dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repository,
                                         resources=repository.get_top_level_resources()) as context:
                result = sensor.evaluate_tick(context)
            cursor = result.cursor
            if not result.run_requests:
                skips.append(result.skip_message)
                break
            for request in result.run_requests:  # as the daemon launches them
                run = job.execute_in_process(instance=instance, asset_selection=list(request.asset_selection),
                                             run_config=request.run_config, raise_on_error=False,
                                             tags={**request.tags, RUN_KEY_TAG: request.run_key,
                                                   "dagster/sensor_name": SENSOR_NAME})
                checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
                assert run.success == all(checks.values())  # below target, the run ends on its failed gate
                ran.append((request.run_key, checks))
        assert main(["replenish", "off"]) == 0
        assert not dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
        assert main(["replenish", "status"]) == 0

    # two batches of three took Mio from 6 to 12 approved; the dataset's gates judged each run
    assert [key for key, _ in ran] == [run_key(MIO, 1), run_key(MIO, 2)]
    assert ran[0][1]["enough_approved"] is False and ran[1][1]["enough_approved"] is True
    assert skips and skips[0].splitlines()[0] == "target reached for every character"
    manifest = read_json(StoragePaths(characters.storage).dataset(MIO) / "manifest.json")
    assert len(manifest["approved"]) == 12 and manifest["batches_this_run"] == 1 and manifest["learner"]
    out = capsys.readouterr().out
    assert "dataset_replenishment is on" in out and "dataset_replenishment is off" in out
    assert f"{MIO}  12/12 approved" in out and "target holds: target reached: 12/12 approved" in out
    assert "last batch 2 at" in out
