"""CCIP and the anime face detector through the loading code that loads deepghs' real files, with
tiny ONNX models of the same interface that the tests build (tests/tiny_models.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from anime_pipeline.metrics import ccip  # noqa: E402
from anime_pipeline.metrics.models import ModelOutputError, ModelUnavailable  # noqa: E402
from tests.tiny_models import (  # noqa: E402
    ccip_expected_feature,
    ccip_preprocess,
    tiny_anime_detector,
    tiny_ccip,
)


def picture(seed: int, size: tuple[int, int] = (90, 70)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@pytest.fixture
def model(tmp_path):
    return ccip.load_ccip(tiny_ccip(tmp_path / "ccip-tiny", threshold=0.2))


def test_features_follow_imgutils_preprocessing(model):
    images = [picture(1), picture(2, (40, 120))]
    np.testing.assert_allclose(ccip.preprocess(images[0]), ccip_preprocess(images[0]), atol=1e-6)
    features = model.features(images)
    assert features.shape == (2, ccip.FEATURE_DIM)
    for feature, image in zip(features, images):
        np.testing.assert_allclose(feature, ccip_expected_feature(image), rtol=1e-4, atol=1e-4)
    assert model.features([]).shape == (0, ccip.FEATURE_DIM)


def test_differences_come_from_the_metric_model(model):
    features = model.features([picture(1), picture(1), picture(3)])
    differences = model.differences(features)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    np.testing.assert_allclose(differences, 1 - unit @ unit.T, atol=1e-5)
    assert differences[0, 1] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(model.differences_to(features[:1], features[1:]), differences[:1, 1:], atol=1e-6)
    assert model.threshold == 0.2 and model.backend == "CCIP (ccip-tiny, onnxruntime) [CPUExecutionProvider]"


def test_merge_is_imgutils_ccip_merge():
    features = np.random.default_rng(4).normal(size=(3, ccip.FEATURE_DIM))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    expected = unit.mean(axis=0) / np.linalg.norm(unit.mean(axis=0)) * np.linalg.norm(features, axis=1).mean()
    np.testing.assert_allclose(ccip.merge(features), expected)
    with pytest.raises(ValueError):
        ccip.merge(np.zeros((0, ccip.FEATURE_DIM)))


def test_a_missing_or_broken_file_is_named(tmp_path):
    folder = tiny_ccip(tmp_path / "m")
    (folder / "metrics.json").write_text('{"threshold": "low"}')
    with pytest.raises(ModelUnavailable, match=r"metrics.json: \"threshold\" must be a number"):
        ccip.load_ccip(folder)
    (folder / "metrics.json").unlink()
    with pytest.raises(ModelUnavailable, match="metrics.json not found"):
        ccip.load_ccip(folder)
    (folder / "metrics.json").write_text(json.dumps({"threshold": 0.17}))
    (folder / "model_metrics.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelUnavailable, match="model_metrics.onnx is not a loadable ONNX model"):
        ccip.load_ccip(folder)


def test_a_model_of_another_interface_is_refused(tmp_path):
    folder = tiny_ccip(tmp_path / "m")
    graph = helper.make_graph([helper.make_node("Identity", ["data"], ["output"])], "other",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 224, 224])])
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(folder / "model_feat.onnx"))
    with pytest.raises(ModelUnavailable, match="expected one named 'input'"):
        ccip.load_ccip(folder)


class TestDetector:
    ANCHORS = [(320, 320, 200, 100, 0.9),  # kept
               (322, 321, 200, 100, 0.8),  # overlaps the first (IoU > 0.7): suppressed
               (100, 100, 60, 60, 0.6),  # kept
               (500, 500, 40, 40, 0.2)]  # below the 0.25 confidence

    def test_boxes_are_scaled_back_and_suppressed_like_imgutils(self, tmp_path):
        detector = ccip.load_detector(tiny_anime_detector(tmp_path / "face_detect_tiny" / "model.onnx", self.ANCHORS))
        assert detector.size == (640, 640) and detector.labels == ("face",) and not detector.heads
        found = detector.detect(np.zeros((200, 320, 3), np.uint8))
        # (cx ± w/2)/640·320 and (cy ± h/2)/640·200, rounded half to even like numpy
        assert [d.box for d in found] == [(110, 84, 210, 116), (35, 22, 65, 41)]
        assert [d.label for d in found] == ["face", "face"] and found[0].score == pytest.approx(0.9)
        assert detector.backend == "anime face detector (face_detect_tiny, onnxruntime)"

    def test_face_boxes_grow_to_the_head_and_head_boxes_do_not(self, tmp_path):
        faces = ccip.load_detector(tiny_anime_detector(tmp_path / "face_detect_t" / "model.onnx", self.ANCHORS[:1]))
        heads = ccip.load_detector(tiny_anime_detector(tmp_path / "head_detect_t" / "model.onnx", self.ANCHORS[:1]))
        detection = ccip.Detection((40, 40, 80, 100), "face", 0.9)
        assert faces.head_box(detection, (200, 300, 3)) == (30, 10, 90, 100)
        assert heads.heads and heads.head_box(detection, (200, 300, 3)) == (40, 40, 80, 100)

    def test_the_default_size_is_640_and_names_are_required(self, tmp_path):
        detector = ccip.load_detector(tiny_anime_detector(tmp_path / "a" / "model.onnx", self.ANCHORS, imgsz=None))
        assert detector.size == (640, 640)
        graph_path = tiny_anime_detector(tmp_path / "b" / "model.onnx", self.ANCHORS)
        import onnx

        model = onnx.load(str(graph_path))
        del model.metadata_props[:]
        onnx.save(model, str(graph_path))
        with pytest.raises(ModelUnavailable, match="metadata needs \"names\""):
            ccip.load_detector(graph_path)

    def test_an_output_that_does_not_match_the_labels_is_a_typed_error(self, tmp_path):
        path = tiny_anime_detector(tmp_path / "c" / "model.onnx", self.ANCHORS)
        import onnx

        model = onnx.load(str(path))
        names = next(p for p in model.metadata_props if p.key == "names")
        names.value = repr({0: "face", 1: "hand"})  # 6 rows expected, the head has 5
        onnx.save(model, str(path))
        with pytest.raises(ModelOutputError, match=r"expected output0 of shape \(1, 6, anchors\)"):
            ccip.load_detector(path).detect(np.zeros((64, 64, 3), np.uint8))
