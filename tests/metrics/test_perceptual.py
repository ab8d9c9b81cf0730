"""Temporal LPIPS against the `lpips` package itself, on tensors it builds the same way."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lpips = pytest.importorskip("lpips")
torchvision = pytest.importorskip("torchvision")

from anime_pipeline.metrics import perceptual  # noqa: E402
from anime_pipeline.metrics.models import ALEXNET_FILE, ModelStore, ModelUnavailable  # noqa: E402

# the reference lpips.LPIPS passes torchvision's deprecated `pretrained=`
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:torchvision")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Weights are never fetched: any attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def clip(n: int = 5, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return [np.clip(base.astype(int) + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


def reference_distances(module, frames: list[np.ndarray]) -> list[float]:
    tensors = [lpips.im2tensor(frame) for frame in frames]  # x/127.5 − 1, NCHW
    with torch.no_grad():
        return [float(module(a, b)) for a, b in zip(tensors, tensors[1:])]


def test_random_backbone_wrapper_returns_what_lpips_returns():
    frames = clip(11)  # more pairs than one batch
    torch.manual_seed(7)
    model = perceptual.random_lpips()
    torch.manual_seed(7)
    reference = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    distances = perceptual.lpips_distances(frames[:-1], frames[1:], model)
    assert distances == pytest.approx(reference_distances(reference, frames), rel=1e-6, abs=1e-7)
    assert model.backend == perceptual.RANDOM_BACKEND and model.device == "cpu"


def test_identical_frames_have_zero_lpips():
    torch.manual_seed(0)
    frames = clip(1) * 3
    assert perceptual.lpips_distances(frames[:-1], frames[1:], perceptual.random_lpips()) == [0.0, 0.0]


def test_backbone_loaded_from_torch_home_matches_lpips_own_pretrained_path(tmp_path, monkeypatch):
    torch.manual_seed(3)
    checkpoint = tmp_path / "torch" / "hub" / "checkpoints" / ALEXNET_FILE
    checkpoint.parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), checkpoint)
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    model = perceptual.load_lpips(store)
    assert model.backend == perceptual.LPIPS_BACKEND and model.device == "cpu"
    # lpips' own pretrained path reads the same file from the torch hub cache
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    frames = clip(4, seed=1)
    assert perceptual.lpips_distances(frames[:-1], frames[1:], model) == pytest.approx(
        reference_distances(reference, frames), rel=1e-6, abs=1e-7)


def test_missing_backbone_makes_lpips_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match=ALEXNET_FILE):
        perceptual.load_lpips(ModelStore(root=tmp_path, torch_home=tmp_path / "torch"))
