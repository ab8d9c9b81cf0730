"""VBench dimensions (protocols §5) over pluggable models, and the loaders of VBench's own models.

The formulas take any feature extractor or interpolator, so they are tested with tiny networks
and run weight-free with stand-ins; the loaders read pre-placed weights (`models.ModelStore`)
and raise ModelUnavailable, never download. Temporal flickering and the motion-smoothness
formula live in `weightfree` (they need no model); `load_amt` supplies VBench's interpolator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable, missing_requirements, torch_device
from anime_pipeline.metrics.scores import Score

FeatureExtractor = Callable[[Sequence[np.ndarray]], np.ndarray]  # N RGB uint8 frames → N×D features

DINO_BACKEND = "VBench subject consistency, DINO ViT-B/16"
AESTHETIC_BACKEND = "VBench aesthetic quality, LAION aesthetic v1 on CLIP ViT-L/14"
AMT_BACKEND = "VBench motion smoothness formula, AMT-S interpolator"
AMT_MODULE = "vbench.third_party.amt.networks.AMT-S"  # AMT's architecture as the vbench package ships it
AMT_PARAMS = {"corr_radius": 3, "corr_lvls": 4, "num_flows": 3}  # cfgs/AMT-S.yaml
AMT_DIVISOR = 16
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224
BATCH = 16


def _unit_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


# --- subject consistency ------------------------------------------------------------------

def subject_consistency(frames: Sequence[np.ndarray], extract: FeatureExtractor, backend: str) -> Score:
    """VBench: d_i = extract(f_i)/‖·‖₂; per_frame[i−1] = ½·[max(0, d_{i−1}·d_i) + max(0, d_0·d_i)]
    for i = 1..N−1; value = their mean. VBench's extractor is DINO ViT-B/16 (`load_dino`);
    `weightfree.palette_features` is the weight-free one (`weightfree_subject_consistency`)."""
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames, got {len(frames)}")
    return feature_consistency(extract(frames), backend)


def feature_consistency(features: np.ndarray, backend: str) -> Score:
    """`subject_consistency` from the frames' features (N × D, one row a frame, in order)."""
    if len(features) < 2:
        raise ValueError(f"need at least 2 frames, got {len(features)}")
    d = _unit_rows(features)
    previous = np.maximum(0.0, np.einsum("ij,ij->i", d[:-1], d[1:]))
    first = np.maximum(0.0, d[1:] @ d[0])
    per_frame = 0.5 * (previous + first)
    return Score("subject_consistency", float(per_frame.mean()), backend, tuple(per_frame.tolist()))


def weightfree_subject_consistency(frames: Sequence[np.ndarray]) -> Score:
    """The subject-consistency formula over whole-frame palette signatures (no DINO weights)."""
    return subject_consistency(frames, weightfree.palette_features, weightfree.PALETTE_CONSISTENCY_BACKEND)


def _torch_frames(frames: Sequence[np.ndarray]) -> Any:
    import torch

    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # T×C×H×W uint8, like decord


def dino_transform(frames: Sequence[np.ndarray]) -> Any:
    """VBench's dino_transform(224): short side → 224 (bilinear, antialias=False, no crop) on the
    uint8 tensor, /255, ImageNet mean/std."""
    from torchvision.transforms import functional as tf

    resized = tf.resize(_torch_frames(frames), INPUT_SIZE, antialias=False)
    return tf.normalize(resized.float().div(255.0), IMAGENET_MEAN, IMAGENET_STD)


