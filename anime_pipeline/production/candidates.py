"""Dataset candidates: generated images, their review records, and the decision log.

Decisions are an append-only, fsync'd JSONL log: a human approval is never lost, survives crashes
and restarts, and the latest decision for a candidate wins (a human can overrule the reviewer, and
change their mind, with every step kept).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.config.schema import Style
from anime_pipeline.imaging import Box, load_png, save_png
from anime_pipeline.manifest import Record
from anime_pipeline.metrics.suite import Anchor
from anime_pipeline.production.learner import BatchPlan, Outcome, Steering
from anime_pipeline.prompts import caption, extended, negative_prompt, still_prompt
from anime_pipeline.render.base import Renderer, StillRequest
from anime_pipeline.review.base import Reviewer
from anime_pipeline.review.verdict import Verdict
from anime_pipeline.storage import append_jsonl, outputs, read_json, read_jsonl, write_json

DecisionKind = Literal["approve", "reject", "human_review"]
DECISIONS: tuple[DecisionKind, ...] = ("approve", "reject", "human_review")
AUTOMATIC = "auto:"  # how a reviewer's decider name starts; a person's never does


class RendererRecord(Record):
    backend: str
    device: str
    params: dict[str, Any] = {}


class CandidateRecord(Record):
    """Everything about one generated candidate: how it was made and what the reviewer said."""

    id: str
    prompt: str
    negative_prompt: str
    seed: int
    outfit: str
    expression: str
    pose: str
    framing: str
    resolution: tuple[int, int]
    face_box: Box | None
    caption: str
    verdict: Verdict
    renderer: RendererRecord
    batch: int | None = None  # None: made before batches were recorded
    steering: Steering | None = None  # None: the show style's settings at half its resolution


class Decision(Record):
    candidate: str
    decision: DecisionKind | str  # an unknown, hand-edited decision is kept and counts as awaiting review
    decider: str
    reason: str = ""
    at: str


@dataclass(frozen=True)
class Candidate:
    id: str
    image_path: Path
    record: CandidateRecord


class DecisionLog:
    """Approve / reject / human_review decisions per candidate, append-only."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, candidate_id: str, decision: DecisionKind, decider: str, reason: str = "") -> Decision:
        return self.record_many([candidate_id], decision, decider, reason)[0]

    def record_many(self, candidate_ids: Sequence[str], decision: DecisionKind, decider: str,
                    reason: str = "") -> list[Decision]:
        """One decision for several candidates in one append: a bulk action is logged whole or not at all."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = [Decision(candidate=c, decision=decision, decider=decider, reason=reason, at=at) for c in candidate_ids]
        append_jsonl(self.path, *(e.model_dump() for e in entries))
        return entries

    def history(self) -> list[Decision]:
        out = []
        for line in read_jsonl(self.path):
            try:
                out.append(Decision.model_validate(line))
            except ValidationError:
                continue  # a hand-edited line that is not a decision: kept in the file, not counted
        return out

    def latest(self) -> dict[str, Decision]:
        return {entry.candidate: entry for entry in self.history()}


def read_candidates(candidates_dir: Path) -> tuple[list[Candidate], list[str]]:
    """The candidates this version can judge, and one problem line per record it cannot read."""
    found, problems = [], []
    for record_path in outputs(candidates_dir, "c*.json"):
        image_path = record_path.with_suffix(".png")
        if not image_path.exists():
            continue
        try:
            found.append(Candidate(record_path.stem, image_path, CandidateRecord.model_validate(read_json(record_path))))
        except ValidationError as exc:
            first = exc.errors()[0]
            problems.append(f"{record_path}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
        except ValueError as exc:
            problems.append(f"{record_path}: not valid JSON ({exc})")
    return found, problems


def list_candidates(candidates_dir: Path) -> list[Candidate]:
    return read_candidates(candidates_dir)[0]


@dataclass(frozen=True)
class DatasetState:
    approved: list[Candidate]
    pending: list[Candidate]
    rejected: list[Candidate]


def dataset_state(candidates_dir: Path, log: DecisionLog) -> DatasetState:
    latest = log.latest()
    groups: dict[str, list[Candidate]] = {d: [] for d in DECISIONS}
    for candidate in list_candidates(candidates_dir):
        decision = latest[candidate.id].decision if candidate.id in latest else "human_review"
        groups.get(decision, groups["human_review"]).append(candidate)
    return DatasetState(groups["approve"], groups["human_review"], groups["reject"])


def outcomes(candidates: list[Candidate], log: DecisionLog, style: Style) -> list[Outcome]:
    """The candidates as the learner sees them, oldest first: how each was made, its latest decision and
    the reasons given (the reviewer's, and a person's when a person decided)."""
    latest = log.latest()
    out = []
    for c in candidates:
        decision = latest.get(c.id)
        kind = decision.decision if decision else "human_review"
        reasons = list(c.record.verdict.reasons)
        if decision is not None and decision.reason and not decision.decider.startswith(AUTOMATIC):
            reasons.append(decision.reason)
        r = c.record
        out.append(Outcome(id=c.id, seed=r.seed, outfit=r.outfit, expression=r.expression, pose=r.pose,
                           framing=r.framing, steering=r.steering or Steering.from_style(style),
                           decision=kind if kind in ("approve", "reject") else "pending", reasons=tuple(reasons)))
    return out


def scaled(resolution: tuple[int, int], scale: float) -> tuple[int, int]:
    """A share of the style's resolution, in multiples of 8 (what the backends accept)."""
    return tuple(max(64, round(side * scale / 8) * 8) for side in resolution)  # type: ignore[return-value]


