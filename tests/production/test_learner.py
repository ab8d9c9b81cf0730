"""The dataset learner: reasons mapped to the seven causes, a fix per cause, variations least represented
among the approved first, no failed setting or seed used again — and, measured against the deterministic
backend, the approval rate of a character whose renders are too dark rising across batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.config import Project
from anime_pipeline.config.project import CharacterRef
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.batches import batch_records, run_batch
from anime_pipeline.production.candidates import (
    DecisionLog,
    generate_batch,
    list_candidates,
)
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.learner import (
    CAUSES,
    Outcome,
    Steering,
    diagnose,
    plan_batch,
)
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer

ROOT = Path(__file__).resolve().parents[2]
SHOW = Project.load(ROOT / "project_configs").shows["lantern-post"]
MIO, STYLE = SHOW.character("mio"), SHOW.show.style
BASE = Steering.from_style(STYLE)

# Reasons as the reviewers word them (review/heuristic.py, review/vision.py) and as a person might.
HEURISTIC_DARK = ["character match 0.28 (palette signature vs anchor)",
                  "clarity 0.35 (sharpness 0.86, exposure 0.26, contrast 0.16)",
                  "too dark: the face's skin colour reads -1.00 stops from the design (mean luminance 0.13)",
                  "low contrast: 0.16 < 0.2", "completeness 1/5 key colours present; missing hair; missing skin",
                  "solo", "not checkable weight-free (entered as passed, left to a person): no long hair, "
                          "no missing satchel", "score 0.26 < auto-reject threshold 0.40"]
BY_CAUSE = {
    "quality": ["ollama vision (gemma3): character match 0.90, clarity 0.70, completeness 0.90, training value 3.0/10",
                "model: visible artifacts around the hands", "score 0.35 < auto-reject threshold 0.40"],
    "resolution": ["model: low resolution, pixelated edges"],
    "blur": ["blurry: sharpness 0.31 < 0.5"],
    "brightness": ["too bright: mean luminance 0.91 (exposure 0.18 < 0.4)"],
    "contrast": ["low contrast: 0.12 < 0.2"],
    "appearance": ["failed check: no green eyes", "species check failed (star-fox spirit: ...)"],
    "solo": ["not solo: 2 faces found"],
}


def outcome(i: int, decision: str, reasons=(), steering: Steering = BASE, **variation: str) -> Outcome:
    fields = {"outfit": "courier jacket", "expression": "determined", "pose": "standing", "framing": "full_body"}
    return Outcome(id=f"c{i:04d}", seed=50_000 + i, steering=steering, decision=decision, reasons=tuple(reasons),
                   **{**fields, **variation})


def test_reasons_map_onto_the_seven_causes():
    for cause, reasons in BY_CAUSE.items():
        assert cause in diagnose(reasons), (cause, diagnose(reasons))
    assert set(BY_CAUSE) == set(CAUSES)
    assert diagnose(["score 0.31 < auto-reject threshold 0.40"]) == {"quality": ("rejected without a named cause",)}
    # a person's own words count too; a passed check is no cause
    assert set(diagnose(["way too dark, and she has two tails here"])) >= {"brightness"}
    assert set(diagnose(["species check passed (star-fox spirit; matches: True, looks human: False): fur",
                         "not solo (the model sees more than one character)"])) == {"solo"}


def test_a_wrong_exposure_s_symptoms_are_not_fixed_as_causes_of_their_own():
    assert set(diagnose(HEURISTIC_DARK)) == {"brightness"}
    assert "appearance" in diagnose([*HEURISTIC_DARK, "failed check: no green eyes"])  # a real design miss stays


@pytest.mark.parametrize("cause", CAUSES)
def test_each_cause_has_a_fix_that_changes_the_next_batch(cause):
    history = [outcome(i, "reject", BY_CAUSE[cause]) for i in range(3)]
    plan = plan_batch(MIO, STYLE, history, batch=2, batch_size=3, first_index=3)
    fix = next(f for f in plan.fixes if f.cause == cause)
    assert fix.candidates == ("c0000", "c0001", "c0002") and fix.change
    changed = {"quality": plan.steering.steps > BASE.steps, "blur": plan.steering.steps > BASE.steps,
               "resolution": plan.steering.scale > BASE.scale, "brightness": plan.steering.exposure < 0,
               "contrast": plan.steering.contrast > 1, "appearance": plan.steering.cfg > BASE.cfg,
               "solo": {c.framing for c in plan.candidates} == {"portrait"}}
    assert changed[cause], plan.summary()


def test_the_reviewer_s_measured_stops_are_undone_in_one_batch():
    history = [outcome(i, "reject", HEURISTIC_DARK) for i in range(3)]
    plan = plan_batch(MIO, STYLE, history, batch=2, batch_size=3, first_index=3)
    assert plan.steering.exposure == 1.0 and [f.cause for f in plan.fixes] == ["brightness"]
    assert "well lit" in plan.steering.prompt_additions and "underexposed" in plan.steering.negative_additions


def test_an_overshot_exposure_is_halved_back():
    history = [outcome(0, "reject", ["too dark, underexposed"]),
               outcome(1, "reject", ["too bright, overexposed"], steering=BASE.model_copy(update={"exposure": 0.5}))]
    plan = plan_batch(MIO, STYLE, history, batch=3, batch_size=1, first_index=2)
    assert plan.steering.exposure == 0.25


def test_a_setting_that_led_only_to_rejections_is_not_used_again_and_no_seed_twice():
    # the quality fix (4 more steps) would lead back to a setting whose every candidate was rejected
    failed = BASE.model_copy(update={"steps": BASE.steps + 4})
    history = [outcome(0, "reject", ["noisy"], steering=failed)] + [outcome(i, "reject", ["noisy"]) for i in (1, 2, 3)]
    plan = plan_batch(MIO, STYLE, history, batch=3, batch_size=3, first_index=4)
    assert plan.steering.setting not in {BASE.setting, failed.setting} and plan.steering.steps == BASE.steps + 6
    assert any("led only to rejections" in note for note in plan.notes)
    assert not {c.seed for c in plan.candidates} & {o.seed for o in history}
    clash = plan_batch(MIO, STYLE, [outcome(0, "reject"), outcome(1, "approve").model_copy(update={"seed": 50_002})],
                       batch=2, batch_size=1, first_index=2)
    assert clash.candidates[0].seed != 50_002


def test_variations_least_represented_among_the_approved_come_first():
    history = [outcome(i, "approve", framing=framing) for i, framing in enumerate(("full_body", "portrait") * 2)]
    plan = plan_batch(MIO, STYLE, history, batch=2, batch_size=3, first_index=4)
    first = plan.candidates[0]
    assert (first.outfit, first.expression, first.pose) != ("courier jacket", "determined", "standing")
    assert first.outfit == "rain cape" and first.expression != "determined" and first.pose != "standing"
    assert len({(c.outfit, c.expression, c.pose, c.framing) for c in plan.candidates}) == 3
    assert "approved so far" in first.why and plan.fixes == ()


def _dark(ref: CharacterRef) -> CharacterRef:
    """The show restyled with low-key lighting: previz renders come out a stop too dark for the identity
    anchor made from the original reference sheet."""
    style = ref.config.show.style
    show = ref.config.show.model_copy(update={"style": style.model_copy(update={"style_tags": [*style.style_tags,
                                                                                              "low-key lighting"]})})
    return CharacterRef(ref.config.model_copy(update={"show": show}), ref.character)


def test_the_approval_rate_of_a_too_dark_character_rises_across_batches(characters, tmp_path):
    key = "lantern-post/mio"
    ref = _dark(Project.load(characters.configs).characters[key])
    anchor = load_anchor(StoragePaths(characters.storage).embedding(key))
    renderer, reviewer = PrevizRenderer(), HeuristicReviewer()

    learned = tmp_path / "learned"
    log = DecisionLog(learned / "decisions.jsonl")
    rates = [run_batch(ref, renderer, reviewer, anchor, learned, log, 3).approval_rate() for _ in range(4)]

    # the same batches with no memory of earlier decisions: every plan starts from scratch
    blind, blind_log = tmp_path / "blind", DecisionLog(tmp_path / "blind.jsonl")
    blind_rates = []
    for batch in range(1, 5):
        plan = plan_batch(ref.character, ref.config.show.style, [], batch, 3, first_index=len(list_candidates(blind)))
        made = generate_batch(ref, renderer, reviewer, anchor, blind, blind_log, plan)
        blind_rates.append(sum(c.record.verdict.decision == "approve" for c in made) / len(made))

    assert rates[0] == 0.0 and rates[-1] == 1.0 and rates == sorted(rates), rates
    assert blind_rates == [0.0] * 4
    records = batch_records(learned)
    assert [r.batch for r in records] == [1, 2, 3, 4]
    fix = records[1].plan.fixes[0]
    assert fix.cause == "brightness" and fix.candidates == records[0].made and "stops" in fix.change
    assert records[1].plan.steering.exposure == pytest.approx(1.0, abs=0.05)
    assert [c.record.steering for c in list_candidates(learned)][-1] == records[-1].plan.steering
