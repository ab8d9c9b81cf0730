"""The dataset learner: each batch of candidates is steered by the decisions on the earlier ones (SPEC §5).

Pure functions over what was made and what was decided, no files and no renderer:
- the variations (outfit / expression / pose / framing) least represented among the approved images come first;
- a render setting (steps, cfg, exposure, contrast, scale) that led only to rejections is not used again, and
  no seed is used twice;
- the reasons given for the rejections under the current setting map onto the original system's seven
  causes (quality, resolution, blur, brightness, contrast, appearance, solo), each with a fix for the next batch.

What it chose and why is a `BatchPlan`, recorded with each batch.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import product
from typing import Literal

from anime_pipeline.config.schema import Character, Style
from anime_pipeline.manifest import Record

Cause = Literal["quality", "resolution", "blur", "brightness", "contrast", "appearance", "solo"]
CAUSES: tuple[Cause, ...] = ("quality", "resolution", "blur", "brightness", "contrast", "appearance", "solo")
Decided = Literal["approve", "reject", "pending"]
FRAMINGS = ("full_body", "portrait")
CANDIDATE_SEED = 50_000
SEED_STRIDE = 1_009  # a prime: seeds skipped past used ones never fall back onto the same sequence

# Reasons as the reviewers write them (review/heuristic.py, review/vision.py) and as people type them; each
# pattern that matches names its cause, and a rejection none of them explains is put down to quality.
CAUSE_WORDS: tuple[tuple[Cause, str], ...] = (
    ("brightness", r"too dark|too bright|under-?exposed|over-?exposed|\bdim\b|brightness"),
    ("blur", r"blurr|out of focus|soft focus|not sharp|unsharp"),
    ("contrast", r"low contrast|washed.out|flat lighting|contrast too low|muddy"),
    ("resolution", r"low.?res|resolution|pixelat|too small|jagged"),
    ("solo", r"not solo|more than one|multiple characters|extra (character|person|figure)|faces found"),
    ("appearance", r"failed check|missing (hair|skin|eyes|outfit|accent)\b|species check failed|off.model|"
                   r"wrong (colou?r|species|hair|eyes|outfit|face)"),
    ("quality", r"near-duplicate|artifact|artefact|bad anatomy|low quality|deformed|distorted|noisy"),
)
CAUSE_PATTERNS = tuple((cause, re.compile(pattern, re.IGNORECASE)) for cause, pattern in CAUSE_WORDS)
BRIGHT_WORDS = re.compile(r"too bright|over-?exposed", re.IGNORECASE)
MEASURED_STOPS = re.compile(r"reads ([+-]?\d+(?:\.\d+)?) stops", re.IGNORECASE)  # the heuristic's skin reading
CHARACTER_MATCH = re.compile(r"character match (\d(?:\.\d+)?)", re.IGNORECASE)
POOR_MATCH = 0.6  # a character match below this is an appearance problem whatever else is said
UNJUDGED = "not checkable"  # the heuristic's list of items it could not judge names errors it did not see
# A wrongly exposed image also reads low in contrast and off in every colour: those are its symptoms,
# fixed by fixing the exposure, not causes of their own.
COLOUR_EVIDENCE = re.compile(r"character match|missing (hair|skin|eyes|outfit|accent)\b|colour evidence",
                             re.IGNORECASE)

EXPOSURE_STEP, MIN_EXPOSURE_STEP, EXPOSURE_LIMIT = 0.5, 0.125, 2.0
CONTRAST_FACTOR, CONTRAST_LIMITS = 1.15, (0.6, 1.6)
STEPS_FOR = {"blur": 8, "quality": 4}
STEPS_LIMIT, CFG_STEP, CFG_LIMIT = 80, 1.0, 12.0
SCALE_STEP, SCALE_LIMIT = 0.25, 1.0
PROMPT_FOR: dict[Cause, tuple[tuple[str, ...], tuple[str, ...]]] = {  # (positive, negative) additions
    "quality": (("masterpiece", "best quality"), ("worst quality", "low quality", "artifacts")),
    "resolution": (("highres", "detailed"), ("lowres", "pixelated")),
    "blur": (("sharp focus", "clean lineart"), ("blurry", "out of focus")),
    "contrast": (("high contrast",), ("washed out", "low contrast")),
    "solo": (("solo", "single character"), ("multiple characters", "crowd", "2girls", "2boys")),
}  # appearance adds the character's own key features; brightness, its own words (BRIGHTEN / DARKEN)
BRIGHTEN = (("well lit", "bright lighting"), ("dark", "underexposed"))
DARKEN = (("soft lighting",), ("overexposed", "blown highlights"))


class Steering(Record):
    """How a batch is rendered beyond its variation: the sampler settings, the developed exposure (stops) and
    contrast, the share of the style's resolution, and prompt words added for the fixes so far."""

    steps: int
    cfg: float
    exposure: float = 0.0
    contrast: float = 1.0
    scale: float = 0.5
    prompt_additions: tuple[str, ...] = ()
    negative_additions: tuple[str, ...] = ()

    @classmethod
    def from_style(cls, style: Style) -> Steering:
        return cls(steps=style.steps, cfg=style.cfg)

    @property
    def setting(self) -> tuple[int, float, float, float, float]:
        return self.steps, self.cfg, self.exposure, self.contrast, self.scale

    def describe(self) -> str:
        return (f"steps {self.steps}, cfg {self.cfg:g}, exposure {self.exposure:+g} stops, "
                f"contrast ×{self.contrast:g}, scale {self.scale:g}")


