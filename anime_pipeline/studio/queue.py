"""A character's review queue from storage and the decision log, and human decisions into that log.

The decision log is the pipeline's own (the one `anime-pipeline review` and approved_dataset
use), imported here and nowhere else in the studio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


from anime_pipeline.config.project import CharacterRef
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.candidates import Decision, DecisionLog, dataset_state, list_candidates, read_candidates
from anime_pipeline.studio.models import (LOG_DECISION, CandidateCard, LoggedDecision, ReferencePanel, ReviewQueue,
                                          Status)

MAX_IDS = 500
MAX_REASON = 500
USER_PATTERN = re.compile(r"^[\w .@'-]{1,64}$")
VARIATION_FIELDS = ("outfit", "expression", "pose", "framing")
SHEET = "sheet.png"


class DecisionRejected(ValueError):
    """A decision request the studio will not record; the message names the field and the reason."""


def decision_log(paths: StoragePaths, key: str) -> DecisionLog:
    return DecisionLog(paths.decisions_log(key))


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _reference(paths: StoragePaths, key: str) -> tuple[str | None, list[ReferencePanel]]:
    folder = paths.reference(key)
    sheet = folder / SHEET
    panels = [ReferencePanel(p.stem, _relative(p, paths.root)) for p in sorted(folder.glob("*.png")) if p.name != SHEET]
    return (_relative(sheet, paths.root) if sheet.exists() else None), panels


def build_queue(ref: CharacterRef, paths: StoragePaths) -> ReviewQueue:
    """Every candidate of a character with its status (the latest decision), verdict and last decision."""
    log = decision_log(paths, ref.key)
    latest = log.latest()
    state = dataset_state(paths.candidates(ref.key), log)
    groups: list[tuple[Status, list]] = [("pending", state.pending), ("approved", state.approved),
                                         ("rejected", state.rejected)]
    cards, problems = [], read_candidates(paths.candidates(ref.key))[1]
    for status, candidates in groups:
        for candidate in candidates:
            entry = latest.get(candidate.id)
            last = LoggedDecision(entry.decision, entry.decider, entry.reason, entry.at) if entry else None
            cards.append(CandidateCard(
                candidate.id, _relative(candidate.image_path, paths.root), status, candidate.record.verdict,
                {f: str(getattr(candidate.record, f)) for f in VARIATION_FIELDS}, candidate.record.seed, last))
    cards.sort(key=lambda card: card.id)
    sheet, panels = _reference(paths, ref.key)
    appearance = ref.character.appearance
    return ReviewQueue(ref.key, ref.character.name, appearance.species, appearance.species == "human",
                       ref.character.dataset_target, cards, sheet, panels, problems)


@dataclass(frozen=True)
class DecisionRequest:
    ids: list[str]
    status: Status
    user: str
    reason: str


def parse_decision(payload: object) -> DecisionRequest:
    """Validate a decision request's JSON body: {"ids": [...], "status": ..., "user": ..., "reason": ...}."""
    if not isinstance(payload, dict):
        raise DecisionRejected("body: expected a JSON object")
    ids, status = payload.get("ids"), payload.get("status")
    user, reason = payload.get("user"), payload.get("reason", "")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise DecisionRejected("ids: expected a non-empty list of candidate ids")
    if len(ids) > MAX_IDS:
        raise DecisionRejected(f"ids: at most {MAX_IDS} candidates per request, got {len(ids)}")
    if status not in LOG_DECISION:
        raise DecisionRejected(f"status: expected one of {sorted(LOG_DECISION)}, got {status!r}")
    if not isinstance(user, str) or not USER_PATTERN.match(user.strip()):
        raise DecisionRejected("user: enter your name (1-64 letters, digits, spaces, . @ ' -)")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise DecisionRejected(f"reason: expected text of at most {MAX_REASON} characters")
    return DecisionRequest(list(dict.fromkeys(ids)), status, user.strip(), " ".join(reason.split()))


def record_decision(ref: CharacterRef, paths: StoragePaths, request: DecisionRequest) -> list[Decision]:
    """Append one human decision for every named candidate, in one write; unknown ids refuse the lot."""
    known = {c.id for c in list_candidates(paths.candidates(ref.key))}
    unknown = [i for i in request.ids if i not in known]
    if unknown:
        raise DecisionRejected(f"ids: {ref.key} has no candidate(s) {', '.join(unknown[:10])}")
    return decision_log(paths, ref.key).record_many(request.ids, LOG_DECISION[request.status],
                                                    f"human:{request.user}", request.reason)
