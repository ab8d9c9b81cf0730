"""Phase gates (SPEC §3), one set per show: `<show>/phase1_stills`, `phase2_animation`, `phase3_video`.

Each judges its show's entities from their latest blocking-check results (`production.phases.judge`);
its own blocking check opens the next phase's assets of that show, which depend on it, and those
assets refuse to run in a later run while it is closed (`require_open`). Its data version is the
verdict, so re-judging an unchanged verdict leaves everything downstream fresh.
"""

import hashlib
from collections.abc import Iterator

import dagster as dg

from anime_pipeline import dagster_compat
from anime_pipeline.assets.keys import ROLE_TAG, SHOW_TAG, asset_key
from anime_pipeline.config.project import Project, dagster_name
from anime_pipeline.production import BY_ARTIFACT, refs
from anime_pipeline.production.phases import PHASES, Phase, judge

PHASE_CHECK = "opens_next_phase"
# A phase gate re-evaluates whenever one of its entities changes, even while others are missing:
# its pass rate exists to tolerate those.
GATE_AUTOMATION = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing()).with_label(
    "re-evaluate when the phase's entities change")


def phase_key(show: str, phase: Phase) -> dg.AssetKey:
    return dg.AssetKey([show, phase.name])


def phase_check_key(show: str, phase: Phase) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(phase_key(show, phase), PHASE_CHECK)


def judged_entities(project: Project, show: str, phase: Phase) -> list[str]:
    return [key for key, ref in refs(project, phase.level).items() if ref.config.show.slug == show]


def entity_verdict(instance: dg.DagsterInstance, entity: str, phase: Phase) -> bool | None:
    """True when every blocking check of the phase's artifacts last passed for the entity; None if never evaluated."""
    keys = [dg.AssetCheckKey(asset_key(a, entity), name) for a in phase.artifacts for name in BY_ARTIFACT[a].gates.names]
    evaluations = [e for e in dagster_compat.latest_check_evaluations(instance, keys).values() if e is not None]
    if not evaluations:
        return None
    return len(evaluations) == len(keys) and all(e.passed for e in evaluations)


def require_open(instance: dg.DagsterInstance, phase: Phase, show: str) -> None:
    """Raise unless the show's phase before this asset is open (per its gate's latest check)."""
    key = phase_check_key(show, phase)
    evaluation = dagster_compat.latest_check_evaluations(instance, [key])[key]
    if evaluation is None:
        raise dg.Failure(f"{phase.title} has not been evaluated for {show}: {phase.opens} waits until it opens. "
                         f"Materialize {key.asset_key.to_user_string()}.")
    if not evaluation.passed:
        described = evaluation.metadata.get("verdict")
        raise dg.Failure(f"{phase.title} is {described.value if described else 'closed'} for {show}: {phase.opens} "
                         f"waits until it opens. Fix the blocking entities, then materialize "
                         f"{key.asset_key.to_user_string()}.")


def build_phase_gates(project: Project) -> list[dg.AssetsDefinition]:
    return [build_phase_asset(project, show, phase) for show in project.shows for phase in PHASES]


def build_phase_asset(project: Project, show: str, phase: Phase) -> dg.AssetsDefinition:
    entities = judged_entities(project, show, phase)
    threshold = project.shows[show].quality.phase_pass_rate
    key = phase_key(show, phase)
    version_source = f"{threshold}:{','.join(entities)}".encode()

    @dg.asset(key=key, deps=[asset_key(a, e) for e in entities for a in phase.artifacts],
              code_version=f"1-{hashlib.sha256(version_source).hexdigest()[:12]}", group_name=f"{dagster_name(show)}__gates",
              tags={SHOW_TAG: show, ROLE_TAG: "phase_gate"}, kinds={"gate"}, automation_condition=GATE_AUTOMATION,
              check_specs=[dg.AssetCheckSpec(PHASE_CHECK, asset=key, blocking=True, description=(
                  f"At least quality.phase_pass_rate of {show}'s evaluated {phase.level}s pass every gate of "
                  f"{', '.join(phase.artifacts)}; opens {phase.opens}."))],
              description=f"{phase.title} for {show}: the pass rate of its {phase.level}s' gates; opens {phase.opens}.")
    def _gate(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        verdicts = {entity: entity_verdict(context.instance, entity, phase) for entity in entities}
        verdict = judge(verdicts, threshold)
        context.log.info(f"{phase.title} for {show}: {verdict.describe()}")
        yield dg.MaterializeResult(
            metadata={"pass_rate": verdict.pass_rate, "threshold": threshold, "evaluated": verdict.evaluated,
                      "not_evaluated": verdict.not_evaluated, "blocking": dg.MetadataValue.json(verdict.blocking),
                      "verdict": verdict.describe()},
            # the verdict, not the moment: re-judging an unchanged verdict leaves what waited on it fresh
            data_version=dg.DataVersion("open" if verdict.open else "closed"))
        yield dg.AssetCheckResult(check_name=PHASE_CHECK, passed=verdict.open, severity=dg.AssetCheckSeverity.ERROR,
                                  metadata={"value": verdict.pass_rate, "threshold": threshold,
                                            "direction": "at_least", "backend": "latest blocking checks",
                                            "verdict": verdict.describe(),
                                            "blocking": ", ".join(verdict.blocking) or "none"})

    return _gate
