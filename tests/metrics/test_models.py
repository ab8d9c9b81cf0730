"""The weight store, device selection and the onnxruntime build."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest

from anime_pipeline.metrics import models
from anime_pipeline.metrics.models import ModelStore


def test_store_reads_the_environment(tmp_path):
    store = ModelStore.from_env({"ANIME_PIPELINE_MODELS": str(tmp_path), "ANIME_PIPELINE_METRICS_DEVICE": "cuda:1"})
    assert store.root == tmp_path and store.torch_home == tmp_path / "torch" and store.device == "cuda:1"
    assert store.face_pack_dir == tmp_path / "insightface" / "models" / "buffalo_l"
    assert store.alexnet == tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    own_home = ModelStore.from_env({"ANIME_PIPELINE_MODELS": str(tmp_path), "TORCH_HOME": "/opt/torch",
                                    "ANIME_PIPELINE_FACE_PACK": "antelopev2"})
    assert own_home.torch_home == Path("/opt/torch") and own_home.face_pack == "antelopev2"
    assert ModelStore.from_env({}).root == Path("models").absolute()


def test_anime_identity_models_live_in_the_hub_repositories_layout(tmp_path):
    store = ModelStore.from_env({"ANIME_PIPELINE_MODELS": str(tmp_path)})
    assert store.ccip_dir == tmp_path / "ccip_onnx" / "ccip-caformer-24-randaug-pruned"
    assert store.anime_detector_file == tmp_path / "anime_face_detection" / "face_detect_v1.4_s" / "model.onnx"
    chosen = ModelStore.from_env({"ANIME_PIPELINE_MODELS": str(tmp_path), "ANIME_PIPELINE_CCIP_MODEL": "ccip-caformer-5_fp32",
                                  "ANIME_PIPELINE_ANIME_DETECTOR": "head_detect_v0_s"})
    assert chosen.ccip_dir == tmp_path / "ccip_onnx" / "ccip-caformer-5_fp32"
    assert chosen.anime_detector_file == tmp_path / "anime_head_detection" / "head_detect_v0_s" / "model.onnx"


@pytest.mark.parametrize("device, index", [("cpu", None), ("cuda", 0), ("cuda:2", 2), ("1", 1), ("mps", None)])
def test_cuda_index(device, index):
    assert models.cuda_index(device) == index


def test_torch_falls_back_to_cpu_without_a_gpu():
    torch = pytest.importorskip("torch")
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert models.torch_device("cuda:0") == expected
    assert models.torch_device("cpu") == "cpu"


def test_onnx_providers_are_explicit(monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert models.onnx_providers("cuda:1") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert models.onnx_provider_options(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda:1") == [
        {"device_id": "1"}, {}]
    assert models.onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert models.onnx_providers("cuda") == ["CPUExecutionProvider"]


def test_the_gpu_onnxruntime_is_the_one_installed():
    """insightface must not drag in the CPU onnxruntime over onnxruntime-gpu."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (the metrics extra is not)")
    distributions = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert "onnxruntime-gpu" in distributions and "onnxruntime" not in distributions
    import onnxruntime

    assert onnxruntime.get_device() == "GPU"
