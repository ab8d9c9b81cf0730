"""The result type every metric returns, whichever backend computed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Score:
    """One measurement: its overall `value`, the `backend` that produced it (so a weight-free
    stand-in is never mistaken for the model-based metric) and, for clips, per-frame values.

    What `per_frame` indexes (frames, consecutive pairs, interpolated frames) is stated by each
    metric's docstring.
    """

    name: str
    value: float
    backend: str
    per_frame: tuple[float, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    higher_is_worse: bool = False  # per_frame's direction: True for changes and errors (LPIPS, timing)

    def worst_frames(self, k: int, higher_is_worse: bool | None = None) -> list[int]:
        """Indexes into `per_frame` of the k worst values, worst first (ties: earlier first): the
        lowest, or the highest for measures where more is worse (by default the Score's own
        `higher_is_worse`)."""
        values = np.asarray(self.per_frame, dtype=np.float64)
        higher = self.higher_is_worse if higher_is_worse is None else higher_is_worse
        order = np.argsort(-values if higher else values, kind="stable")
        return [int(i) for i in order[: max(k, 0)]]

    @property
    def worst(self) -> float | None:
        """The worst per-frame value (None without per-frame values)."""
        if not self.per_frame:
            return None
        return float(max(self.per_frame) if self.higher_is_worse else min(self.per_frame))
