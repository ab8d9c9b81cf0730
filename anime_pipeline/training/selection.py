"""The best epoch by identity, not by the last step.

Each epoch's LoRA renders the same validation prompts (the character's variations, fixed seeds)
and identity against the anchor scores every render; the epoch with the highest mean wins, a tie
goes to the higher worst render, then to the earlier epoch (less training, less overfitting).
The renderer and the identity backend are the caller's: `score(epoch, prompts)` returns one
identity per prompt.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anime_pipeline.config.schema import Character, Style
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.training.base import CancelToken, EpochCheckpoint, ValidationPrompt
from anime_pipeline.training.errors import TrainingError

RULE = "highest mean identity over the validation renders; ties: higher minimum, then the earlier epoch"
_TIE = 1e-9

EpochScorer = Callable[[EpochCheckpoint, Sequence[ValidationPrompt]], Sequence[float]]


def validation_prompts(style: Style, character: Character, count: int, seed: int,
                       size: tuple[int, int] | None = None) -> tuple[ValidationPrompt, ...]:
    """`count` portraits spread over the character's outfit × expression × pose combinations, with
    the trigger word (the slug, first in every caption) and seeds seed, seed + 1, ..."""
    variations = character.variations
    combos = list(itertools.product(variations.outfits, variations.expressions, variations.poses))
    picks = [combos[(i * len(combos)) // count] if count <= len(combos) else combos[i % len(combos)]
             for i in range(count)]
    width, height = size or style.resolution
    negative = negative_prompt(style, [character])
    return tuple(
        ValidationPrompt(f"{character.slug}, {still_prompt(style, character, 'portrait', *combo)}", negative,
                         seed + i, width, height, style.steps, style.cfg, combo)
        for i, combo in enumerate(picks))


@dataclass(frozen=True)
class EpochScore:
    epoch: int
    steps: int
    scores: tuple[float, ...]
    seconds: float  # the scorer's own time (renders + identity)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def minimum(self) -> float:
        return min(self.scores)


@dataclass(frozen=True)
class EpochSelection:
    chosen: EpochCheckpoint
    scores: tuple[EpochScore, ...]
    prompts: tuple[ValidationPrompt, ...]
    identity_backend: str
    total_s: float
    rule: str = RULE

    @property
    def overhead_s(self) -> float:
        """Our orchestration, without the renders and the identity measurements."""
        return self.total_s - sum(score.seconds for score in self.scores)

    def score(self, epoch: int) -> EpochScore:
        return next(score for score in self.scores if score.epoch == epoch)


def pick_best_epoch(epochs: Sequence[EpochCheckpoint], prompts: Sequence[ValidationPrompt], score: EpochScorer,
                    identity_backend: str, cancel: CancelToken | None = None) -> EpochSelection:
    """Score every epoch with the same prompts and pick one (RULE); every epoch's scores are kept."""
    if not epochs or not prompts:
        raise TrainingError(f"choosing an epoch needs epochs and validation prompts (got {len(epochs)} epoch(s), "
                            f"{len(prompts)} prompt(s))")
    started = time.monotonic()
    prompts = tuple(prompts)
    scored = []
    for checkpoint in epochs:
        if cancel is not None:
            cancel.raise_if_cancelled(f"scoring epoch {checkpoint.epoch}")
        began = time.monotonic()
        values = _checked(checkpoint, prompts, score(checkpoint, prompts))
        scored.append(EpochScore(checkpoint.epoch, checkpoint.steps, values, time.monotonic() - began))
    best = scored[0]
    for candidate in scored[1:]:
        if _better(candidate, best):
            best = candidate
    chosen = next(c for c in epochs if c.epoch == best.epoch)
    return EpochSelection(chosen, tuple(scored), prompts, identity_backend, time.monotonic() - started)


def _checked(checkpoint: EpochCheckpoint, prompts: Sequence[ValidationPrompt], values: Sequence[float]) -> tuple[float, ...]:
    values = tuple(values)
    if len(values) != len(prompts):
        raise TrainingError(f"epoch {checkpoint.epoch}: the scorer returned {len(values)} identity value(s) for "
                            f"{len(prompts)} validation prompt(s)")
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TrainingError(f"epoch {checkpoint.epoch}: identity for validation prompt {index} "
                                f"(seed {prompts[index].seed}) is {value!r}, not a finite number")
    return tuple(float(v) for v in values)


def _better(candidate: EpochScore, best: EpochScore) -> bool:
    if abs(candidate.mean - best.mean) > _TIE:
        return candidate.mean > best.mean
    if abs(candidate.minimum - best.minimum) > _TIE:
        return candidate.minimum > best.minimum
    return False  # equal: the earlier epoch stays