class Outcome(Record):
    """One earlier candidate as the learner sees it: how it was made and its latest decision."""

    id: str
    seed: int
    outfit: str
    expression: str
    pose: str
    framing: str
    steering: Steering
    decision: Decided
    reasons: tuple[str, ...] = ()


class Fix(Record):
    cause: Cause
    candidates: tuple[str, ...]  # the rejections it answers
    evidence: str  # one reason that named the cause
    change: str  # what the next batch does differently


class PlannedCandidate(Record):
    index: int
    seed: int
    outfit: str
    expression: str
    pose: str
    framing: str
    why: str


class BatchPlan(Record):
    batch: int
    steering: Steering
    candidates: tuple[PlannedCandidate, ...]
    fixes: tuple[Fix, ...]
    learned_from: tuple[str, ...]  # the decided candidates rendered with the previous setting
    notes: tuple[str, ...]

    def summary(self) -> str:
        fixes = "; ".join(f"{f.cause}: {f.change}" for f in self.fixes) or "no fixes"
        return f"batch {self.batch}: {self.steering.describe()} — {fixes}"


def diagnose(reasons: Iterable[str]) -> dict[Cause, tuple[str, ...]]:
    """The causes named in a rejection's reasons, each with the reasons that named it; a wrong exposure's
    symptoms (low contrast, colours off) are left to the exposure fix."""
    found: dict[Cause, list[str]] = {}
    for reason in reasons:
        if reason.lower().startswith(UNJUDGED):
            continue
        for cause, pattern in CAUSE_PATTERNS:
            if pattern.search(reason):
                found.setdefault(cause, []).append(reason)
        match = CHARACTER_MATCH.search(reason)
        if match and float(match.group(1)) < POOR_MATCH and reason not in found.get("appearance", []):
            found.setdefault("appearance", []).append(reason)
    if "brightness" in found:
        found.pop("contrast", None)
        found["appearance"] = [r for r in found.get("appearance", []) if not COLOUR_EVIDENCE.search(r)]
    named = {cause: tuple(evidence) for cause, evidence in found.items() if evidence}
    return named or {"quality": ("rejected without a named cause",)}


