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
