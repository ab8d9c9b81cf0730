"""Identity with InsightFace ArcFace: detection, 5-point alignment, 512-d embedding, cosine to an anchor.

Definitions:
- embedding e(face) = ArcFace(norm_crop(frame, landmarks)) / ‖·‖₂, where norm_crop is
  insightface's similarity warp of the 5 detected landmarks onto ArcFace's 112×112 template;
- a character's anchor = `weightfree.anchor` of its reference embeddings (normalised mean of
  normalised vectors);
- identity(character, frame) = cos(e, anchor) of the detected face assigned to that character,
  0 when none is; faces are assigned to characters one-to-one, maximising the summed cosine
  (Hungarian), so two characters never claim the same face;
- a character's clip score = the minimum over frames (the gate is "≥ threshold in every frame").

Model packs are read from `<models>/insightface/models/<pack>/` file by file through
`insightface.model_zoo.get_model(<file>.onnx, providers=…)`: an existing file path never
reaches insightface's download code (FaceAnalysis(name) would). onnxruntime providers are
always passed explicitly (`models.onnx_providers`). Without a pack the caller falls back to
`weightfree.identity_score`, whose backend says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anime_pipeline.metrics.models import (ModelStore, ModelUnavailable, cuda_index, identity_backend,
                                           onnx_provider_options, onnx_providers)
from anime_pipeline.metrics.scores import Score
from anime_pipeline.metrics.weightfree import cosine, unit

DET_SIZE = (640, 640)
DET_THRESHOLD = 0.5


class Detector(Protocol):
    """insightface's detector interface (SCRFD / RetinaFace): boxes (n×5: x0, y0, x1, y1, score)
    and 5-point landmarks (n×5×2) on a BGR image."""

    def detect(self, img: np.ndarray, max_num: int = 0, metric: str = "default") -> tuple[np.ndarray, np.ndarray | None]:
        ...


@dataclass(frozen=True)
class FaceModel:
    detector: Detector
    recognizer: Any  # insightface.model_zoo.ArcFaceONNX
    backend: str

    @property
    def device(self) -> str:
        """Where the recognizer runs: "cuda" under onnxruntime's CUDA provider, else "cpu"."""
        return "cuda" if self.recognizer.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]
    score: float
    embedding: np.ndarray  # L2-normalised

    @property
    def area(self) -> float:
        return _area(self.box)


def _area(box: tuple[float, float, float, float]) -> float:
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[..., ::-1])  # insightface works on OpenCV's BGR order


def _model_zoo() -> Any:
    try:
        from insightface.model_zoo import model_zoo
    except ImportError as error:
        raise ModelUnavailable(f"identity needs insightface and onnxruntime-gpu: {error}") from error
    return model_zoo


def _load(path: Path, device: str) -> Any:
    providers = onnx_providers(device)
    return _model_zoo().get_model(str(path), providers=providers,
                                  provider_options=onnx_provider_options(providers, device))


def _ctx_id(device: str) -> int:
    """insightface's device argument: the GPU index, or −1 for CPU only."""
    index = cuda_index(device)
    return -1 if index is None or onnx_providers(device)[0] != "CUDAExecutionProvider" else index


def load_recognizer(path: Path, device: str = "cpu") -> Any:
    """One ArcFace recognition model (insightface routes a square ≥112 px input with one output to
    ArcFaceONNX), prepared on `device`. Raises ModelUnavailable if the file is something else."""
    model = _load(path, device)
    if model is None or model.taskname != "recognition":
        raise ModelUnavailable(f"{path} is not an ArcFace recognition model")
    model.prepare(_ctx_id(device))
    return model


def face_model(detector: Detector, recognizer: Any, pack: str) -> FaceModel:
    """A FaceModel whose backend names the pack and the onnxruntime providers actually in use."""
    applied = ", ".join(recognizer.session.get_providers())
    return FaceModel(detector, recognizer, f"{identity_backend(pack)} [{applied}]")


