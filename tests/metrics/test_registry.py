"""The registry: each metric's weight files, whether they are installed, and the backend that runs."""

from __future__ import annotations

import pytest

from anime_pipeline.metrics import models, registry, temporal, weightfree
from anime_pipeline.metrics.models import ModelStore


def test_rows_without_weights_name_the_fallbacks(tmp_path):
    rows = registry.model_rows(ModelStore(root=tmp_path, torch_home=tmp_path / "torch"))
    by_metric = {row.metric: row for row in rows}
    assert {"identity", "temporal_lpips", "motion_smoothness", "subject_consistency", "aesthetic",
            "temporal_flickering", "motion_floor", "frame_timing", "style_adherence", "scene_continuity"} == set(by_metric)
    identity = [row for row in rows if row.metric == "identity"]
    assert [row.path for row in identity] == [tmp_path / "ccip_onnx" / "ccip-caformer-24-randaug-pruned",
                                              tmp_path / "anime_face_detection" / "face_detect_v1.4_s" / "model.onnx",
                                              tmp_path / "insightface" / "models" / "buffalo_l"]
    assert all(not row.installed and "not found" in row.missing for row in identity)
    assert {row.active for row in identity} == {weightfree.CHARACTER_BACKEND}
    assert identity[0].backend == identity[1].backend == models.ccip_backend("ccip-caformer-24-randaug-pruned",
                                                                             "face_detect_v1.4_s")
    assert by_metric["temporal_lpips"].active == temporal.STABILITY_BACKEND
    assert by_metric["motion_floor"].active == temporal.FLOOR_BACKEND
    assert by_metric["frame_timing"].active == temporal.TIMING_BACKEND
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
    rows = registry.model_rows(store)
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
    ccip_row, detector_row, pack_row = (row for row in registry.model_rows(store) if row.metric == "identity")
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
    ccip_row, detector_row, _ = (row for row in registry.model_rows(store) if row.metric == "identity")
    assert detector_row.installed and not ccip_row.installed and "metrics.json not found" in ccip_row.missing
    assert ccip_row.active == weightfree.CHARACTER_BACKEND  # CCIP needs its threshold too
    (store.ccip_dir / "metrics.json").write_text('{"threshold": 0.178}')
    ccip_row, *_ = (row for row in registry.model_rows(store) if row.metric == "identity")
    assert ccip_row.installed and ccip_row.active.startswith(f"{ccip_row.backend} on rendered drawn styles; ")