def plan_batch(character: Character, style: Style, history: Sequence[Outcome], batch: int, batch_size: int,
               first_index: int) -> BatchPlan:
    """The next batch: its steering (the previous one, fixed for the causes of its rejections and never a
    setting that only failed) and one variation per candidate, least represented among the approved first."""
    baseline = history[-1].steering if history else Steering.from_style(style)
    judged = [o for o in history if o.steering == baseline and o.decision != "pending"]
    rejected = [o for o in judged if o.decision == "reject"]
    diagnoses = {o.id: diagnose(o.reasons) for o in rejected}
    steering, fixes = baseline, []
    for cause in CAUSES:
        named = [cid for cid, causes in diagnoses.items() if cause in causes]
        if named:
            evidence = [reason for cid in named for reason in diagnoses[cid][cause]]
            steering, change = _apply(cause, steering, character, history, evidence)
            fixes.append(Fix(cause=cause, candidates=tuple(named), evidence=evidence[0][:200], change=change))
    steering, avoided = _not_a_failed_setting(steering, history)
    framings = ("portrait",) if any(f.cause == "solo" for f in fixes) else FRAMINGS
    candidates = _variations(character, history, batch_size, first_index, framings)
    notes = [f"learned from {len(judged)} decided candidate(s) rendered with {baseline.describe()}: "
             f"{len(judged) - len(rejected)} approved, {len(rejected)} rejected" if judged
             else "no decided candidate rendered with the current setting yet: it is kept"]
    notes += avoided
    return BatchPlan(batch=batch, steering=steering, candidates=tuple(candidates), fixes=tuple(fixes),
                     learned_from=tuple(o.id for o in judged), notes=tuple(notes))


def _apply(cause: Cause, s: Steering, character: Character, history: Sequence[Outcome],
           evidence: Sequence[str]) -> tuple[Steering, str]:
    """The steering with one cause's fix, and the fix in words."""
    if cause == "brightness":
        return _exposure_fix(s, history, evidence)
    if cause == "contrast":
        contrast = round(min(CONTRAST_LIMITS[1], max(CONTRAST_LIMITS[0], s.contrast * CONTRAST_FACTOR)), 3)
        fixed, change = s.model_copy(update={"contrast": contrast}), f"contrast ×{s.contrast:g} → ×{contrast:g}"
    elif cause in STEPS_FOR:
        steps = min(STEPS_LIMIT, s.steps + STEPS_FOR[cause])
        fixed, change = s.model_copy(update={"steps": steps}), f"steps {s.steps} → {steps}"
    elif cause == "resolution":
        scale = min(SCALE_LIMIT, s.scale + SCALE_STEP)
        fixed = s.model_copy(update={"scale": scale})
        change = f"render scale {s.scale:g} → {scale:g} of the style's resolution"
    elif cause == "appearance":
        cfg = min(CFG_LIMIT, s.cfg + CFG_STEP)
        features = tuple(character.appearance.key_features)
        return (_with_words(s.model_copy(update={"cfg": cfg}), features, ()),
                f"cfg {s.cfg:g} → {cfg:g}, key features stressed in the prompt")
    else:  # solo
        fixed, change = s, "portrait framing only"
    positive, negative = PROMPT_FOR[cause]
    return _with_words(fixed, positive, negative), change


def _exposure_fix(s: Steering, history: Sequence[Outcome], evidence: Sequence[str]) -> tuple[Steering, str]:
    """Undo what the reviewer measured (the mean of its stop readings), or else step half a stop the way
    the words say (too dark: brighter)."""
    measured = [float(m.group(1)) for reason in evidence if (m := MEASURED_STOPS.search(reason))]
    if measured:
        shift = -sum(measured) / len(measured)
        how = f"the reviewer measured {-shift:+.2f} stops"
    else:
        direction = -1.0 if sum(bool(BRIGHT_WORDS.search(r)) for r in evidence) * 2 > len(evidence) else 1.0
        shift = direction * _exposure_step(history, s, direction)
        how = "stepped: the reviews say too bright" if direction < 0 else "stepped: the reviews say too dark"
    exposure = round(max(-EXPOSURE_LIMIT, min(EXPOSURE_LIMIT, s.exposure + shift)), 3)
    positive, negative = BRIGHTEN if shift > 0 else DARKEN
    return (_with_words(s.model_copy(update={"exposure": exposure}), positive, negative),
            f"exposure {s.exposure:+g} → {exposure:+g} stops ({how})")


