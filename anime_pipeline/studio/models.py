"""What the studio's pages show, as typed values: the review queue, the players' records, and the
replenishment state that the replenishment sensor's code provides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from anime_pipeline.production.replenishment import CharacterReplenishment
from anime_pipeline.review.verdict import Verdict

Status = Literal["pending", "approved", "rejected"]
STATUSES: tuple[Status, ...] = ("pending", "approved", "rejected")
# The page's words for the decision log's; "pending" is the log's "human_review" (a person decides).
LOG_DECISION: dict[Status, str] = {"pending": "human_review", "approved": "approve", "rejected": "reject"}


@dataclass(frozen=True)
class LoggedDecision:
    decision: str
    decider: str
    reason: str
    at: str


@dataclass(frozen=True)
class CandidateCard:
    id: str
    image_path: str  # relative to the storage root
    status: Status
    verdict: Verdict
    variation: dict[str, str]  # outfit, expression, pose, framing
    seed: int | None
    last: LoggedDecision | None


@dataclass(frozen=True)
class ReferencePanel:
    name: str
    image_path: str  # relative to the storage root


@dataclass(frozen=True)
class ReviewQueue:
    key: str
    name: str
    species: str
    is_human: bool
    target: int
    cards: list[CandidateCard]
    sheet_path: str | None  # the contact sheet, relative to the storage root; None before character_reference
    panels: list[ReferencePanel]
    problems: list[str]  # candidate records that could not be read, file and reason

    def count(self, status: Status) -> int:
        return sum(card.status == status for card in self.cards)

    def showing(self, view: str) -> list[CandidateCard]:
        return self.cards if view == "all" else [c for c in self.cards if c.status == view]


@dataclass(frozen=True)
class ReplenishmentView:
    """The replenishment sensor's view of one character, as the studio shows it."""

    enabled: bool  # the dataset_replenishment sensor is running
    state: CharacterReplenishment


# Given a character key, its replenishment view (None: the character is not replenished).
ReplenishmentSource = Callable[[str], ReplenishmentView | None]


@dataclass(frozen=True)
class Gate:
    name: str
    value: float | int | str
    threshold: float | int | str
    passed: bool
    backend: str


@dataclass(frozen=True)
class Attempt:
    number: int
    seed: int
    steps: int
    passed: bool  # every blocking gate passed: no retry after it
    chosen: bool
    gates: list[Gate]


@dataclass(frozen=True)
class ShotRecord:
    key: str
    video_path: str  # relative to the storage root
    backend: str
    device: str
    prompt: str
    seed: int
    frames: int
    duration: float
    attempts: list[Attempt]
    gates: list[Gate]  # the chosen attempt's: what the blocking checks judge


@dataclass(frozen=True)
class Chapter:
    start: float
    title: str
    key: str  # the scene shown from `start`


@dataclass(frozen=True)
class AssemblyRecord:
    """A scene or an episode: its video, subtitles, gates and parts."""

    kind: Literal["scene", "episode"]
    key: str
    video_path: str
    poster_path: str | None
    duration: float
    gates: list[Gate]
    parts: list[str]  # shot keys of a scene, scene keys of an episode
    chapters: list[Chapter]
