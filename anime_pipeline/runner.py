"""Run the production jobs partition by partition, in dependency order, with progress lines.

Used by `anime-pipeline demo` and `anime-pipeline backfill`. Each partition is its own
Dagster run on the given instance, so the UI shows every run, materialization and check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg

from anime_pipeline.assets.phases import PHASES, show_verdicts
from anime_pipeline.config import Project
from anime_pipeline.production.dataset import DecisionLog, dataset_state
from anime_pipeline.paths import StoragePaths


# Full logs go to the instance (visible in the UI); the terminal shows one line per run.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class StepOutcome:
    job: str
    partition: str
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)
    error: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Plan:
    characters: list[str]
    shots: list[str]
    scenes: list[str]
    episodes: list[str]
    shows: list[str]

    @property
    def total(self) -> int:
        phase_gates = 3
        return len(self.characters) + len(self.shots) + len(self.scenes) + len(self.episodes) + phase_gates


def plan_for(project: Project, episode_keys: Iterable[str] | None = None) -> Plan:
    """Everything the given episodes (default: all) need, in the order it must be built."""
    wanted = list(episode_keys) if episode_keys is not None else list(project.episodes)
    unknown = [k for k in wanted if k not in project.episodes]
    if unknown:
        raise KeyError(f"unknown episode(s) {unknown}; known: {sorted(project.episodes)}")
    shots = [k for k, ref in project.shots.items() if f"{ref.config.show.slug}/{ref.episode.slug}" in wanted]
    chars = sorted({f"{project.shots[k].config.show.slug}/{c}" for k in shots for c in project.shots[k].shot.characters},
                   key=list(project.characters).index)
    scenes = [k for k in project.scenes if any(k == project.shots[s].scene_key for s in shots)]
    shows = sorted({project.episodes[k].config.show.slug for k in wanted})
    return Plan(chars, shots, scenes, wanted, shows)


class Runner:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, paths: StoragePaths,
                 report: Callable[[str], None] = print):
        self.defs, self.instance, self.paths, self.report = defs, instance, paths, report
        self.outcomes: list[StepOutcome] = []
        self._done = 0

    def run(self, job_name: str, partition: str | None, total: int,
            asset_selection: list[str] | None = None) -> StepOutcome:
        job = self.defs.resolve_job_def(job_name)
        start = time.perf_counter()
        selection = [dg.AssetKey(a) for a in asset_selection] if asset_selection else None
        result = job.execute_in_process(partition_key=partition, instance=self.instance, raise_on_error=False,
                                        asset_selection=selection, run_config=QUIET_CONSOLE)
        failed = [f"{e.asset_key.to_user_string()}.{e.check_name}"
                  for e in result.get_asset_check_evaluations() if not e.passed]
        error = ""
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
                error = event.step_failure_data.error.message.strip().splitlines()[0]
                break
        outcome = StepOutcome(job_name, partition or "(all)", result.success, time.perf_counter() - start, failed, error,
                              result.run_id)
        self.outcomes.append(outcome)
        self._done += 1
        status = "ok" if outcome.success else "FAILED"
        detail = f"  failed gates: {', '.join(failed)}" if failed else (f"  {error}" if error and not outcome.success else "")
        self.report(f"[{self._done}/{total}] {job_name.removesuffix('_job'):<16} {outcome.partition:<32} {status} "
                    f"({outcome.seconds:.1f} s){detail}")
        return outcome

    def run_plan(self, plan: Plan, project: Project, approve_as: str | None = None) -> bool:
        """Run the plan; stop at the first failure. `approve_as` decides pending reviews (the demo's stand-in human)."""
        total = plan.total
        for key in plan.characters:
            outcome = self.run("character_job", key, total)
            if not outcome.success and approve_as and self._approve_pending(key, project, approve_as):
                total += 1
                outcome = self.run("character_job", key, total, ["approved_dataset", "character_lora"])
            if not outcome.success:
                return False
        stages = (("phase1_stills_job", [None]), ("shot_job", plan.shots), ("phase2_animation_job", [None]),
                  ("scene_job", plan.scenes), ("phase3_video_job", [None]), ("episode_job", plan.episodes))
        for job, keys in stages:
            for key in keys:
                if not self.run(job, key, total).success and not self.phase_open_for(job, plan.shows):
                    return False
        return True

    def phase_open_for(self, job: str, shows: list[str]) -> bool:
        """For a phase gate's job: whether the gate is open for every show of the plan (its check
        is project-wide, so another show's failure fails the job without closing these)."""
        phase = next((p for p in PHASES if f"{p.name}_job" == job), None)
        verdicts = show_verdicts(self.instance, phase) if phase else None
        if not verdicts or not all(verdicts.get(show, {}).get("open") for show in shows):
            return False
        self.report(f"      {phase.title} is open for {', '.join(shows)}; another show blocks it, not these")
        return True

    def _approve_pending(self, key: str, project: Project, decider: str) -> bool:
        log = DecisionLog(self.paths.decisions_log(key))
        pending = dataset_state(self.paths.candidates(key), log).pending
        if not pending:
            return False
        character = project.characters[key].character
        self.report(f"      {character.name} ({character.appearance.species}) is not auto-approved: "
                    f"{len(pending)} candidates await a human decision; the demo approves them as {decider!r} "
                    f"(for your own show: `anime-pipeline review list {key}`)")
        for candidate in pending:
            log.record(candidate.id, "approve", decider, "demo run: stands in for a human reviewer")
        return True
