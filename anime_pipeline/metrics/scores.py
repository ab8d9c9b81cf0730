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

    def worst_frames(self, k: int) -> list[int]:
        """Indexes into `per_frame` of the k lowest values, lowest first (ties: earlier first)."""
        order = np.argsort(np.asarray(self.per_frame, dtype=np.float64), kind="stable")
        return [int(i) for i in order[: max(k, 0)]]