def generate_batch(ref: CharacterRef, renderer: Renderer, reviewer: Reviewer, anchor: Anchor, candidates_dir: Path,
                   log: DecisionLog, plan: BatchPlan) -> list[Candidate]:
    """Render the plan's candidates with its steering, review each, and log the reviewer's decision."""
    cfg, character = ref.config, ref.character
    style, steering = cfg.show.style, plan.steering
    others: list[np.ndarray] = [load_png(c.image_path) for c in list_candidates(candidates_dir)]
    width, height = scaled(style.resolution, steering.scale)
    negative = extended(negative_prompt(style, [character]), steering.negative_additions)
    made = []
    for planned in plan.candidates:
        outfit, expression, pose, framing = planned.outfit, planned.expression, planned.pose, planned.framing
        prompt = still_prompt(style, character, framing, outfit, expression, pose)
        request = StillRequest(
            characters=(character,), negative_prompt=negative, seed=planned.seed, width=width, height=height,
            prompt=extended(prompt, steering.prompt_additions),
            framing=framing, pose=pose, expression=expression, outfit=outfit, background=tuple(cfg.world.palette),
            steps=steering.steps, cfg=steering.cfg, exposure=steering.exposure, contrast=steering.contrast,
        )
        result = renderer.render_still(request)
        box = result.face_boxes.get(character.slug)
        verdict = reviewer.review(result.image, character, box, anchor.palette, others, cfg.quality.review,
                                  cfg.quality.near_duplicate_similarity)
        candidate_id = f"c{planned.index:04d}"
        image_path = save_png(candidates_dir / f"{candidate_id}.png", result.image)
        record = CandidateRecord(
            id=candidate_id, prompt=request.prompt, negative_prompt=request.negative_prompt, seed=request.seed,
            outfit=outfit, expression=expression, pose=pose, framing=framing, resolution=(request.width, request.height),
            face_box=box, caption=caption(character, outfit, expression, pose), verdict=verdict,
            renderer=RendererRecord(backend=renderer.backend, device=renderer.device, params=result.params),
            batch=plan.batch, steering=steering)
        write_json(candidates_dir / f"{candidate_id}.json", record.model_dump(mode="json"))
        log.record(candidate_id, verdict.decision, f"{AUTOMATIC}{verdict.reviewer}", "; ".join(verdict.reasons))
        others.append(result.image)
        made.append(Candidate(candidate_id, image_path, record))
    return made
