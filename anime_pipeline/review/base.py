"""The reviewer role: what every reviewer (the embedded heuristic one, the Ollama vision one)
offers the production steps, and the parts of the judgement they share so that a score means
the same thing whichever reviewer produced it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from anime_pipeline.config.schema import Character, KeyColors, ReviewThresholds
from anime_pipeline.metrics import weightfree
from anime_pipeline.imaging import Box
from anime_pipeline.review.verdict import Verdict

WEIGHTS = {"character_match": 0.5, "completeness": 0.3, "clarity": 0.2}


class Reviewer(Protocol):
    name: str  # what verdicts and metadata call it, e.g. "ollama vision (gemma3)"
    backend: str  # the show file's `backends.reviewer` value that selects it: "heuristic" or "ollama"
    device: str  # where the judgement runs: "cpu", or the GPU the vision model's server uses

    def review(self, image: np.ndarray, character: Character, face_box: Box | None, anchor: np.ndarray | None,
               others: Sequence[np.ndarray], thresholds: ReviewThresholds, duplicate_threshold: float) -> Verdict:
        """One generated image of `character` judged against its design; a near-duplicate of any
        of `others` (SSIM ≥ duplicate_threshold) is rejected whatever its score."""
        ...


def key_colors(colors: KeyColors) -> dict[str, str]:
    """Role → #rrggbb for the roles the design sets (accent is optional)."""
    return {role: color for role, color in colors.model_dump().items() if color is not None}


def combined_score(character_match: float, completeness: float, clarity: float, checks: Sequence[bool]) -> float:
    """(0.5·character_match + 0.3·completeness + 0.2·clarity) × share of `checks` passed, in [0, 1]."""
    base = (WEIGHTS["character_match"] * character_match + WEIGHTS["completeness"] * completeness
            + WEIGHTS["clarity"] * clarity)
    return min(1.0, max(0.0, base * (sum(checks) / len(checks) if checks else 1.0)))


def duplicate_rejection(image: np.ndarray, others: Sequence[np.ndarray], threshold: float) -> str | None:
    """Why `image` is rejected as a near-duplicate of some of `others`, or None when it is not one."""
    duplicates = weightfree.duplicates_of(image, others, threshold)
    if not duplicates:
        return None
    return "near-duplicate of " + ", ".join(f"others[{i}] (SSIM {s:.3f} ≥ {threshold})" for i, s in duplicates)
