"""The review verdict shared by every reviewer (the weight-free heuristic in `review.heuristic`,
the Ollama vision model in `review.vision`), and the one decision rule that turns a score into
approve / reject / human_review."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from anime_pipeline.config.schema import ReviewThresholds

Decision = Literal["approve", "reject", "human_review"]


class Verdict(BaseModel):
    """One reviewed image. Unknown keys are errors: a vision LLM answers with this JSON schema."""

    model_config = ConfigDict(extra="forbid")

    character_match: float = Field(ge=0, le=1)
    clarity: float = Field(ge=0, le=1)
    training_value: float = Field(ge=0, le=10)
    solo: bool
    completeness: float = Field(ge=0, le=1)
    feature_checklist: dict[str, bool]
    species_check: bool | None = Field(description="None for human characters")
    score: float = Field(ge=0, le=1, description="overall")
    decision: Decision
    reasons: list[str]
    reviewer: str


def decide(score: float, solo: bool, is_human: bool, thresholds: ReviewThresholds) -> tuple[Decision, str]:
    """score < auto_reject_below → reject; non-human characters never auto-approve
    (→ human_review, a person checks the species); human, solo and score ≥ auto_approve_at →
    approve; everything else → human_review."""
    if score < thresholds.auto_reject_below:
        return "reject", f"score {score:.2f} < auto-reject threshold {thresholds.auto_reject_below:.2f}"
    if not is_human:
        return "human_review", f"score {score:.2f}, but non-human characters never auto-approve: a person checks the species"
    if score >= thresholds.auto_approve_at and solo:
        return "approve", f"score {score:.2f} ≥ auto-approve threshold {thresholds.auto_approve_at:.2f} and solo"
    if not solo:
        return "human_review", f"score {score:.2f}, but not solo (auto-approval needs exactly one face)"
    return "human_review", (f"score {score:.2f} between auto-reject {thresholds.auto_reject_below:.2f} "
                            f"and auto-approve {thresholds.auto_approve_at:.2f}")
