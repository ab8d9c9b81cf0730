"""Batches of dataset candidates: each one planned by the learner from the decisions so far, rendered,
reviewed, and recorded — what the learner chose and why, what was made and what the reviewer decided —
as `candidates/batches/bNNNN.json` beside the candidates."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import ValidationError

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.manifest import Record
from anime_pipeline.metrics.suite import Anchor
from anime_pipeline.production.candidates import DecisionLog, generate_batch, list_candidates, outcomes
from anime_pipeline.production.learner import BatchPlan, plan_batch
from anime_pipeline.render.base import Renderer
from anime_pipeline.review.base import Reviewer
from anime_pipeline.storage import read_json, write_json

BATCHES = "batches"


class BatchRecord(Record):
    batch: int
    character: str
    started_at: str
    finished_at: str
    reviewer: str
    renderer: str
    plan: BatchPlan
    made: tuple[str, ...]
    automatic: dict[str, str]  # candidate → the reviewer's decision (a person's later ones are in the log)
    scores: dict[str, float]

    def approval_rate(self) -> float:
        """The share of the batch the reviewer approved on its own."""
        return sum(d == "approve" for d in self.automatic.values()) / len(self.automatic) if self.automatic else 0.0


def batch_records(candidates_dir: Path) -> list[BatchRecord]:
    """The recorded batches, oldest first; a damaged or foreign file is not a batch."""
    return sorted(filter(None, map(_read, (candidates_dir / BATCHES).glob("b*.json"))), key=lambda r: r.batch)


def latest_batch_record(candidates_dir: Path) -> BatchRecord | None:
    """The newest readable batch record, reading no more files than it must (a sensor asks every tick)."""
    for path in sorted((candidates_dir / BATCHES).glob("b*.json"), key=_number, reverse=True):
        if (record := _read(path)) is not None:
            return record
    return None


def _read(path: Path) -> BatchRecord | None:
    try:
        return BatchRecord.model_validate(read_json(path))
    except (ValidationError, ValueError):
        return None


def _number(path: Path) -> int:
    return int(path.stem[1:]) if path.stem[1:].isdigit() else -1


def next_batch(candidates_dir: Path) -> int:
    """One past every batch recorded or named by a candidate (a batch cut short leaves candidates, no record)."""
    numbers = [r.batch for r in batch_records(candidates_dir)]
    numbers += [c.record.batch for c in list_candidates(candidates_dir) if c.record.batch is not None]
    return max(numbers, default=0) + 1


def run_batch(ref: CharacterRef, renderer: Renderer, reviewer: Reviewer, anchor: Anchor, candidates_dir: Path,
              log: DecisionLog, batch_size: int) -> BatchRecord:
    """Plan the next batch from every decision so far, render and review it, and record it."""
    started = _now()
    existing = list_candidates(candidates_dir)
    history = outcomes(existing, log, ref.config.show.style)
    plan = plan_batch(ref.character, ref.config.show.style, history, next_batch(candidates_dir), batch_size,
                      first_index=len(existing))
    made = generate_batch(ref, renderer, reviewer, anchor, candidates_dir, log, plan)
    record = BatchRecord(
        batch=plan.batch, character=ref.key, started_at=started, finished_at=_now(), reviewer=reviewer.name,
        renderer=renderer.backend, plan=plan, made=tuple(c.id for c in made),
        automatic={c.id: c.record.verdict.decision for c in made},
        scores={c.id: round(c.record.verdict.score, 4) for c in made})
    write_json(candidates_dir / BATCHES / f"b{plan.batch:04d}.json", record.model_dump(mode="json"))
    return record


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
