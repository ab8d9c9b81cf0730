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
from anime_pipeline.imaging import Box, load_png, save_png
from anime_pipeline.manifest import Record
from anime_pipeline.metrics.suite import Anchor
from anime_pipeline.prompts import caption, negative_prompt, still_prompt
from anime_pipeline.render.base import Renderer, StillRequest
from anime_pipeline.review.base import Reviewer
from anime_pipeline.review.verdict import Verdict
from anime_pipeline.storage import append_jsonl, outputs, read_json, read_jsonl, write_json

DecisionKind = Literal["approve", "reject", "human_review"]
DECISIONS: tuple[DecisionKind, ...] = ("approve", "reject", "human_review")
CANDIDATE_SEED = 50_000


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


def variation(character, index: int) -> tuple[str, str, str, str]:
    """The index-th combination of outfit, expression, pose and framing."""
    v = character.variations
    outfit = v.outfits[index % len(v.outfits)]
    expression = v.expressions[(index // len(v.outfits)) % len(v.expressions)]
    pose = v.poses[(index // (len(v.outfits) * len(v.expressions))) % len(v.poses)]
    framing = "full_body" if index % 2 == 0 else "portrait"
    return outfit, expression, pose, framing


def generate_batch(ref: CharacterRef, renderer: Renderer, reviewer: Reviewer, anchor: Anchor, candidates_dir: Path,
                   log: DecisionLog, batch_size: int, seed: int = CANDIDATE_SEED) -> list[Candidate]:
    """Render `batch_size` new candidates, review each, and log the reviewer's decision."""
    cfg, character = ref.config, ref.character
    style = cfg.show.style
    existing = list_candidates(candidates_dir)
    others: list[np.ndarray] = [load_png(c.image_path) for c in existing]
    width, height = style.resolution
    made = []
    for offset in range(batch_size):
        index = len(existing) + offset
        outfit, expression, pose, framing = variation(character, index)
        request = StillRequest(
            characters=(character,), prompt=still_prompt(style, character, framing, outfit, expression, pose),
            negative_prompt=negative_prompt(style, [character]), seed=seed + index, width=width // 2,
            height=height // 2, framing=framing, pose=pose, expression=expression, outfit=outfit,
            background=tuple(cfg.world.palette), steps=style.steps,
        )
        result = renderer.render_still(request)
        box = result.face_boxes.get(character.slug)
        verdict = reviewer.review(result.image, character, box, anchor.palette, others, cfg.quality.review,
                                  cfg.quality.near_duplicate_similarity)
        candidate_id = f"c{index:04d}"
        image_path = save_png(candidates_dir / f"{candidate_id}.png", result.image)
        record = CandidateRecord(
            id=candidate_id, prompt=request.prompt, negative_prompt=request.negative_prompt, seed=request.seed,
            outfit=outfit, expression=expression, pose=pose, framing=framing, resolution=(request.width, request.height),
            face_box=box, caption=caption(character, outfit, expression, pose), verdict=verdict,
            renderer=RendererRecord(backend=renderer.backend, device=renderer.device, params=result.params))
        write_json(candidates_dir / f"{candidate_id}.json", record.model_dump(mode="json"))
        log.record(candidate_id, verdict.decision, f"auto:{verdict.reviewer}", "; ".join(verdict.reasons))
        others.append(result.image)
        made.append(Candidate(candidate_id, image_path, record))
    return made
