"""Run what episodes need, entity by entity, in dependency order, with one progress line per Dagster run.

Used by `anime-pipeline demo` and `anime-pipeline backfill`. Each character, shot, scene and
episode is its own run of its show's job (so the UI shows every run, materialization and
check), then each phase gate of the show; a run stops at its first failed blocking gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.assets.phases import phase_key
from anime_pipeline.config import Project
from anime_pipeline.definitions import characters_job_name, episode_job_name
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production import CHARACTER_ARTIFACTS
from anime_pipeline.production.candidates import DecisionLog, dataset_state
from anime_pipeline.production.phases import PHASES
from anime_pipeline.recovery import owner_tags

AFTER_REVIEW = ("approved_dataset", "character_lora")  # what a human decision changes
# Full logs go to the instance (visible in the UI); the terminal shows one line per run.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class StepOutcome:
    label: str
    success: bool
    seconds: float
    failed_checks: list[str] = field(default_factory=list)
    error: str = ""
    run_id: str = ""


@dataclass(frozen=True)
class Stage:
    """One run: a label for the progress line, the job it belongs to, the assets it materializes."""

    label: str
    job: str
    assets: tuple[dg.AssetKey, ...]
    is_phase_gate: bool = False


def plan_for(project: Project, episode_keys: Iterable[str] | None = None) -> list[Stage]:
    """Everything the given episodes (default: all) need, in the order it must be built."""
    wanted = list(episode_keys) if episode_keys is not None else list(project.episodes)
    unknown = [k for k in wanted if k not in project.episodes]
    if unknown:
        raise KeyError(f"unknown episode(s) {unknown}; known: {sorted(project.episodes)}")
    episodes = [project.episodes[k] for k in wanted]
    shots = [k for k, ref in project.shots.items() if f"{ref.config.show.slug}/{ref.episode.slug}" in wanted]
    characters = sorted({f"{project.shots[k].config.show.slug}/{c}" for k in shots for c in project.shots[k].shot.characters},
                        key=list(project.characters).index)
    scenes = [k for k in project.scenes if any(k == project.shots[s].scene_key for s in shots)]
    shows = sorted({ref.config.show.slug for ref in episodes})
    job = {ref.config.show.slug: episode_job_name(ref) for ref in episodes}  # any of the show's episode jobs

    def show_of(key: str) -> str:
        return key.split("/")[0]

    stages = [Stage(f"character {key}", characters_job_name(show_of(key)),
                    tuple(asset_key(a, key) for a in CHARACTER_ARTIFACTS)) for key in characters]
    for phase, keys, artifact in zip(PHASES, (shots, scenes, [r.key for r in episodes]),
                                     ("shot_clip", "scene_video", "episode_video"), strict=True):
        stages += [Stage(f"{phase.name} {show}", job[show], (phase_key(show, phase),), is_phase_gate=True)
                   for show in shows]
        for key in keys:
            extra = (asset_key("jellyfin_publish", key),) if artifact == "episode_video" else ()
            episode_job = episode_job_name(project.episodes["/".join(key.split("/")[:2])])
            stages.append(Stage(f"{artifact.removesuffix('_clip').removesuffix('_video')} {key}", episode_job,
                                (asset_key(artifact, key), *extra)))
    return stages


class Runner:
    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, paths: StoragePaths,
                 report: Callable[[str], None] = print):
        self.defs, self.instance, self.paths, self.report = defs, instance, paths, report
        self.outcomes: list[StepOutcome] = []

    def run(self, stage: Stage, position: str = "", force: bool = False) -> StepOutcome:
        job = self.defs.resolve_job_def(stage.job)
        start = time.perf_counter()
        config: dict = dict(QUIET_CONSOLE)
        if force:
            config["ops"] = {k.to_python_identifier(): {"config": {"force": True}} for k in stage.assets}
        result = job.execute_in_process(instance=self.instance, raise_on_error=False, asset_selection=list(stage.assets),
                                        run_config=config, tags=owner_tags())
        failed = [f"{e.asset_key.to_user_string()}.{e.check_name}"
                  for e in result.get_asset_check_evaluations() if not e.passed]
        error = next((e.step_failure_data.error.message.strip().splitlines()[0] for e in result.all_events
                      if e.is_step_failure and e.step_failure_data and e.step_failure_data.error), "")
        outcome = StepOutcome(stage.label, result.success, time.perf_counter() - start, failed, error, result.run_id)
        self.outcomes.append(outcome)
        detail = f"  failed gates: {', '.join(failed)}" if failed else (f"  {error}" if error and not outcome.success else "")
        self.report(f"{position}{stage.label:<44} {'ok' if outcome.success else 'FAILED'} ({outcome.seconds:.1f} s){detail}")
        return outcome

    def run_plan(self, stages: list[Stage], project: Project, approve_as: str | None = None) -> bool:
        """Run every stage; stop at the first failure. `approve_as` decides pending reviews (the demo's
        stand-in for a human reviewer) and re-runs the character's dataset and adapter."""
        total = len(stages)
        for index, stage in enumerate(stages, 1):
            outcome = self.run(stage, f"[{index}/{total}] ")
            character = stage.assets[0].path[:-1] if stage.label.startswith("character ") else None
            if not outcome.success and approve_as and character and self._approve_pending("/".join(character),
                                                                                          project, approve_as):
                retry = Stage(f"{stage.label} (after review)", stage.job,
                              tuple(k for k in stage.assets if k.path[-1] in AFTER_REVIEW))
                outcome = self.run(retry, f"[{index}/{total}] ")
            if not outcome.success:
                return False
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
