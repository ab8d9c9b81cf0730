"""Anime character identity: deepghs' CCIP models and a YOLOv8 anime face/head detector, run with
our onnxruntime from pre-placed files (protocols-more.md §8; never the dghs-imgutils package,
never a download).

Preprocessing and post-processing follow imgutils exactly (imgutils/metrics/ccip.py @525c042e,
imgutils/generic/yolo.py @4967a9b1):

- CCIP features: RGB → PIL resize to 384 × 384 (bilinear) → /255 → per channel (x − mean)/std
  with CLIP's mean and std → channels first, float32; `model_feat.onnx` maps input "input"
  (N × 3 × 384 × 384) to output "output" (N × 768). `model_metrics.onnx` maps stacked features
  (input "input", N × 768) to the N × N matrix of learned *differences* ("output"); two images
  show the same character when their difference is at most `metrics.json`'s "threshold".
- A character's anchor is `merge` of its reference features (imgutils' ccip_merge: the mean of
  the unit features, rescaled to their mean length).
- Detection: RGB → PIL resize (stretched, no letterbox; PIL's default bicubic) to the model's
  metadata "imgsz" (default 640) → /255, channels first, float32, input "images"; output "output0"
  of 4 + classes rows (cx, cy, w, h, class scores) per anchor; anchors whose best class score
  exceeds 0.25 go through imgutils' NMS (IoU 0.7, areas with +1), and boxes are scaled back to
  the image and rounded to whole pixels. Labels come from the metadata "names".
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anime_pipeline.metrics.models import ModelOutputError, ModelUnavailable, onnx_provider_options, onnx_providers
from anime_pipeline.metrics.weightfree import head_box

CCIP_SIZE = 384
FEATURE_DIM = 768
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])
FEATURE_FILE, METRIC_FILE, THRESHOLD_FILE = "model_feat.onnx", "model_metrics.onnx", "metrics.json"
DETECTOR_FILE = "model.onnx"
DEFAULT_DETECTOR_SIZE = 640
CONFIDENCE = 0.25
NMS_IOU = 0.7
BATCH = 16
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Detection:
    box: Box  # x0, y0, x1, y1 in image pixels
    label: str
    score: float


def _session(path: Path, device: str) -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise ModelUnavailable(f"{path.name} needs onnxruntime: {error}") from error
    if not path.is_file():
        raise ModelUnavailable(f"{path} not found")
    providers = onnx_providers(device)
    try:
        return onnxruntime.InferenceSession(str(path), providers=providers,
                                            provider_options=onnx_provider_options(providers, device))
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types, no common base
        raise ModelUnavailable(f"{path} is not a loadable ONNX model: {type(error).__name__}: {error}") from error


def _port(session: Any, path: Path, kind: str, name: str, rank: int, fixed: dict[int, int]) -> None:
    """Check that the session's only input or output is `name`, of `rank`, with `fixed` sizes."""
    ports = session.get_inputs() if kind == "input" else session.get_outputs()
    shape = list(ports[0].shape) if ports else []
    problems = []
    if len(ports) != 1 or ports[0].name != name:
        problems.append(f"its {kind}s are {[p.name for p in ports]}, expected one named {name!r}")
    elif len(shape) != rank or any(isinstance(shape[i], int) and shape[i] != size for i, size in fixed.items()):
        problems.append(f"{kind} {name!r} has shape {shape}, expected rank {rank} with sizes {fixed} (axis: size)")
    if problems:
        raise ModelUnavailable(f"{path} is not the expected model: {'; '.join(problems)}")


