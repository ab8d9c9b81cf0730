"""The weight registry, device selection and the onnxruntime build."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import pytest

from anime_pipeline.metrics import models, weightfree
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
    """SPEC §9: insightface must not drag in the CPU onnxruntime over onnxruntime-gpu."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (the metrics extra is not)")
    distributions = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert "onnxruntime-gpu" in distributions and "onnxruntime" not in distributions
    import onnxruntime

    assert onnxruntime.get_device() == "GPU"


def test_rows_without_weights_name_the_fallbacks(tmp_path):
    rows = models.model_rows(ModelStore(root=tmp_path, torch_home=tmp_path / "torch"))
    by_metric = {row.metric: row for row in rows}
    assert {"identity", "temporal_lpips", "motion_smoothness", "subject_consistency", "aesthetic",
            "temporal_flickering", "dynamic_degree", "style_adherence", "scene_continuity"} == set(by_metric)
    identity = [row for row in rows if row.metric == "identity"]
    assert [row.path for row in identity] == [tmp_path / "ccip_onnx" / "ccip-caformer-24-randaug-pruned",
                                              tmp_path / "anime_face_detection" / "face_detect_v1.4_s" / "model.onnx",
                                              tmp_path / "insightface" / "models" / "buffalo_l"]
    assert all(not row.installed and "not found" in row.missing for row in identity)
    assert {row.active for row in identity} == {weightfree.CHARACTER_BACKEND}
    assert identity[0].backend == identity[1].backend == models.ccip_backend("ccip-caformer-24-randaug-pruned",
                                                                             "face_detect_v1.4_s")
    assert by_metric["temporal_lpips"].active == weightfree.TEMPORAL_SSIM_BACKEND
    assert by_metric["motion_smoothness"].active == weightfree.BLOCK_FLOW.backend
    assert [row.path.name for row in rows if row.metric == "aesthetic"] == ["ViT-L-14.pt", "sa_0_4_vit_l_14_linear.pth"]
    assert by_metric["style_adherence"].installed and by_metric["style_adherence"].path is None


def test_rows_see_placed_weights(tmp_path):
    pytest.importorskip("lpips")
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    store.checkpoints.mkdir(parents=True)
    store.alexnet.write_bytes(b"")
    store.aesthetic_head.parent.mkdir(parents=True)
    store.aesthetic_head.write_bytes(b"")
    rows = models.model_rows(store)
    lpips_row = next(row for row in rows if row.metric == "temporal_lpips")
    assert lpips_row.installed and lpips_row.active == lpips_row.backend and lpips_row.missing == ""
    clip_row, head_row = (row for row in rows if row.metric == "aesthetic")
    assert head_row.installed and not clip_row.installed
    assert head_row.active == weightfree.AESTHETIC_PROXY_BACKEND  # the head alone is not enough


def test_placed_face_pack_is_active_on_rendered_photoreal_frames_only(tmp_path):
    pytest.importorskip("insightface")
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    store.face_pack_dir.mkdir(parents=True)
    (store.face_pack_dir / "w600k_r50.onnx").write_bytes(b"")
    ccip_row, detector_row, pack_row = (row for row in models.model_rows(store) if row.metric == "identity")
    assert pack_row.installed and not ccip_row.installed and not detector_row.installed
    palette = weightfree.CHARACTER_BACKEND
    assert pack_row.active == ccip_row.active == (
        f"{palette} on rendered drawn styles; {models.identity_backend('buffalo_l')} on rendered photoreal styles; "
        f"{palette} on previz drawings")


def test_ccip_is_active_on_drawn_styles_once_all_its_files_are_placed(tmp_path):
    pytest.importorskip("onnxruntime")
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch")
    store.ccip_dir.mkdir(parents=True)
    for name in models.CCIP_FILES[:2]:
        (store.ccip_dir / name).write_bytes(b"")
    store.anime_detector_file.parent.mkdir(parents=True)
    store.anime_detector_file.write_bytes(b"")
    ccip_row, detector_row, _ = (row for row in models.model_rows(store) if row.metric == "identity")
    assert detector_row.installed and not ccip_row.installed and "metrics.json not found" in ccip_row.missing
    assert ccip_row.active == weightfree.CHARACTER_BACKEND  # CCIP needs its threshold too
    (store.ccip_dir / "metrics.json").write_text('{"threshold": 0.178}')
    ccip_row, *_ = (row for row in models.model_rows(store) if row.metric == "identity")
    assert ccip_row.installed and ccip_row.active.startswith(f"{ccip_row.backend} on rendered drawn styles; ")
