"""Phase gates (SPEC §3): a show's phase opens when ≥ its `phase_pass_rate` (80 % by default) of
the previous phase's evaluated partitions of that show pass.

Phase 1 (stills) is judged on each character's approved_dataset and character_lora gates, Phase 2
(animation) on each shot_clip's, Phase 3 (full video) on each scene_video's. Each gate is one
asset; its metadata has each show's pass rate and blocking partitions. The next phase's assets
refuse to run while the phase is closed for *their* show, and say why, so in runs one show's
failures never hold back another show. The gate's blocking check, which declarative automation
reads, is project-wide: it passes when some show is open and no show with evaluated partitions
is closed (a show not yet started does not hold the others back; one that failed does).
"""

from dataclasses import asdict, dataclass

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter

from anime_pipeline.assets.common import gate
from anime_pipeline.resources import ProjectResource

GROUP = "phase_gates"
# Every production asset's blocking checks, by name (the phase gates and `status` read them back).
GATES = {
    "character_reference": ("faces_found", "sheet_complete"),
    "character_embedding": ("references_agree",),
    "approved_dataset": ("enough_approved", "identity", "no_near_duplicates", "aesthetic", "style_adherence"),
    "character_lora": ("loss_fell", "keeps_identity"),
    "shot_clip": ("identity", "temporal_stability", "motion_smoothness", "not_a_still", "temporal_flickering"),
    "scene_video": ("duration_exact", "audio_present", "scene_continuity", "subject_consistency", "cast_identity"),
    "episode_video": ("decodes", "duration"),
    "jellyfin_publish": ("file_at_expected_path",),
}
CHECK = "opens_next_phase"


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    level: str  # which partitions are judged
    assets: tuple[str, ...]  # whose blocking checks decide a partition
    opens: str  # what the phase lets run


PHASES = (
    Phase("phase1_stills", "Phase 1 — stills", "characters", ("approved_dataset", "character_lora"), "shot_clip"),
    Phase("phase2_animation", "Phase 2 — animation", "shots", ("shot_clip",), "scene_video"),
    Phase("phase3_video", "Phase 3 — full video", "scenes", ("scene_video",), "episode_video"),
)
PHASE_BEFORE = {p.opens: p for p in PHASES}
# Declarative automation of the production assets: eager (a partition runs when it is missing or
# an upstream partition changed), but only once every upstream blocking check passed, so a failed
# gate stops automation exactly as it stops a run. A phase gate's own re-evaluation requests
# nothing: what waited for it is requested when its check passes.
GATED = (dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(*(p.name for p in PHASES)))
         & dg.AutomationCondition.all_deps_blocking_checks_passed()).with_label("eager once upstream gates pass")
# A phase gate re-evaluates whenever one of its partitions changes, even while others are missing:
# the pass rate exists to tolerate those.
GATE_AUTOMATION = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).with_label(
    "re-evaluate when the phase's partitions change")


def partition_verdict(instance: dg.DagsterInstance, assets: tuple[str, ...], key: str) -> bool | None:
    """True when every blocking check of these assets last passed for the partition, None if never evaluated."""
    check_keys = [dg.AssetCheckKey(dg.AssetKey(a), name) for a in assets for name in GATES[a]]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=key))
    evaluations = [e for e in map(_evaluation, latest.values()) if e is not None]
    if not evaluations:
        return None
    return len(evaluations) == len(check_keys) and all(e.passed for e in evaluations)


def _evaluation(record) -> dg.AssetCheckEvaluation | None:
    """The evaluation a check execution record holds, None while it is only planned (running or lost)."""
    data = record.event.dagster_event.event_specific_data if record is not None and record.event else None
    return data if isinstance(data, dg.AssetCheckEvaluation) else None


@dataclass(frozen=True)
class ShowPhase:
    """One show's verdict on one phase."""

    pass_rate: float
    threshold: float
    evaluated: int
    not_evaluated: int
    blocking: list[str]

    @property
    def open(self) -> bool:
        return self.evaluated > 0 and self.pass_rate >= self.threshold

    def describe(self) -> str:
        if not self.evaluated:
            return f"closed (none of {self.not_evaluated} {'partition' if self.not_evaluated == 1 else 'partitions'} evaluated)"
        return (f"{'open' if self.open else 'closed'} ({self.pass_rate:.0%} pass, needs {self.threshold:.0%}; "
                f"blocking: {', '.join(self.blocking) or 'none'})")