def load_face_model(store: ModelStore, det_size: tuple[int, int] = DET_SIZE,
                    det_threshold: float = DET_THRESHOLD) -> FaceModel:
    """The store's pack (first detection and first recognition model, files in name order) on its
    device. Raises ModelUnavailable when the pack, a model in it, or insightface is missing."""
    files = sorted(store.face_pack_dir.glob("*.onnx"))
    if not files:
        raise ModelUnavailable(f"no InsightFace pack at {store.face_pack_dir}")
    found: dict[str, Any] = {}
    for path in files:
        model = _load(path, store.device)
        if model is not None and model.taskname in ("detection", "recognition"):
            found.setdefault(model.taskname, model)
    missing = {"detection", "recognition"} - found.keys()
    if missing:
        raise ModelUnavailable(f"pack {store.face_pack_dir} has no {' or '.join(sorted(missing))} model")
    ctx_id = _ctx_id(store.device)
    found["detection"].prepare(ctx_id, input_size=det_size, det_thresh=det_threshold)
    found["recognition"].prepare(ctx_id)
    return face_model(found["detection"], found["recognition"], store.face_pack)


def detect_faces(model: FaceModel, image: np.ndarray) -> list[DetectedFace]:
    """Every face in an RGB uint8 image with its normalised ArcFace embedding, in detector order."""
    from insightface.app.common import Face

    bgr = _bgr(image)
    boxes, landmarks = model.detector.detect(bgr, max_num=0, metric="default")
    if len(boxes) and landmarks is None:
        raise ModelUnavailable("the face detector gives no landmarks, so faces cannot be aligned")
    faces = []
    for box, points in zip(boxes, landmarks if landmarks is not None else []):
        face = Face(bbox=box[:4], kps=points, det_score=float(box[4]))
        with warnings.catch_warnings():  # insightface 0.7's alignment calls a deprecated scikit-image API
            warnings.filterwarnings("ignore", category=FutureWarning, module="insightface")
            embedding = np.asarray(model.recognizer.get(bgr, face), dtype=np.float64)
        faces.append(DetectedFace(tuple(float(v) for v in box[:4]), float(box[4]), unit(embedding)))
    return faces


def largest_face_box(model: FaceModel, image: np.ndarray) -> tuple[float, float, float, float] | None:
    """The box (x0, y0, x1, y1) of the largest face the detector finds in an RGB image, or None;
    detection only, nothing is aligned or embedded."""
    boxes, _ = model.detector.detect(_bgr(image), max_num=0, metric="default")
    return max((tuple(float(v) for v in box[:4]) for box in boxes), key=_area, default=None)


def reference_embedding(model: FaceModel, image: np.ndarray) -> np.ndarray | None:
    """The embedding of the largest face in a reference image, or None when there is no face."""
    faces = detect_faces(model, image)
    return max(faces, key=lambda face: face.area).embedding if faces else None


def assign_faces(faces: Sequence[DetectedFace], anchors: Mapping[str, np.ndarray]) -> dict[str, DetectedFace | None]:
    """Per character, the face assigned to it (None if none): one face per character, maximising
    the summed cosine to the anchors."""
    # imported here, not with the module: scipy.optimize costs the code location 0.3 s
    from scipy.optimize import linear_sum_assignment

    assigned: dict[str, DetectedFace | None] = {slug: None for slug in anchors}
    if not faces:
        return assigned
    slugs = list(anchors)
    similarity = np.array([[cosine(face.embedding, anchors[slug]) for face in faces] for slug in slugs])
    for row, column in zip(*linear_sum_assignment(-similarity)):
        assigned[slugs[row]] = faces[column]
    return assigned


def _assign(faces: Sequence[DetectedFace], anchors: Mapping[str, np.ndarray]) -> dict[str, float | None]:
    """Per character, the cosine of the face assigned to it (None if none), one face per character."""
    return {slug: None if face is None else cosine(face.embedding, anchors[slug])
            for slug, face in assign_faces(faces, anchors).items()}


def arcface_identity(frames: Sequence[np.ndarray], anchors: Mapping[str, np.ndarray], model: FaceModel) -> dict[str, Score]:
    """Per character: per_frame[i] = identity(character, frame i) (see the module doc); value = min."""
    if not frames or not anchors:
        raise ValueError("need at least one frame and one anchor")
    per_frame = [_assign(detect_faces(model, frame), anchors) for frame in frames]
    results = {}
    for slug in anchors:
        assigned = [scores[slug] for scores in per_frame]
        values = tuple(0.0 if v is None else v for v in assigned)
        results[slug] = Score("identity", min(values), model.backend, values,
                              {"frames_without_face": [i for i, v in enumerate(assigned) if v is None]})
    return results
