"""The shared verdict schema and the SPEC decision rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from anime_pipeline.config.schema import ReviewThresholds
from anime_pipeline.review.verdict import Verdict, decide

T = ReviewThresholds()


@pytest.mark.parametrize(("score", "solo", "is_human", "expected"), [
    (0.39, True, True, "reject"),
    (0.10, True, False, "reject"),
    (0.40, True, True, "human_review"),
    (0.79, True, True, "human_review"),
    (0.80, True, True, "approve"),
    (0.95, True, True, "approve"),
    (0.95, False, True, "human_review"),
    (0.95, True, False, "human_review"),  # non-human characters never auto-approve
    (1.00, True, False, "human_review"),
    (0.60, True, False, "human_review"),
])
def test_decide_table(score, solo, is_human, expected):
    decision, reason = decide(score, solo, is_human, T)
    assert decision == expected
    assert reason


def test_the_non_human_reason_says_why():
    _, reason = decide(0.95, True, False, T)
    assert "non-human" in reason and "never auto-approve" in reason


def test_decide_uses_the_configured_thresholds():
    strict = ReviewThresholds(auto_reject_below=0.5, auto_approve_at=0.9)
    assert decide(0.45, True, True, strict)[0] == "reject"
    assert decide(0.85, True, True, strict)[0] == "human_review"


def verdict_payload(**changes) -> dict:
    payload = dict(character_match=0.9, clarity=0.7, training_value=8.0, solo=True, completeness=1.0,
                   feature_checklist={"short bob": True}, species_check=None, score=0.85, decision="approve",
                   reasons=["ok"], reviewer="heuristic (embedded, weight-free)")
    return payload | changes


def test_verdict_round_trips_and_forbids_unknown_keys():
    verdict = Verdict(**verdict_payload())
    assert Verdict.model_validate_json(verdict.model_dump_json()) == verdict
    with pytest.raises(ValidationError):
        Verdict(**verdict_payload(mood="happy"))


@pytest.mark.parametrize("bad", [dict(score=1.2), dict(training_value=11), dict(clarity=-0.1), dict(decision="maybe")])
def test_verdict_bounds(bad):
    with pytest.raises(ValidationError):
        Verdict(**verdict_payload(**bad))