def judge(instance: dg.DagsterInstance, project, phase: Phase) -> dict[str, ShowPhase]:
    """Each show's verdict on `phase` from the latest blocking-check results of its partitions."""
    refs = {"characters": project.characters, "shots": project.shots, "scenes": project.scenes}[phase.level]
    verdicts: dict[str, dict[str, bool | None]] = {slug: {} for slug in project.shows}
    for key, ref in refs.items():
        verdicts[ref.config.show.slug][key] = partition_verdict(instance, phase.assets, key)
    judged = {}
    for show, by_key in verdicts.items():
        evaluated = {k: v for k, v in by_key.items() if v is not None}
        blocking = sorted(k for k, v in evaluated.items() if not v)
        rate = (len(evaluated) - len(blocking)) / len(evaluated) if evaluated else 0.0
        judged[show] = ShowPhase(round(rate, 4), project.shows[show].quality.phase_pass_rate, len(evaluated),
                                 len(by_key) - len(evaluated), blocking)
    return judged


def build() -> list[dg.AssetsDefinition]:
    return [_phase_asset(phase) for phase in PHASES]


def _phase_asset(phase: Phase) -> dg.AssetsDefinition:
    @dg.asset(name=phase.name, group_name=GROUP, deps=list(phase.assets), code_version="1", kinds={"gate"},
              automation_condition=GATE_AUTOMATION,
              check_specs=[dg.AssetCheckSpec(CHECK, asset=phase.name, blocking=True,
                                             description=f"Some show open, none with evaluated {phase.level} closed "
                                                         f"(each show opens its own {phase.opens})")],
              description=f"{phase.title}: each show's pass rate of the {phase.level}' gates; opens {phase.opens}.")
    def _gate(context: dg.AssetExecutionContext, project: ProjectResource):
        shows = judge(context.instance, project.load(), phase)
        for show, verdict in shows.items():
            context.log.info(f"{phase.title} for {show}: {verdict.describe()}")
        closed = sorted(show for show, verdict in shows.items() if not verdict.open)
        failed = [show for show in closed if shows[show].evaluated]  # evaluated and below its threshold
        # the check's value: the worst show that counts for it (evaluated ones, while any are)
        counted = [v for v in shows.values() if v.evaluated] or list(shows.values())
        worst = min(counted, key=lambda v: (v.open, v.pass_rate - v.threshold), default=None)
        blocking = sorted(key for verdict in shows.values() for key in verdict.blocking)
        table = dg.MetadataValue.json({show: {**asdict(v), "open": v.open} for show, v in shows.items()})
        yield dg.MaterializeResult(metadata={
            "shows": table, "open_shows": len(shows) - len(closed), "closed_shows": dg.MetadataValue.json(closed),
            "pass_rate": worst.pass_rate if worst else 0.0, "blocking": dg.MetadataValue.json(blocking)})
        yield gate(CHECK, len(closed) < len(shows) and not failed, worst.pass_rate if worst else 0.0,
                   worst.threshold if worst else 0.0, f"latest blocking checks of {', '.join(phase.assets)}",
                   shows=table, closed=", ".join(closed) or "none", blocking=", ".join(blocking) or "none")

    return _gate


def show_verdicts(instance: dg.DagsterInstance, phase: Phase) -> dict[str, dict] | None:
    """Per show, the verdict (ShowPhase fields and "open") of the phase gate's latest completed
    evaluation; None when it has none (never run, running, or written before gates were per show)."""
    key = dg.AssetCheckKey(dg.AssetKey(phase.name), CHECK)
    evaluation = _evaluation(instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key))
    shows = evaluation.metadata.get("shows") if evaluation is not None else None
    return shows.value if shows is not None else None


def require_open(context: dg.AssetExecutionContext, asset: str, show: str) -> None:
    """Raise unless the phase before `asset` is open for `show` (per its gate's latest check)."""
    phase = PHASE_BEFORE[asset]
    verdict = (show_verdicts(context.instance, phase) or {}).get(show)
    if verdict is None:
        raise dg.Failure(f"{phase.title} has not been evaluated for {show}: {asset} waits until it opens. "
                         f"Materialize {phase.name}.")
    if not verdict["open"]:
        state = ShowPhase(**{k: v for k, v in verdict.items() if k != "open"}).describe()
        raise dg.Failure(f"{phase.title} is {state} for {show}: {asset} waits until it opens. "
                         f"Fix the blocking partitions, then materialize {phase.name}.")
