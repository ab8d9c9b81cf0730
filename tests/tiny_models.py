"""Tiny stand-ins for InsightFace models, shared by the identity tests of metrics and production.

The recognition model pools the 112×112 input in 16×16 blocks and projects the 147 means to
512-d with a random matrix, so its embedding is computable in numpy. Faces are placed exactly
on ArcFace's 5-point template, where insightface's alignment is the identity warp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, checker, helper, numpy_helper, save

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
    checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return path


def expected_embedding(face_rgb: np.ndarray) -> np.ndarray:
    """What the tiny model gives for an aligned face: ArcFace preprocessing (x − 127.5)/127.5 on
    RGB, pooled, projected, then L2-normalised."""
    x = (face_rgb.astype(np.float64) - 127.5) / 127.5
    pooled = x.reshape(SIZE // POOL, POOL, SIZE // POOL, POOL, 3).mean(axis=(1, 3))
    vector = pooled.transpose(2, 0, 1).reshape(-1) @ PROJECTION.astype(np.float64)
    return vector / np.linalg.norm(vector)


class StandInDetector:
    """insightface's detector interface; call i finds a face at each (x, y) offset of its list
    (the top-left corner of a 112-px tile with the face on ArcFace's template)."""

    def __init__(self, offsets_per_call: list[list[tuple[int, int]]]):
        self.calls = iter(offsets_per_call)

    def detect(self, img, max_num=0, metric="default"):
        return faces_at(next(self.calls))


class SameFacesDetector:
    """The detector interface finding faces at the same offsets in every image."""

    def __init__(self, offsets: list[tuple[int, int]]):
        self.offsets = offsets

    def detect(self, img, max_num=0, metric="default"):
        return faces_at(self.offsets)


def faces_at(offsets: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([[x, y, x + SIZE, y + SIZE, 0.9] for x, y in offsets], dtype=np.float32).reshape(-1, 5)
    points = np.array([TEMPLATE + (x, y) for x, y in offsets], dtype=np.float32).reshape(-1, 5, 2)
    return boxes, points


def face(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


# --- CCIP and the anime face detector (deepghs), protocols-more.md §8 ---------------------------

CCIP_SIZE, CCIP_POOL, CCIP_DIM = 384, 32, 768
CCIP_PROJECTION = np.random.default_rng(1).normal(size=(3 * (CCIP_SIZE // CCIP_POOL) ** 2, CCIP_DIM)).astype(np.float32)
DETECTOR_SIZE = 640


def _save(graph, path: Path, metadata: dict[str, str] | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return path


def tiny_ccip(folder: Path, threshold: float = 0.178) -> Path:
    """A CCIP model folder as deepghs ships it: model_feat.onnx ("input" N×3×384×384 → 32×32 average
    pool → flatten → ·CCIP_PROJECTION → "output" N×768), model_metrics.onnx ("input" N×768 →
    "output" N×N = 1 − cosine) and metrics.json."""
    feat_nodes = [helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[CCIP_POOL, CCIP_POOL],
                                   strides=[CCIP_POOL, CCIP_POOL]),
                  helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
                  helper.make_node("MatMul", ["flat", "projection"], ["output"])]
    _save(helper.make_graph(feat_nodes, "tiny_ccip_feat",
                            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, CCIP_SIZE, CCIP_SIZE])],
                            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", CCIP_DIM])],
                            [numpy_helper.from_array(CCIP_PROJECTION, "projection")]), folder / "model_feat.onnx")
    metric_nodes = [helper.make_node("Mul", ["input", "input"], ["squares"]),
                    helper.make_node("ReduceSum", ["squares", "axis"], ["norms2"], keepdims=1),
                    helper.make_node("Sqrt", ["norms2"], ["norms"]),
                    helper.make_node("Div", ["input", "norms"], ["unit"]),
                    helper.make_node("Transpose", ["unit"], ["unit_t"], perm=[1, 0]),
                    helper.make_node("MatMul", ["unit", "unit_t"], ["cosines"]),
                    helper.make_node("Sub", ["one", "cosines"], ["output"])]
    _save(helper.make_graph(metric_nodes, "tiny_ccip_metrics",
                            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", CCIP_DIM])],
                            [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", "N"])],
                            [numpy_helper.from_array(np.array([1], np.int64), "axis"),
                             numpy_helper.from_array(np.array(1.0, np.float32), "one")]), folder / "model_metrics.onnx")
    (folder / "metrics.json").write_text(f'{{"threshold": {threshold}}}')
    return folder


def ccip_preprocess(image: np.ndarray) -> np.ndarray:
    """imgutils' CCIP preprocessing, written out independently of the code under test."""
    from PIL import Image

    data = np.array(Image.fromarray(image).resize((CCIP_SIZE, CCIP_SIZE), Image.BILINEAR)).transpose(2, 0, 1)
    mean = np.array([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = np.array([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    return ((data.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def ccip_expected_feature(image: np.ndarray) -> np.ndarray:
    """What the tiny feature model gives for an image (numpy, float64)."""
    x = ccip_preprocess(image).astype(np.float64)
    pooled = x.reshape(3, CCIP_SIZE // CCIP_POOL, CCIP_POOL, CCIP_SIZE // CCIP_POOL, CCIP_POOL).mean(axis=(2, 4))
    return pooled.reshape(-1) @ CCIP_PROJECTION.astype(np.float64)


def tiny_anime_detector(path: Path, anchors: list[tuple[float, float, float, float, float]],
                        labels: tuple[str, ...] = ("face",), imgsz: str | None = "[640, 640]") -> Path:
    """A YOLOv8 export's interface ("images" 1×3×H×W → "output0" 1×(4+classes)×anchors, metadata
    "names" and "imgsz") that finds the given anchors (cx, cy, w, h, score of class 0) in
    640-px model coordinates in any image: the head is constant, added to 0 × the image mean so
    that the graph reads its input."""
    rows = np.zeros((1, 4 + len(labels), len(anchors)), np.float32)
    for index, (cx, cy, w, h, score) in enumerate(anchors):
        rows[0, :5, index] = (cx, cy, w, h, score)
    nodes = [helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=1),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Reshape", ["nothing", "scalar_shape"], ["nothing_flat"]),
             helper.make_node("Add", ["head", "nothing_flat"], ["output0"])]
    metadata = {"names": repr(dict(enumerate(labels)))}
    if imgsz is not None:
        metadata["imgsz"] = imgsz
    return _save(helper.make_graph(nodes, "tiny_anime_detector",
                                   [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                  [1, 3, DETECTOR_SIZE, DETECTOR_SIZE])],
                                   [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(rows.shape))],
                                   [numpy_helper.from_array(rows, "head"), numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
                                    numpy_helper.from_array(np.array([1], np.int64), "scalar_shape")]),
                 path, metadata)