# --- CCIP ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CcipModel:
    """A CCIP feature extractor, its difference metric and the model's same-character threshold."""

    features_session: Any
    metric_session: Any
    threshold: float  # same character when difference ≤ threshold
    name: str
    device: str

    @property
    def backend(self) -> str:
        return f"CCIP ({self.name}, onnxruntime) [{', '.join(self.features_session.get_providers())}]"

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """N × 768 CCIP features of RGB uint8 images, each holding one character."""
        parts = []
        for start in range(0, len(images), BATCH):
            batch = np.stack([preprocess(image) for image in images[start:start + BATCH]]).astype(np.float32)
            (output,) = self.features_session.run(["output"], {"input": batch})
            parts.append(_checked(output, (len(batch), FEATURE_DIM), "CCIP features"))
        return np.concatenate(parts) if parts else np.zeros((0, FEATURE_DIM), np.float32)

    def differences(self, features: np.ndarray) -> np.ndarray:
        """The N × N matrix of learned differences between stacked features (0 = identical)."""
        stacked = np.asarray(features, dtype=np.float32).reshape(-1, FEATURE_DIM)
        (output,) = self.metric_session.run(["output"], {"input": stacked})
        return _checked(output, (len(stacked), len(stacked)), "CCIP differences")

    def differences_to(self, features: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """len(features) × len(anchors) differences (one metric run over both stacks)."""
        features, anchors = (np.asarray(x, dtype=np.float32).reshape(-1, FEATURE_DIM) for x in (features, anchors))
        if not len(features) or not len(anchors):
            return np.zeros((len(features), len(anchors)))
        return self.differences(np.concatenate([features, anchors]))[:len(features), len(features):]


def _checked(output: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(output)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ModelOutputError(f"{what}: expected finite values of shape {shape}, got shape {array.shape}")
    return array.astype(np.float64)


def preprocess(image: np.ndarray) -> np.ndarray:
    """imgutils' _preprocess_image: 3 × 384 × 384 (float64 until the batch is stacked)."""
    resized = Image.fromarray(np.ascontiguousarray(image[..., :3])).resize((CCIP_SIZE, CCIP_SIZE),
                                                                           Image.Resampling.BILINEAR)
    data = np.array(resized).transpose(2, 0, 1).astype(np.float32) / 255.0
    return (data - CLIP_MEAN[:, None, None]) / CLIP_STD[:, None, None]


def _threshold(path: Path) -> float:
    try:
        value = json.loads(path.read_text())["threshold"]
    except FileNotFoundError as error:
        raise ModelUnavailable(f"{path} not found") from error
    except (ValueError, KeyError, TypeError) as error:
        raise ModelUnavailable(f"{path}: expected JSON with a numeric \"threshold\": {error}") from error
    if not isinstance(value, (int, float)) or not 0.0 < float(value) < 2.0:
        raise ModelUnavailable(f"{path}: \"threshold\" must be a number between 0 and 2, got {value!r}")
    return float(value)


def load_ccip(folder: Path, device: str = "cpu") -> CcipModel:
    """The CCIP model in `folder` (model_feat.onnx, model_metrics.onnx, metrics.json). Raises
    ModelUnavailable naming the file and what is wrong with it."""
    threshold = _threshold(folder / THRESHOLD_FILE)
    features = _session(folder / FEATURE_FILE, device)
    _port(features, folder / FEATURE_FILE, "input", "input", 4, {1: 3, 2: CCIP_SIZE, 3: CCIP_SIZE})
    _port(features, folder / FEATURE_FILE, "output", "output", 2, {1: FEATURE_DIM})
    metric = _session(folder / METRIC_FILE, device)
    _port(metric, folder / METRIC_FILE, "input", "input", 2, {1: FEATURE_DIM})
    _port(metric, folder / METRIC_FILE, "output", "output", 2, {})
    return CcipModel(features, metric, threshold, folder.name, device)


def merge(features: np.ndarray) -> np.ndarray:
    """imgutils' ccip_merge: the mean of the unit features, rescaled to their mean length."""
    stacked = np.asarray(features, dtype=np.float64).reshape(-1, FEATURE_DIM)
    if not len(stacked):
        raise ValueError("a CCIP anchor needs at least one feature")
    lengths = np.linalg.norm(stacked, axis=1)
    mean = (stacked / lengths[:, None]).mean(axis=0)
    return mean / np.linalg.norm(mean) * lengths.mean()


# --- anime face / head detection ---------------------------------------------------------------

@dataclass(frozen=True)
class AnimeDetector:
    session: Any
    size: tuple[int, int]  # (width, height) the image is stretched to, imgutils' max_infer_size
    labels: tuple[str, ...]
    name: str
    heads: bool  # a head detector (its boxes include hair); else a face detector

    @property
    def backend(self) -> str:
        return f"anime {'head' if self.heads else 'face'} detector ({self.name}, onnxruntime)"

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in an RGB uint8 image, best first (see the module doc)."""
        height, width = image.shape[:2]
        resized = Image.fromarray(np.ascontiguousarray(image[..., :3])).resize(self.size, Image.Resampling.BICUBIC)
        data = (np.asarray(resized).transpose(2, 0, 1) / 255.0).astype(np.float32)[None]
        (output,) = self.session.run(["output0"], {"images": data})
        output = np.asarray(output)
        if output.ndim != 3 or output.shape[:2] != (1, 4 + len(self.labels)):
            raise ModelOutputError(f"{self.name}: expected output0 of shape (1, {4 + len(self.labels)}, anchors), "
                                   f"got {output.shape}")
        return _postprocess(output[0], (width, height), self.size, self.labels)

    def head_box(self, detection: Detection, image_shape: tuple[int, ...]) -> Box:
        """The region CCIP sees for a detection: a head detector's box as it is; a face box grown
        to the head around it (`weightfree.head_box`: CCIP tells characters apart by hair and
        headwear too)."""
        return detection.box if self.heads else head_box(detection.box, image_shape)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """imgutils' _yolo_nms: greedy by score, areas counted with +1 px."""
    x0, y0, x1, y1 = boxes.T
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= iou_threshold]
    return keep


def _to_image(value: float, new: int, old: int) -> int:
    return int(np.clip(value / new * old, 0, old).round())


def _postprocess(output: np.ndarray, old_size: tuple[int, int], new_size: tuple[int, int],
                 labels: tuple[str, ...]) -> list[Detection]:
    scores = output[4:]
    kept = output[:, scores.max(axis=0) > CONFIDENCE].T
    if not kept.size:
        return []
    centre, extent = kept[:, :2], kept[:, 2:4]
    boxes = np.concatenate([centre - extent / 2, centre + extent / 2], axis=1)
    class_scores = kept[:, 4:]
    (ow, oh), (nw, nh) = old_size, new_size
    detections = []
    for index in _nms(boxes, class_scores.max(axis=1), NMS_IOU):
        x0, y0, x1, y1 = boxes[index]
        label = int(class_scores[index].argmax())
        detections.append(Detection((_to_image(x0, nw, ow), _to_image(y0, nh, oh), _to_image(x1, nw, ow),
                                     _to_image(y1, nh, oh)), labels[label], float(class_scores[index, label])))
    return detections


def _metadata(session: Any, path: Path) -> tuple[tuple[int, int], tuple[str, ...]]:
    """(size, labels) from the YOLO export's metadata: "imgsz" (JSON pair, default 640) and
    "names" (a Python dict literal {index: label})."""
    custom = session.get_modelmeta().custom_metadata_map
    try:
        names = ast.literal_eval(custom["names"])
        labels = tuple(str(names[i]) for i in range(len(names)))
        size = tuple(int(v) for v in json.loads(custom["imgsz"])) if "imgsz" in custom else (DEFAULT_DETECTOR_SIZE,) * 2
    except (KeyError, ValueError, SyntaxError, TypeError) as error:
        raise ModelUnavailable(f"{path}: its metadata needs \"names\" ({{index: label}}) and an optional "
                               f"\"imgsz\" pair: {type(error).__name__}: {error}") from error
    if len(size) != 2 or not labels:
        raise ModelUnavailable(f"{path}: \"imgsz\" must be a pair and \"names\" non-empty, got {size}, {labels}")
    return (size[0], size[1]), labels


def load_detector(path: Path, device: str = "cpu") -> AnimeDetector:
    """The YOLOv8 detector at `path` (…/<name>/model.onnx); a head detector when its folder name
    says so (deepghs' anime_head_detection models are named head_detect_*)."""
    session = _session(path, device)
    _port(session, path, "input", "images", 4, {1: 3})
    _port(session, path, "output", "output0", 3, {0: 1})
    size, labels = _metadata(session, path)
    name = path.parent.name
    return AnimeDetector(session, size, labels, name, heads="head" in name)