def _exposure_step(history: Sequence[Outcome], current: Steering, direction: float) -> float:
    """Half a stop; when this reverses the last exposure change, half of that change (it overshot)."""
    earlier = next((o.steering for o in reversed(history) if o.steering.exposure != current.exposure), None)
    if earlier is None:
        return EXPOSURE_STEP
    last_change = current.exposure - earlier.exposure
    return max(MIN_EXPOSURE_STEP, abs(last_change) / 2) if last_change * direction < 0 else EXPOSURE_STEP


def _with_words(s: Steering, positive: Iterable[str], negative: Iterable[str]) -> Steering:
    return s.model_copy(update={"prompt_additions": tuple(dict.fromkeys([*s.prompt_additions, *positive])),
                                "negative_additions": tuple(dict.fromkeys([*s.negative_additions, *negative]))})


def _not_a_failed_setting(steering: Steering, history: Sequence[Outcome]) -> tuple[Steering, list[str]]:
    """Move the sampler steps on while the setting is one whose every decided candidate was rejected."""
    decided: dict[tuple, set[str]] = {}
    for o in history:
        if o.decision != "pending":
            decided.setdefault(o.steering.setting, set()).add(o.decision)
    failed = {setting for setting, decisions in decided.items() if decisions == {"reject"}}
    notes = []
    while steering.setting in failed and steering.steps < STEPS_LIMIT:
        moved = steering.model_copy(update={"steps": steering.steps + 2})
        notes.append(f"{steering.describe()} led only to rejections: steps {steering.steps} → {moved.steps}")
        steering = moved
    return steering, notes


def _variations(character: Character, history: Sequence[Outcome], batch_size: int, first_index: int,
                framings: Sequence[str]) -> list[PlannedCandidate]:
    v = character.variations
    combos = list(product(v.outfits, v.expressions, v.poses, framings))
    approved = Counter(value for o in history if o.decision == "approve" for value in _axes(o))
    waiting = Counter(value for o in history if o.decision == "pending" for value in _axes(o))
    tried = Counter((o.outfit, o.expression, o.pose, o.framing) for o in history)
    used_seeds = {o.seed for o in history}
    planned = []
    for offset in range(batch_size):
        combo = min(combos, key=lambda c: (sum(approved[a] for a in _tagged(c)), sum(waiting[a] for a in _tagged(c)),
                                           tried[c], combos.index(c)))
        counts = ", ".join(f"{axis} {value!r} {approved[(axis, value)]}" for axis, value in _tagged(combo))
        index = first_index + offset
        seed = _fresh_seed(CANDIDATE_SEED + index, used_seeds)
        planned.append(PlannedCandidate(index=index, seed=seed, outfit=combo[0], expression=combo[1], pose=combo[2],
                                        framing=combo[3], why=f"approved so far with its {counts} (fewest first)"))
        used_seeds.add(seed)
        waiting.update(_tagged(combo))  # the rest of the batch spreads over the other variations
        tried[combo] += 1
    return planned


AXES = ("outfit", "expression", "pose", "framing")


def _tagged(combo: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(AXES, combo, strict=True))


def _axes(o: Outcome) -> list[tuple[str, str]]:
    return _tagged((o.outfit, o.expression, o.pose, o.framing))


def _fresh_seed(seed: int, used: set[int]) -> int:
    while seed in used:
        seed += SEED_STRIDE
    return seed
