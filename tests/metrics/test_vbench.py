"""VBench formulas checked by hand on tiny extractors, heads and interpolators, and the loaders."""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest

from anime_pipeline.metrics import vbench
from anime_pipeline.metrics import weightfree as wf
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable

S = np.sqrt(0.5)


def frames_with_ids(n: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), i, np.uint8) for i in range(n)]


def lookup(vectors: list[tuple[float, ...]]):
    """A feature extractor that maps frame i (filled with value i) to vectors[i]."""
    return lambda frames: np.array([vectors[int(f[0, 0, 0])] for f in frames], dtype=float)


def test_subject_consistency_by_hand():
    # d0 = x, d1 = 45°, d2 = y, d3 = −x (lengths do not matter: features are normalised)
    extract = lookup([(2, 0), (1, 1), (0, 3), (-1, 0)])
    score = vbench.subject_consistency(frames_with_ids(4), extract, "tiny")
    # i=1: ½(cos45 + cos45); i=2: ½(cos45 + cos90); i=3: ½(max(0, cos90) + max(0, cos180))
    assert score.per_frame == pytest.approx((S, S / 2, 0.0))
    assert score.value == pytest.approx((S + S / 2) / 3)
    assert score.backend == "tiny"
    with pytest.raises(ValueError):
        vbench.subject_consistency(frames_with_ids(1), extract, "tiny")


def test_weightfree_subject_consistency_of_a_static_clip_is_one():
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    score = vbench.weightfree_subject_consistency([frame] * 4)
    assert score.value == pytest.approx(1.0)
    assert score.backend == wf.PALETTE_CONSISTENCY_BACKEND


def test_aesthetic_formula_with_a_tiny_head():
    head = vbench.LinearHead(np.array([4.0, 2.0]), 5.0)
    extract = lookup([(3, 4), (0, 2)])  # unit: (0.6, 0.8) → 2.4 + 1.6 + 5 = 9; (0, 1) → 2 + 5 = 7
    score = vbench.aesthetic_quality(frames_with_ids(2), extract, head)
    assert score.per_frame == pytest.approx((9.0, 7.0))
    assert score.value == pytest.approx(8.0) and score.details["vbench"] == pytest.approx(0.8)
    assert score.backend == vbench.AESTHETIC_BACKEND


def test_aesthetic_and_amt_and_dino_are_unavailable_without_weights(tmp_path):
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    for load, name in ((vbench.load_aesthetic, "ViT-L-14.pt"), (vbench.load_amt, "amt-s.pth"),
                       (vbench.load_dino, "hubconf.py")):
        with pytest.raises(ModelUnavailable, match=name):
            load(store)


# --- torch parts --------------------------------------------------------------------------

def test_dino_transform_resizes_the_short_side_without_cropping():
    torch = pytest.importorskip("torch")
    frames = [np.full((64, 96, 3), 255, np.uint8)]
    batch = vbench.dino_transform(frames)
    assert tuple(batch.shape) == (1, 3, 224, 336)
    assert torch.allclose(batch[0, :, 0, 0], (1 - torch.tensor(vbench.IMAGENET_MEAN)) / torch.tensor(vbench.IMAGENET_STD))
    assert tuple(vbench.clip_transform(frames).shape) == (1, 3, 224, 224)


HUBCONF = textwrap.dedent('''
    import torch

    def dino_vitb16(pretrained=True, **kwargs):
        if pretrained:
            raise AssertionError("the hub entry point must not fetch weights")
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten())
''')


def test_dino_loads_from_the_local_hub_repo_and_feeds_the_formula(tmp_path):
    torch = pytest.importorskip("torch")
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    store.dino_repo.mkdir(parents=True)
    (store.dino_repo / "hubconf.py").write_text(HUBCONF)
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.AdaptiveAvgPool2d(1),
                                  torch.nn.Flatten())
    store.checkpoints.mkdir(parents=True)
    torch.save(network.state_dict(), store.dino_weights)
    frames = [np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8) for i in range(3)]

    score = vbench.subject_consistency(frames, vbench.load_dino(store), vbench.DINO_BACKEND)
    with torch.no_grad():
        d = torch.nn.functional.normalize(network(vbench.dino_transform(frames)), dim=-1).double()
    expected = [0.5 * (max(0.0, float(d[i - 1] @ d[i])) + max(0.0, float(d[0] @ d[i]))) for i in (1, 2)]
    assert score.per_frame == pytest.approx(expected, abs=1e-6)
    assert score.value == pytest.approx(np.mean(expected), abs=1e-6)


def test_amt_interpolator_pads_to_16_and_truncates_like_vbench():
    pytest.importorskip("torch")
    seen = []

    def fake_amt(img0, img1, embt, scale_factor=1.0, eval=False):
        seen.append((tuple(img0.shape), float(embt), scale_factor, eval))
        return {"imgt_pred": (img0 + img1) / 2}

    interpolator = vbench.amt_interpolator(fake_amt, "cpu")
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(2))
    middle = interpolator.midpoint(a, b)
    assert seen == [((1, 3, 32, 32), 0.5, 1.0, True)]
    expected = np.clip(((a / np.float32(255) + b / np.float32(255)) / 2) * 255, 0, 255).astype(np.uint8)
    assert np.abs(middle.astype(int) - expected).max() <= 1  # float32 rounding at the truncation
    assert middle.shape == a.shape and interpolator.backend == vbench.AMT_BACKEND
    score = wf.motion_smoothness([a, b, a], interpolator)
    assert score.details["interpolator"] == "AMT-S"


def test_amt_needs_the_vbench_package(tmp_path):
    pytest.importorskip("torch")
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    store.amt_weights.parent.mkdir(parents=True)
    store.amt_weights.write_bytes(b"not used")
    if importlib.util.find_spec("vbench") is not None:
        pytest.skip("the vbench package is installed here")
    with pytest.raises(ModelUnavailable, match="package vbench not installed"):
        vbench.load_amt(store)
