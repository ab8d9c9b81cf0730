"""Temporal LPIPS: the perceptual change between consecutive frames (the `lpips` package, AlexNet).

Definition (no-reference, protocols §6 (b)): `lpips_distances` gives LPIPS(a_i, b_i) per pair,
frames as NCHW RGB scaled to [−1, 1] (x/127.5 − 1, `lpips.im2tensor`). Lower means less change
between the two: flicker or instability, but also real motion between raw consecutive frames, so
the gate measures it between motion-compensated pairs, worst pair (`temporal.compensated_lpips`),
next to a motion floor that a still cannot pass (`temporal.motion_floor`).

LPIPS v0.1's linear heads ship inside the `lpips` package; its AlexNet backbone does not. It is
read from `$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth` and never downloaded: the
model is built with a random backbone (`pnet_rand=True`) and the checkpoint loaded into it.
Without the file the metric is unavailable and the caller uses the weight-free stand-in
(`temporal.temporal_stability`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anime_pipeline.metrics.models import ModelStore, ModelUnavailable, torch_device

LPIPS_BACKEND = "LPIPS (AlexNet, lpips v0.1)"
RANDOM_BACKEND = "LPIPS (random AlexNet backbone: for tests and timing only)"
BATCH = 8  # frame pairs per forward pass: bounded memory at 512² and above


@dataclass(frozen=True)
class LpipsModel:
    """An `lpips.LPIPS` module in eval mode on `device`, and the backend string it reports."""

    module: Any
    device: str
    backend: str


def _build(device: str) -> Any:
    import lpips

    with warnings.catch_warnings():  # lpips 0.1.4 still passes torchvision's deprecated `pretrained=`
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        # pnet_rand=True: torchvision must not fetch ImageNet weights; the backbone comes from disk
        module = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    return module.eval().to(device)


def _alexnet_into_lpips(module: Any, state: dict[str, Any]) -> None:
    """Load torchvision AlexNet weights ("features.<i>.weight/bias") into LPIPS' backbone, whose
    slices keep torchvision's layer indexes ("slice<k>.<i>.…")."""
    slice_of = {index: name for name, part in module.net.named_children() for index, _ in part.named_children()}
    features = {key: value for key, value in state.items() if key.startswith("features.")}
    remapped = {}
    for key, value in features.items():
        _, index, param = key.split(".")
        remapped[f"{slice_of[index]}.{index}.{param}"] = value
    module.net.load_state_dict(remapped, strict=True)


def load_lpips(store: ModelStore) -> LpipsModel:
    """LPIPS with the AlexNet backbone from the store's torch home, on the configured device
    (CPU when CUDA is not available). Raises ModelUnavailable when the checkpoint or the
    packages are missing."""
    if not store.alexnet.is_file():
        raise ModelUnavailable(f"LPIPS backbone {store.alexnet} not found")
    try:
        import torch
    except ImportError as error:
        raise ModelUnavailable(f"LPIPS needs torch: {error}") from error
    device = torch_device(store.device)
    module = _build("cpu")
    _alexnet_into_lpips(module, torch.load(store.alexnet, map_location="cpu", weights_only=True))
    return LpipsModel(module.to(device), device, LPIPS_BACKEND)


def random_lpips(device: str = "cpu") -> LpipsModel:
    """LPIPS with a randomly initialised backbone (torch's global RNG): it has the cost of the
    real metric, not its meaning. For tests and benchmarks only; its backend says so."""
    return LpipsModel(_build(device), device, RANDOM_BACKEND)


def _tensor(frames: Sequence[np.ndarray], device: str) -> Any:
    """NCHW float32 in [−1, 1], computed as lpips.im2tensor does (in float64, then cast)."""
    import torch

    scaled = (np.stack(frames) / 127.5 - 1.0).astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(scaled)).to(device)


def lpips_distances(firsts: Sequence[np.ndarray], seconds: Sequence[np.ndarray], model: LpipsModel) -> list[float]:
    """LPIPS(firsts[i], seconds[i]) for each i, in batches of BATCH pairs."""
    import torch

    distances: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(firsts), BATCH):
            first = _tensor(firsts[start:start + BATCH], model.device)
            second = _tensor(seconds[start:start + BATCH], model.device)
            distances += model.module(first, second).flatten().tolist()
    return distances
