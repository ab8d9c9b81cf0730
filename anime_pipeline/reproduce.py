"""Reproduce a recorded shot: rebuild its render request from the manifest, render again, compare frames.

The deterministic previz backend gives identical pixels; a ComfyUI server given the same graph
(same hash) and the same models should too, and where it does not, the report says which
frames differ and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anime_pipeline.config.project import ShotRef
from anime_pipeline.imaging import load_png
from anime_pipeline.production.shot_clip import ShotManifest, frame_paths
from anime_pipeline.render.base import Renderer


@dataclass(frozen=True)
class Reproduction:
    frames: int
    identical_frames: int
    max_abs_difference: int
    graph_hash_recorded: str | None
    graph_hash_now: str | None

    @property
    def identical(self) -> bool:
        return self.identical_frames == self.frames

    def summary(self) -> str:
        text = (f"{self.identical_frames}/{self.frames} frames identical"
                f"{'' if self.identical else f', largest pixel difference {self.max_abs_difference}'}")
        if self.graph_hash_recorded:
            same = self.graph_hash_recorded == self.graph_hash_now
            text += f"; submitted graph {'identical' if same else 'DIFFERS'} (sha256 {self.graph_hash_now})"
        return text


def reproduce_shot(ref: ShotRef, shot_dir: Path, manifest: ShotManifest, renderer: Renderer) -> Reproduction:
    """Render the chosen attempt's recorded request again and compare it with the saved frames,
    frame by frame as the render streams (one rendered and one saved frame in memory)."""
    attempt = manifest.chosen
    clip = renderer.stream_clip(attempt.request.request(ref.characters(), shot_dir))
    saved = frame_paths(shot_dir)
    if len(saved) != clip.n_frames:
        raise ValueError(f"{ref.key}: recorded {len(saved)} frames, the reproduction makes {clip.n_frames}")
    differences = [int(np.abs(load_png(path).astype(np.int16) - frame.image.astype(np.int16)).max())
                   for path, frame in zip(saved, clip.frames, strict=True)]
    return Reproduction(len(saved), sum(d == 0 for d in differences), max(differences),
                        attempt.renderer_params.get("graph_sha256"), clip.params.get("graph_sha256"))
