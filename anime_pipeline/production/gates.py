"""Gates, declared once: what each blocking check measures, against which threshold, in which direction.

A `Gate` is the single definition of one quality gate. Everything that judges output reads it:
the Dagster blocking checks and their metadata, the phase gates, `anime-pipeline status` and the
shot retry loop (an attempt is retried exactly when one of its blocking gates fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from anime_pipeline.config.schema import Quality

S = TypeVar("S")  # what a gate reads: a manifest, or one shot attempt's scores
Direction = Literal["at_least", "at_most", "equals"]
Value = float | int | str | bool
SYMBOL = {"at_least": "≥", "at_most": "≤", "equals": "="}


@dataclass(frozen=True)
class Measured:
    """A gate's reading of its subject: the value, the backend that measured it and what a person
    should look at when it fails (worst frames, offending files, per-character values)."""

    value: Value
    backend: str
    details: Mapping[str, Any] = field(default_factory=dict)
    threshold: Value | None = None  # set when the threshold comes from the subject (counts, expected lengths)


@dataclass(frozen=True)
class GateResult:
    name: str
    passed: bool
    value: Value
    threshold: Value
    direction: Direction
    backend: str
    margin: float  # how far past the threshold, relative to it: > 0 passes with room, < 0 fails
    details: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.name} {self.value} {SYMBOL[self.direction]} {self.threshold}: {'pass' if self.passed else 'FAIL'}"


@dataclass(frozen=True)
class Gate(Generic[S]):
    """One blocking gate. `threshold` names a `quality:` field of the show file (the default source),
    or is None when the measure itself supplies it (a count target, an expected duration)."""

    name: str
    description: str
    measure: Callable[[S, Quality], Measured]
    direction: Direction
    threshold: str | None = None

    def evaluate(self, subject: S, quality: Quality) -> GateResult:
        measured = self.measure(subject, quality)
        threshold = measured.threshold if measured.threshold is not None else getattr(quality, str(self.threshold))
        value, threshold = _rounded(measured.value), _rounded(threshold)
        return GateResult(self.name, passes(value, threshold, self.direction), value, threshold, self.direction,
                          measured.backend, margin(value, threshold, self.direction), measured.details)

    @property
    def threshold_source(self) -> str:
        return f"quality.{self.threshold}" if self.threshold else "from the artifact"


def _rounded(value: Value) -> Value:
    return round(value, 4) if isinstance(value, float) else value


def passes(value: Value, threshold: Value, direction: Direction) -> bool:
    if direction == "equals":
        return value == threshold
    if direction == "at_least":
        return float(value) >= float(threshold)
    return float(value) <= float(threshold)


def margin(value: Value, threshold: Value, direction: Direction) -> float:
    """Signed distance past the threshold, scaled by it, so margins of different gates compare."""
    if direction == "equals":
        return 0.0 if value == threshold else -1.0
    scale = max(abs(float(threshold)), 1e-6)
    signed = float(value) - float(threshold) if direction == "at_least" else float(threshold) - float(value)
    return round(signed / scale, 6)


@dataclass(frozen=True)
class GateSet(Generic[S]):
    """The blocking gates of one artifact, in the order they are shown."""

    gates: tuple[Gate[S], ...]

    def __iter__(self):
        return iter(self.gates)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates)

    def evaluate(self, subject: S, quality: Quality) -> list[GateResult]:
        return [gate.evaluate(subject, quality) for gate in self.gates]


def all_passed(results: Iterable[GateResult]) -> bool:
    return all(r.passed for r in results)


def ranking(results: Sequence[GateResult]) -> tuple[int, float]:
    """How good a set of results is: most gates passed first, then the worst margin (ties by margin)."""
    return sum(r.passed for r in results), min((r.margin for r in results), default=0.0)


def failed_names(results: Iterable[GateResult]) -> list[str]:
    return [r.name for r in results if not r.passed]
