"""The gates' metric suite: model-based where weights are installed, weight-free otherwise, and
the backend of every score says which."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.metrics import suite as suite_module
from anime_pipeline.metrics import vbench, weightfree
from anime_pipeline.metrics.models import ModelUnavailable
from anime_pipeline.metrics.suite import Anchor, MetricSuite, clip_identity, image_identity
from conftest import empty_store

COMFYUI, PREVIZ = "comfyui 0.3.10 (http://gpu:8188)", "previz (embedded, CPU)"
FRAMES = [np.full((32, 32, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)]


def test_without_weights_every_metric_falls_back_and_says_why(weight_free):
    assert weight_free.temporal_change(FRAMES).backend == weightfree.TEMPORAL_SSIM_BACKEND
    assert weight_free.motion_smoothness(FRAMES).backend == weightfree.FLOW_SMOOTHNESS_BACKEND
    assert weight_free.subject_consistency(FRAMES).backend == weightfree.PALETTE_CONSISTENCY_BACKEND
    assert weight_free.aesthetic(FRAMES[:1]).backend == weightfree.AESTHETIC_PROXY_BACKEND
    assert weight_free.face_model(COMFYUI) is None
    assert set(weight_free.unavailable) == {"temporal_lpips", "motion_smoothness", "subject_consistency",
                                            "aesthetic", "identity"}
    assert "not found" in weight_free.unavailable["temporal_lpips"]


def test_a_model_that_cannot_load_is_tried_once(tmp_path, monkeypatch):
    calls = []

    def missing(store):
        calls.append(store)
        raise ModelUnavailable("AMT-S unavailable: amt-s.pth not found")

    monkeypatch.setitem(suite_module.LOADERS, "motion_smoothness", missing)
    suite = MetricSuite(empty_store(tmp_path))
    suite.motion_smoothness(FRAMES)
    suite.motion_smoothness(FRAMES)
    assert len(calls) == 1 and suite.unavailable["motion_smoothness"].startswith("AMT-S unavailable")


def test_installed_models_replace_the_fallbacks(tmp_path):
    reversed_blend = weightfree.Interpolator("tiny", "tiny interpolator", lambda a, b: b)
    extract = lambda frames: np.stack([f.reshape(-1)[:3].astype(float) + [1, 0, 0] for f in frames])  # noqa: E731
    head = vbench.LinearHead(np.array([3.0, 0.0, 0.0]), 1.0)
    suite = MetricSuite(empty_store(tmp_path), preloaded={
        "motion_smoothness": reversed_blend, "subject_consistency": extract, "aesthetic": (extract, head)})

    smooth = suite.motion_smoothness(FRAMES)
    assert smooth.backend == "tiny interpolator" and smooth.details["interpolator"] == "tiny"
    assert smooth.value == pytest.approx((255 - 10) / 255)  # odd frame 20 vs the "midpoint" 30, then 40 vs 50
    assert suite.subject_consistency(FRAMES).backend == vbench.DINO_BACKEND
    aesthetic = suite.aesthetic(FRAMES[:1])
    assert aesthetic.backend == vbench.AESTHETIC_BACKEND
    assert aesthetic.value == pytest.approx(3 * 11 / np.linalg.norm([11, 10, 10]) + 1)


def test_face_model_is_never_used_on_previz_drawings(tmp_path):
    suite = MetricSuite(empty_store(tmp_path), preloaded={"identity": "face pack"})
    assert suite.face_model(PREVIZ) is None and suite.face_model(COMFYUI) == "face pack"


def test_a_corrupt_weight_file_falls_back_and_says_why(tmp_path):
    store = empty_store(tmp_path)
    store.face_pack_dir.mkdir(parents=True)
    (store.face_pack_dir / "w600k_r50.onnx").write_bytes(b"not an onnx model")
    suite = MetricSuite(store)
    assert suite.face_model(COMFYUI) is None
    assert suite.unavailable["identity"].startswith("identity model failed to load: ")


def test_identity_without_a_face_model_uses_the_palette_in_the_renderers_boxes():
    frame = np.zeros((20, 20, 3), np.uint8)
    frame[:10, :10] = (200, 150, 120)
    anchor = Anchor(weightfree.palette_signature(frame, (0, 0, 10, 10)))
    scores = clip_identity([frame, frame], [{"mio": (0, 0, 10, 10)}, {}], {"mio": anchor}, None)
    assert scores["mio"].per_frame == pytest.approx((1.0, 0.0)) and scores["mio"].backend == weightfree.PALETTE_BACKEND
    whole = weightfree.cosine(weightfree.palette_signature(frame), anchor.palette)
    assert image_identity(frame, None, anchor, None) == (whole, weightfree.PALETTE_BACKEND)  # no box: whole image


class TestArcFace:
    """With a face pack (tiny ONNX recognizer, stand-in detector), identity is ArcFace's."""

    @pytest.fixture
    def faces(self, tmp_path):
        pytest.importorskip("insightface")
        from anime_pipeline.metrics import identity
        from tiny_models import SameFacesDetector, tiny_arcface

        recognizer = identity.load_recognizer(tiny_arcface(tmp_path / "w600k_tiny.onnx"))
        return identity.face_model(SameFacesDetector([(0, 0)]), recognizer, "tiny")

    def test_clips_and_stills_are_measured_against_the_arcface_anchor(self, faces):
        from tiny_models import expected_embedding, face

        anchor = Anchor(np.zeros(512), expected_embedding(face(1)))
        scores = clip_identity([face(1), face(2)], [{}, {}], {"mio": anchor}, faces)
        assert scores["mio"].backend.startswith("InsightFace ArcFace (tiny")
        assert scores["mio"].per_frame[0] == pytest.approx(1.0, abs=1e-5)
        assert scores["mio"].per_frame[1] == pytest.approx(float(expected_embedding(face(2)) @ anchor.arcface), abs=1e-5)
        value, backend = image_identity(face(1), None, anchor, faces)
        assert value == pytest.approx(1.0, abs=1e-5) and backend == faces.backend

    def test_a_shot_without_characters_has_no_identity_to_measure(self, faces):
        from tiny_models import face

        assert clip_identity([face(1)], [{}], {}, faces) == {}

    def test_without_an_arcface_anchor_the_palette_is_used(self, faces):
        from tiny_models import face

        anchor = Anchor(weightfree.palette_signature(face(1)))
        scores = clip_identity([face(1)], [{"mio": (0, 0, 112, 112)}], {"mio": anchor}, faces)
        assert scores["mio"].backend == weightfree.PALETTE_BACKEND and scores["mio"].value == pytest.approx(1.0)
