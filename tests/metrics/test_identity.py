"""The ArcFace identity path end to end through insightface, with the tiny ONNX model of
`tiny_models` (built by the test, never downloaded)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
insightface = pytest.importorskip("insightface")

from onnx import TensorProto, helper  # noqa: E402

from anime_pipeline.metrics import identity  # noqa: E402
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable  # noqa: E402
from anime_pipeline.metrics.weightfree import anchor  # noqa: E402
from tests.tiny_models import (  # noqa: E402
    SIZE,
    StandInDetector,
    expected_embedding,
    face,
    tiny_arcface,
)


@pytest.fixture
def recognizer(tmp_path):
    return identity.load_recognizer(tiny_arcface(tmp_path / "pack" / "w600k_tiny.onnx"), "cpu")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")
    monkeypatch.setattr(insightface.model_zoo.model_zoo, "download_onnx", refuse)
    monkeypatch.setattr(insightface.utils.storage, "download_file", refuse)


def test_insightface_routes_the_tiny_model_to_arcface(tmp_path):
    path = tiny_arcface(tmp_path / "tiny.onnx")
    model = insightface.model_zoo.get_model(str(path), providers=["CPUExecutionProvider"])
    assert type(model).__name__ == "ArcFaceONNX" and model.taskname == "recognition"
    assert (model.input_mean, model.input_std, model.input_size) == (127.5, 127.5, (SIZE, SIZE))


def test_embedding_is_aligned_projected_and_normalised_like_numpy(recognizer):
    model = identity.face_model(StandInDetector([[(0, 0)]]), recognizer, "tiny")
    image = face(1)
    [found] = identity.detect_faces(model, image)
    np.testing.assert_allclose(found.embedding, expected_embedding(image), atol=1e-5)
    assert np.linalg.norm(found.embedding) == pytest.approx(1.0)
    assert found.box == (0.0, 0.0, 112.0, 112.0) and found.score == pytest.approx(0.9)


def test_identity_per_frame_is_the_cosine_to_the_anchor(recognizer):
    references = [face(1), face(2)]
    reference_model = identity.face_model(StandInDetector([[(0, 0)]] * 2), recognizer, "tiny")
    reference = anchor([identity.reference_embedding(reference_model, image) for image in references])
    expected_anchor = np.mean([expected_embedding(image) for image in references], axis=0)
    np.testing.assert_allclose(reference, expected_anchor / np.linalg.norm(expected_anchor), atol=1e-5)

    frames = [face(1), face(3), np.zeros((SIZE, SIZE, 3), np.uint8)]
    model = identity.face_model(StandInDetector([[(0, 0)], [(0, 0)], []]), recognizer, "tiny")
    score = identity.arcface_identity(frames, {"mio": reference}, model)["mio"]
    cosines = [float(expected_embedding(f) @ reference) for f in frames[:2]]
    assert score.per_frame[:2] == pytest.approx(cosines, abs=1e-5)
    assert score.per_frame[2] == 0.0 and score.value == 0.0
    assert score.details["frames_without_face"] == [2]
    assert score.backend == "InsightFace ArcFace (tiny, onnxruntime) [CPUExecutionProvider]"


def test_two_characters_never_claim_the_same_face(recognizer):
    left, right = face(4), face(5)
    frame = np.concatenate([left, right], axis=1)
    anchors = {"a": expected_embedding(left), "b": expected_embedding(right)}
    model = identity.face_model(StandInDetector([[(SIZE, 0), (0, 0)]]), recognizer, "tiny")
    scores = identity.arcface_identity([frame], anchors, model)
    assert scores["a"].value == pytest.approx(1.0, abs=1e-5) and scores["b"].value == pytest.approx(1.0, abs=1e-5)
    # one face, two characters: the better match gets it, the other has none
    model = identity.face_model(StandInDetector([[(0, 0)]]), recognizer, "tiny")
    scores = identity.arcface_identity([left], anchors, model)
    assert scores["a"].value == pytest.approx(1.0, abs=1e-5)
    assert scores["b"].details["frames_without_face"] == [0]


def test_pack_is_read_from_the_store_without_downloading(tmp_path):
    store = ModelStore(root=tmp_path, torch_home=tmp_path / "torch", face_pack="tiny_pack")
    with pytest.raises(ModelUnavailable, match="no InsightFace pack"):
        identity.load_face_model(store)
    tiny_arcface(store.face_pack_dir / "w600k_tiny.onnx")
    with pytest.raises(ModelUnavailable, match="no detection model"):
        identity.load_face_model(store)


def test_a_detection_model_is_not_a_recognizer(tmp_path):
    path = tmp_path / "landmark.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["data"], ["out"], name="copy")], "landmark",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 192, 192])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(ModelUnavailable, match="not an ArcFace"):
        identity.load_recognizer(path)


class BoxesOnly:
    """A detector that finds the given boxes and gives no landmarks: nothing could be aligned."""

    def __init__(self, boxes):
        self.boxes = np.array(boxes, np.float32).reshape(-1, 5)

    def detect(self, img, max_num=0, metric="default"):
        return self.boxes, None


def test_the_largest_face_box_needs_no_recognizer():
    image = np.zeros((112, 224, 3), np.uint8)
    small_then_large = BoxesOnly([[0, 0, 50, 50, 0.9], [60, 0, 172, 112, 0.8]])
    model = identity.FaceModel(small_then_large, recognizer=None, backend="boxes only")
    assert identity.largest_face_box(model, image) == (60.0, 0.0, 172.0, 112.0)
    assert identity.largest_face_box(identity.FaceModel(BoxesOnly([]), None, "boxes only"), image) is None
