"""The metrics the gates run: each model-based one where its weights are installed, else its
weight-free fallback, with the backend that computed it in every Score.

Models are loaded on first use and kept for the process (one suite per `ModelStore`); a model
that cannot load (missing, corrupt) is remembered as unavailable, with the reason, and not
retried in the same process. Identity is the one choice that also depends on the frames: ArcFace runs on rendered
frames, never on previz drawings (a face detector trained on photos and renders does not see
flat drawn faces), so those always use the palette signature.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from anime_pipeline.drawings import is_previz
from anime_pipeline.imaging import Box
from anime_pipeline.metrics import identity, perceptual, vbench, weightfree
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable
from anime_pipeline.metrics.scores import Score

LOADERS: dict[str, Callable[[ModelStore], Any]] = {
    "identity": identity.load_face_model,
    "temporal_lpips": perceptual.load_lpips,
    "motion_smoothness": vbench.load_amt,
    "subject_consistency": vbench.load_dino,
    "aesthetic": vbench.load_aesthetic,
}


@dataclass
class MetricSuite:
    """The gates' metrics over one ModelStore. `preloaded` hands in models by metric name (as
    LOADERS would return them), so tests run the model-based paths with tiny networks."""

    store: ModelStore
    preloaded: Mapping[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # metric → why its model is not used
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    def model(self, metric: str) -> Any | None:
        """The metric's model, loaded once; None (reason in `unavailable`) when it cannot load."""
        if metric in self.preloaded:
            return self.preloaded[metric]
        if metric not in self._models and metric not in self.unavailable:
            try:
                self._models[metric] = LOADERS[metric](self.store)
            except ModelUnavailable as error:
                self.unavailable[metric] = str(error)
            except Exception as error:  # a corrupt or incompatible weight file: fall back, say why
                self.unavailable[metric] = f"{metric} model failed to load: {type(error).__name__}: {error}"
        return self._models.get(metric)

    def face_model(self, renderer_backend: str) -> identity.FaceModel | None:
        """ArcFace for images of a real renderer where a pack is installed; None for previz
        drawings (`is_previz`) or without a pack."""
        return None if is_previz(renderer_backend) else self.model("identity")

    def temporal_change(self, frames: Sequence[np.ndarray]) -> Score:
        """Temporal LPIPS (AlexNet) over consecutive frames, else 1 − SSIM (`weightfree.temporal_change`)."""
        model = self.model("temporal_lpips")
        return perceptual.temporal_lpips(frames, model) if model else weightfree.temporal_change(frames)

    def motion_smoothness(self, frames: Sequence[np.ndarray]) -> Score:
        """VBench motion smoothness with AMT-S, else with the block-matching flow interpolator."""
        return weightfree.motion_smoothness(frames, self.model("motion_smoothness") or weightfree.BLOCK_FLOW)

    def subject_consistency(self, frames: Sequence[np.ndarray]) -> Score:
        """VBench subject consistency on DINO ViT-B/16 features, else on palette signatures."""
        extract = self.model("subject_consistency")
        if extract is None:
            return vbench.weightfree_subject_consistency(frames)
        return vbench.subject_consistency(frames, extract, vbench.DINO_BACKEND)

    def aesthetic(self, images: Sequence[np.ndarray]) -> Score:
        """LAION aesthetic score (0–10), else the weight-free proxy on the same scale."""
        loaded = self.model("aesthetic")
        return vbench.aesthetic_quality(images, *loaded) if loaded else weightfree.aesthetic_proxy(images)


@cache
def suite_for(store: ModelStore) -> MetricSuite:
    """The process-wide suite of a store, so each model loads once per process."""
    return MetricSuite(store)


@dataclass(frozen=True)
class Anchor:
    """A character's identity anchors: the palette signature's always, ArcFace's where the
    reference renders were measured with a face pack."""

    palette: np.ndarray
    arcface: np.ndarray | None = None

    def as_lists(self) -> dict[str, list[float] | None]:
        return {"palette": self.palette.tolist(), "arcface": None if self.arcface is None else self.arcface.tolist()}


def clip_identity(frames: Sequence[np.ndarray], face_boxes: Sequence[Mapping[str, Box]], anchors: Mapping[str, Anchor],
                  faces: identity.FaceModel | None) -> dict[str, Score]:
    """Per character, its identity Score over the clip: ArcFace (detect, align, embed, assign)
    when `faces` is given and every character has an ArcFace anchor, else the palette signature
    inside the renderer's face boxes."""
    if faces is not None and anchors and all(a.arcface is not None for a in anchors.values()):
        return identity.arcface_identity(frames, {slug: a.arcface for slug, a in anchors.items()}, faces)
    return {slug: weightfree.identity_score(frames, [boxes.get(slug) for boxes in face_boxes], anchor.palette)
            for slug, anchor in anchors.items()}


def image_identity(image: np.ndarray, box: Box | None, anchor: Anchor, faces: identity.FaceModel | None) -> tuple[float, str]:
    """(cosine to the anchor, backend) of one still: the largest ArcFace face when `faces` and an
    ArcFace anchor are given (0 when it finds none), else the palette signature inside `box` (the
    whole image when the renderer gave no box)."""
    if faces is not None and anchor.arcface is not None:
        embedding = identity.reference_embedding(faces, image)
        return (0.0 if embedding is None else weightfree.cosine(embedding, anchor.arcface)), faces.backend
    palette = weightfree.palette_signature(image, box)
    return weightfree.cosine(palette, anchor.palette), weightfree.PALETTE_BACKEND
