"""Phase gates (SPEC §3): a phase opens when ≥ 80 % of the previous phase's evaluated partitions pass.

Phase 1 (stills) is judged on each character's approved_dataset and character_lora gates, Phase 2
(animation) on each shot_clip's, Phase 3 (full video) on each scene_video's. Each gate is an asset
with a blocking check; the next phase's assets refuse to run while it is closed, and say why.
"""

from dataclasses import dataclass

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
    "scene_video": ("duration_exact", "audio_present", "scene_continuity", "subject_consistency"),
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


def partition_verdict(instance: dg.DagsterInstance, assets: tuple[str, ...], key: str) -> bool | None:
    """True when every blocking check of these assets last passed for the partition, None if never evaluated."""
    check_keys = [dg.AssetCheckKey(dg.AssetKey(a), name) for a in assets for name in GATES[a]]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        check_keys, partition_filter=PartitionKeyFilter(key=key))
    evaluations = [r.event.dagster_event.event_specific_data for r in latest.values() if r.event is not None]
    if not evaluations:
        return None
    return len(evaluations) == len(check_keys) and all(e.passed for e in evaluations)


def _keys(project, level: str) -> list[str]:
    return list({"characters": project.characters, "shots": project.shots, "scenes": project.scenes}[level])


def build() -> list[dg.AssetsDefinition]:
    return [_phase_asset(phase) for phase in PHASES]


def _phase_asset(phase: Phase) -> dg.AssetsDefinition:
    @dg.asset(name=phase.name, group_name=GROUP, deps=list(phase.assets), code_version="1", kinds={"gate"},
              check_specs=[dg.AssetCheckSpec(CHECK, asset=phase.name, blocking=True,
                                             description=f"≥ phase_pass_rate of {phase.level} pass; opens {phase.opens}")],
              description=f"{phase.title}: pass rate of the {phase.level}' gates; opens {phase.opens}.")
    def _gate(context: dg.AssetExecutionContext, project: ProjectResource):
        loaded = project.load()
        verdicts = {k: partition_verdict(context.instance, phase.assets, k) for k in _keys(loaded, phase.level)}
        evaluated = {k: v for k, v in verdicts.items() if v is not None}
        blocking = sorted(k for k, v in evaluated.items() if not v)
        rate = (len(evaluated) - len(blocking)) / len(evaluated) if evaluated else 0.0
        threshold = max(cfg.quality.phase_pass_rate for cfg in loaded.shows.values())
        context.log.info(f"{phase.title}: {rate:.0%} of {len(evaluated)} evaluated {phase.level} pass")
        yield dg.MaterializeResult(metadata={
            "pass_rate": round(rate, 4), "evaluated": len(evaluated), "passed": len(evaluated) - len(blocking),
            "not_evaluated": len(verdicts) - len(evaluated), "blocking": dg.MetadataValue.json(blocking)})
        yield gate(CHECK, bool(evaluated) and rate >= threshold, round(rate, 4), threshold,
                   f"latest blocking checks of {', '.join(phase.assets)}", blocking=", ".join(blocking) or "none")

    return _gate


def require_open(context: dg.AssetExecutionContext, asset: str) -> None:
    """Raise unless the phase before `asset` is open (its gate's latest check passed)."""
    phase = PHASE_BEFORE[asset]
    key = dg.AssetCheckKey(dg.AssetKey(phase.name), CHECK)
    record = context.instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
    evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
    if evaluation is None or not evaluation.passed:
        state = "has not been evaluated" if evaluation is None else \
            f"is closed ({evaluation.metadata['value'].value:.0%} pass; blocking: {evaluation.metadata['blocking'].value})"
        raise dg.Failure(f"{phase.title} {state}: {asset} waits until it opens. Fix the blocking partitions, "
                         f"then materialize {phase.name}.")
