"""Which backend each metric uses here: one row per weight file, whether it is installed, and
the weight-free fallback that runs where it is not (`anime-pipeline models`, the run's
`active_backends`). Above the metric modules, which only read the `ModelStore`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.metrics import perceptual, temporal, vbench, weightfree
from anime_pipeline.metrics.models import (CCIP_FILES, ModelStore, ccip_backend, identity_backend, identity_policy,
                                           missing_requirements)


@dataclass(frozen=True)
class ModelRow:
    """One weight file of one metric: the backend it enables, where it must be, whether it is
    there (with its packages importable), and the backend the metric uses now. Weight-free
    metrics have no path and are always installed."""

    metric: str
    backend: str
    path: Path | None
    installed: bool
    active: str
    missing: str = ""  # why it is not installed


def _pack_missing(store: ModelStore) -> str:
    missing = missing_requirements(store.face_pack_dir, ("insightface", "onnxruntime"))
    if not missing and not any(store.face_pack_dir.glob("*.onnx")):
        return f"no .onnx files in {store.face_pack_dir}"
    return missing


def _weighted(metric: str, backend: str, path: Path, missing: str, fallback: str,
              active: str | None = None) -> ModelRow:
    """A weight file's row; the metric runs `active` (default: `backend`) when nothing is missing, else `fallback`."""
    return ModelRow(metric, backend, path, not missing, fallback if missing else active or backend, missing)


def model_rows(store: ModelStore) -> list[ModelRow]:
    """Every metric: (metric, backend if installed, path, installed, active backend), one row per
    weight file; weight-free metrics get one row without a path. The active backend is the one
    the gates run (`suite.MetricSuite`). Checks files and importable packages only; nothing is loaded."""
    face = _pack_missing(store)
    ccip = missing_requirements(store.ccip_dir, ("onnxruntime",)) or "; ".join(
        filter(None, (missing_requirements(store.ccip_dir / name) for name in CCIP_FILES)))
    detector = missing_requirements(store.anime_detector_file, ("onnxruntime",))
    lpips = missing_requirements(store.alexnet, ("torch", "torchvision", "lpips"))
    amt = missing_requirements(store.amt_weights, ("torch", "vbench"))
    dino = "; ".join(filter(None, [missing_requirements(store.dino_weights, ("torch", "torchvision")),
                                   missing_requirements(store.dino_repo / "hubconf.py")]))
    clip = missing_requirements(store.clip_weights, ("torch", "open_clip"))
    head = missing_requirements(store.aesthetic_head, ("torch",))
    # the LAION score needs both files: with either missing, both rows show the proxy active
    aesthetic = weightfree.AESTHETIC_PROXY_BACKEND if clip or head else vbench.AESTHETIC_BACKEND
    arcface, anime = identity_backend(store.face_pack), ccip_backend(store.ccip_model, store.anime_detector)
    identity_active = identity_policy(None if ccip or detector else anime, None if face else arcface)
    weight_free = [("temporal_flickering", temporal.FLICKER_BACKEND), ("motion_floor", temporal.FLOOR_BACKEND),
                   ("frame_timing", temporal.TIMING_BACKEND), ("style_adherence", weightfree.STYLE_BACKEND),
                   ("scene_continuity", weightfree.CONTINUITY_BACKEND)]
    return [
        _weighted("identity", anime, store.ccip_dir, ccip, identity_active, identity_active),
        _weighted("identity", anime, store.anime_detector_file, detector, identity_active, identity_active),
        _weighted("identity", arcface, store.face_pack_dir, face, identity_active, identity_active),
        _weighted("temporal_lpips", perceptual.LPIPS_BACKEND, store.alexnet, lpips, temporal.STABILITY_BACKEND),
        _weighted("motion_smoothness", vbench.AMT_BACKEND, store.amt_weights, amt, weightfree.BLOCK_FLOW.backend),
        _weighted("subject_consistency", vbench.DINO_BACKEND, store.dino_weights, dino,
                  weightfree.PALETTE_CONSISTENCY_BACKEND),
        _weighted("aesthetic", vbench.AESTHETIC_BACKEND, store.clip_weights, clip, aesthetic, aesthetic),
        _weighted("aesthetic", vbench.AESTHETIC_BACKEND, store.aesthetic_head, head, aesthetic, aesthetic),
        *(ModelRow(metric, backend, None, True, backend) for metric, backend in weight_free),
    ]
