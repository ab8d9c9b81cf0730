"""The ArcFace identity path end to end through insightface, with a tiny ONNX model built here.

The recognition model pools the 112×112 input in 16×16 blocks and projects the 147 means to
512-d with a random matrix, so its embedding is computable in numpy. Faces are placed exactly
on ArcFace's 5-point template, where insightface's alignment is the identity warp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
insightface = pytest.importorskip("insightface")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from anime_pipeline.metrics import identity  # noqa: E402
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable  # noqa: E402
from anime_pipeline.metrics.weightfree import anchor  # noqa: E402

SIZE, POOL, DIM = 112, 16, 512
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                     [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)  # ArcFace's landmarks
PROJECTION = np.random.default_rng(0).normal(size=(3 * (SIZE // POOL) ** 2, DIM)).astype(np.float32)


def tiny_arcface(path: Path) -> Path:
    """Input 1×3×112×112 → 16×16 average pool → flatten → ·PROJECTION → 1×512: insightface routes
    a square input of ≥112 px (a multiple of 16) with one output to ArcFaceONNX."""
    nodes = [helper.make_node("AveragePool", ["data"], ["pooled"], name="pool", kernel_shape=[POOL, POOL],
                              strides=[POOL, POOL]),
             helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
             helper.make_node("MatMul", ["flat", "projection"], ["fc1"], name="project")]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, DIM])],
                              [numpy_helper.from_array(PROJECTION, "projection")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def expected_embedding(face_rgb: np.ndarray) -> np.ndarray:
    """What the tiny model gives for an aligned face: ArcFace preprocessing (x − 127.5)/127.5 on
    RGB, pooled, projected, then L2-normalised."""
    x = (face_rgb.astype(np.float64) - 127.5) / 127.5
    pooled = x.reshape(SIZE // POOL, POOL, SIZE // POOL, POOL, 3).mean(axis=(1, 3))
    vector = pooled.transpose(2, 0, 1).reshape(-1) @ PROJECTION.astype(np.float64)
    return vector / np.linalg.norm(vector)


class StandInDetector:
    """insightface's detector interface; finds a face at each given (x, y) offset of a 112-px tile."""

    def __init__(self, offsets_per_call: list[list[tuple[int, int]]]):
        self.calls = iter(offsets_per_call)

    def detect(self, img, max_num=0, metric="default"):
        offsets = next(self.calls)
        boxes = np.array([[x, y, x + SIZE, y + SIZE, 0.9] for x, y in offsets], dtype=np.float32).reshape(-1, 5)
        points = np.array([TEMPLATE + (x, y) for x, y in offsets], dtype=np.float32).reshape(-1, 5, 2)
        return boxes, points


def face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


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
