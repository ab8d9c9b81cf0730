"""Phase gates (SPEC §3): a show's phase opens when at least its `phase_pass_rate` (80 % by default) of
the previous phase's evaluated entities pass every blocking gate of the judged artifacts.

Phase 1 (stills) judges each character's approved_dataset and character_lora, Phase 2 (animation)
each shot_clip, Phase 3 (full video) each scene_video. Each show has its own phase gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from anime_pipeline.production.step import Level


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    level: Level  # which entities are judged
    artifacts: tuple[str, ...]  # whose blocking gates decide an entity
    opens: str  # the artifact the phase lets run


PHASES = (
    Phase("phase1_stills", "Phase 1 — stills", "character", ("approved_dataset", "character_lora"), "shot_clip"),
    Phase("phase2_animation", "Phase 2 — animation", "shot", ("shot_clip",), "scene_video"),
    Phase("phase3_video", "Phase 3 — full video", "scene", ("scene_video",), "episode_video"),
)
PHASE_BEFORE = {p.opens: p for p in PHASES}


@dataclass(frozen=True)
class PhaseVerdict:
    """One show's verdict on one phase."""

    pass_rate: float
    threshold: float
    evaluated: int
    not_evaluated: int
    blocking: list[str]  # evaluated entities that fail a gate

    @property
    def open(self) -> bool:
        return self.evaluated > 0 and self.pass_rate >= self.threshold

    def describe(self) -> str:
        if not self.evaluated:
            return f"closed (none of {self.not_evaluated} {'entity' if self.not_evaluated == 1 else 'entities'} evaluated)"
        return (f"{'open' if self.open else 'closed'} ({self.pass_rate:.0%} pass, needs {self.threshold:.0%}; "
                f"blocking: {', '.join(self.blocking) or 'none'})")


def judge(verdicts: Mapping[str, bool | None], threshold: float) -> PhaseVerdict:
    """The phase's verdict from each entity's: True (every gate passed), False, None (never evaluated)."""
    evaluated = {k: v for k, v in verdicts.items() if v is not None}
    blocking = sorted(k for k, v in evaluated.items() if not v)
    rate = (len(evaluated) - len(blocking)) / len(evaluated) if evaluated else 0.0
    return PhaseVerdict(round(rate, 4), threshold, len(evaluated), len(verdicts) - len(evaluated), blocking)