def clip_transform(frames: Sequence[np.ndarray]) -> Any:
    """VBench's clip_transform(224): short side → 224 (bicubic, antialias=False) on the uint8
    tensor, centre crop 224, /255, CLIP mean/std."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tf

    resized = tf.resize(_torch_frames(frames), INPUT_SIZE, InterpolationMode.BICUBIC, antialias=False)
    return tf.normalize(tf.center_crop(resized, INPUT_SIZE).float().div(255.0), CLIP_MEAN, CLIP_STD)


def torch_extractor(model: Any, transform: Callable[[Sequence[np.ndarray]], Any], device: str) -> FeatureExtractor:
    """A FeatureExtractor running `model(transform(frames))` on `device` in batches of 16."""
    import torch

    def extract(frames: Sequence[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            parts = [model(transform(frames[i:i + BATCH]).to(device)).float().cpu().numpy()
                     for i in range(0, len(frames), BATCH)]
        return np.concatenate(parts)

    return extract


def _require(what: str, *problems: str) -> None:
    """Raise ModelUnavailable listing the non-empty `problems` (from missing_requirements)."""
    found = "; ".join(problem for problem in problems if problem)
    if found:
        raise ModelUnavailable(f"{what} unavailable: {found}")


def load_dino(store: ModelStore) -> FeatureExtractor:
    """DINO ViT-B/16 as VBench loads it: torch.hub from the pre-placed repository (source="local",
    pretrained=False, so hub never downloads), weights from dino_vitbase16_pretrain.pth; CLS
    features of `dino_transform`ed frames."""
    _require("DINO", missing_requirements(store.dino_repo / "hubconf.py"),
             missing_requirements(store.dino_weights, ("torch", "torchvision")))
    import torch

    model = torch.hub.load(str(store.dino_repo), "dino_vitb16", source="local", pretrained=False)
    model.load_state_dict(torch.load(store.dino_weights, map_location="cpu", weights_only=True), strict=True)
    device = torch_device(store.device)
    return torch_extractor(model.eval().to(device), dino_transform, device)


# --- aesthetic quality ----------------------------------------------------------------------

@dataclass(frozen=True)
class LinearHead:
    """The LAION aesthetic predictor: score = features · weight + bias on L2-normalised features."""

    weight: np.ndarray  # D
    bias: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return features @ self.weight + self.bias


def aesthetic_quality(images: Sequence[np.ndarray], extract: FeatureExtractor, head: LinearHead,
                      backend: str = AESTHETIC_BACKEND) -> Score:
    """LAION aesthetic score: per_frame[i] = head(extract(image_i)/‖·‖₂) on the LAION 0–10 scale;
    value = their mean (the Phase 1 gate compares it with 5.5); details["vbench"] = value/10,
    VBench's aesthetic-quality dimension."""
    if not images:
        raise ValueError("need at least one image")
    scores = head(_unit_rows(np.asarray(extract(images), dtype=np.float32)))
    value = float(np.mean(scores))
    return Score("aesthetic", value, backend, tuple(float(s) for s in scores), {"vbench": value / 10.0})


def load_aesthetic(store: ModelStore) -> tuple[FeatureExtractor, LinearHead]:
    """CLIP ViT-L/14 (OpenAI's archive, loaded by open_clip from the file: no download) with
    `clip_transform`, and the LAION head from sa_0_4_vit_l_14_linear.pth (keys weight, bias)."""
    _require("aesthetic model", missing_requirements(store.clip_weights, ("torch", "open_clip")),
             missing_requirements(store.aesthetic_head))
    import open_clip
    import torch

    device = torch_device(store.device)
    model = open_clip.load_openai_model(str(store.clip_weights), precision="fp32", device=device).eval()
    state = torch.load(store.aesthetic_head, map_location="cpu", weights_only=True)
    head = LinearHead(state["weight"].float().numpy().reshape(-1), float(state["bias"].reshape(-1)[0]))
    return torch_extractor(model.encode_image, clip_transform, device), head


# --- motion smoothness: VBench's interpolator ------------------------------------------------

def _pad_to(tensor: Any, divisor: int) -> tuple[Any, tuple[int, int, int, int]]:
    """Replicate-pad H and W up to a multiple of `divisor`, split evenly (AMT's InputPadder)."""
    import torch.nn.functional as F

    height, width = tensor.shape[-2:]
    pad_h, pad_w = -height % divisor, -width % divisor
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(tensor, pad, mode="replicate"), pad


def amt_interpolator(model: Any, device: str) -> weightfree.Interpolator:
    """VBench's use of AMT: frames as (1, 3, H, W)/255, padded to a multiple of 16, embt = ½,
    scale 1, output clip(x·255, 0, 255) truncated to uint8."""
    import torch

    embt = torch.tensor(0.5).view(1, 1, 1, 1).to(device)

    def midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pair = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float().div(255.0).to(device)
        padded, (left, right, top, bottom) = _pad_to(pair, AMT_DIVISOR)
        with torch.inference_mode():
            out = model(padded[:1], padded[1:], embt, scale_factor=1.0, eval=True)["imgt_pred"][0]
        out = out[:, top:out.shape[1] - bottom, left:out.shape[2] - right]
        return np.clip(out.permute(1, 2, 0).cpu().numpy() * 255.0, 0, 255).astype(np.uint8)

    return weightfree.Interpolator("AMT-S", AMT_BACKEND, midpoint)


def load_amt(store: ModelStore) -> weightfree.Interpolator:
    """AMT-S from amt-s.pth (checkpoint key "state_dict"), architecture from the `vbench` package.
    Without that package AMT is unavailable: its code is not reimplemented here."""
    _require("AMT-S", missing_requirements(store.amt_weights, ("torch", "vbench")))
    import torch

    try:
        architecture = importlib.import_module(AMT_MODULE)
    except Exception as error:  # vbench imports many optional packages at import time
        raise ModelUnavailable(f"AMT-S unavailable: cannot import {AMT_MODULE}: {error}") from error
    model = architecture.Model(**AMT_PARAMS)
    model.load_state_dict(torch.load(store.amt_weights, map_location="cpu", weights_only=False)["state_dict"])
    device = torch_device(store.device)
    return amt_interpolator(model.eval().to(device), device)
