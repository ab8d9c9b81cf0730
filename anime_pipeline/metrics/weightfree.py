"""Weight-free metrics: the embedded defaults that run on a CPU without any model weights.

Each is a stand-in for a model-based metric (ArcFace identity, VBench's AMT smoothness, …)
and says so in its `backend` string. Images are H×W×3 uint8 RGB arrays; frames of one clip
share a size. Everything is vectorised per frame so that a 120-frame 512×512 clip scores in
a few seconds on two cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage

from anime_pipeline.imaging import COLOR_TOLERANCE, Box, ColorLike, as_rgb, color_mask
from anime_pipeline.metrics import flow
from anime_pipeline.metrics.scores import Score

PALETTE_BACKEND = "weight-free: palette signature"
CHARACTER_BACKEND = "weight-free: palette signature of the head, soft bins"
SMOOTHNESS_BACKEND = "weight-free: VBench motion smoothness formula, linear-blend interpolator"
SMOOTHNESS_INTERPOLATOR = "linear blend (no AMT weights)"
FLOW_SMOOTHNESS_BACKEND = "weight-free: VBench motion smoothness formula, block-matching flow interpolator"
FLOW_INTERPOLATOR = "bilateral block-matching flow (no AMT weights)"
CONTINUITY_BACKEND = "weight-free: coarse colour continuity across cuts"
PALETTE_CONSISTENCY_BACKEND = "weight-free: VBench subject consistency formula over palette signatures"
AESTHETIC_PROXY_BACKEND = "weight-free: sharpness/exposure/contrast proxy on a 0-10 scale (not LAION)"
STYLE_BACKEND = "weight-free: palette shades and blends, flat-colour share"

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # radius int(3.5·1.5 + 0.5) = 5: Wang et al.'s 11×11 window
SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
SHARPNESS_HALF = 100.0  # Laplacian variance ≈ 100 is the usual blurry/sharp cut-off on 8-bit images
THUMBNAIL_HEIGHT = 64
# A face box holds the face only; a character is told apart by hair and headwear too, so the head
# is the face box widened by a quarter of its width each side and raised by half its height
FACE_TO_HEAD_SIDE, FACE_TO_HEAD_UP = 0.25, 0.5


# --- colours and regions ---------------------------------------------------------------

def crop(image: np.ndarray, box: Box | None) -> np.ndarray:
    """The pixels of `box` = (x0, y0, x1, y1), end-exclusive, clipped to the image; None = all."""
    if box is None:
        return image
    height, width = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    return image[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]


def palette_match(image: np.ndarray, colors: Sequence[ColorLike], tolerance: float = COLOR_TOLERANCE) -> float:
    """Share (0–1) of the image's pixels within RGB distance `tolerance` of any of `colors`."""
    if image.size == 0 or not colors:
        return 0.0
    return float(color_mask(image, colors, tolerance).mean())


def _luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (0–255, float32); a 2-D array is taken as grayscale already."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


# --- identity (ArcFace stand-in) --------------------------------------------------------

def unit(vector: np.ndarray) -> np.ndarray:
    """L2-normalised; the zero vector stays zero."""
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector


def palette_signature(image: np.ndarray, box: Box | None = None) -> np.ndarray:
    """512-d colour signature of the region (`box` crop if given): the joint 8×8×8 RGB histogram,
    square-rooted (Hellinger) and L2-normalised. Same shape as an ArcFace embedding, so the
    anchor/cosine machinery is shared; an empty region gives the zero vector."""
    bins = (crop(image, box).reshape(-1, 3) >> 5).astype(np.intp)  # 256 / 8 = 32 levels a bin
    counts = np.bincount((bins[:, 0] << 6) | (bins[:, 1] << 3) | bins[:, 2], minlength=512)
    # sqrt(counts)/‖sqrt(counts)‖ equals sqrt(p)/‖sqrt(p)‖, so the histogram needs no normalising
    return unit(np.sqrt(counts.astype(np.float64)))


def head_box(face: Box, shape: tuple[int, ...]) -> Box:
    """The head around a face box (see FACE_TO_HEAD_*), clipped to an image of `shape`."""
    x0, y0, x1, y1 = face
    width, height = x1 - x0, y1 - y0
    return (max(0, round(x0 - FACE_TO_HEAD_SIDE * width)), max(0, round(y0 - FACE_TO_HEAD_UP * height)),
            min(shape[1], round(x1 + FACE_TO_HEAD_SIDE * width)), min(shape[0], y1))


def soft_palette_signature(image: np.ndarray, box: Box | None = None) -> np.ndarray:
    """`palette_signature` with soft bins: each pixel's weight is split trilinearly between the
    two nearest of the 8 bin centres (16, 48, … 240) per channel, so a colour on a bin edge —
    a near-white fur at 223/224 — does not flip bins under antialiasing, shading or resampling."""
    pixels = crop(image, box).reshape(-1, 3).astype(np.int32)
    # drawings have few distinct colours: weigh each once, by its pixel count
    colours, counts = np.unique((pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2], return_counts=True)
    rgb = np.stack([colours >> 16, (colours >> 8) & 255, colours & 255], axis=1)
    position = np.clip(rgb / 32.0 - 0.5, 0.0, 7.0)
    low = np.minimum(position.astype(np.intp), 6)
    high_weight = position - low
    histogram = np.zeros(512)
    for corner in range(8):
        step = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
        bins = low + step
        weight = np.where(step, high_weight, 1.0 - high_weight).prod(axis=1) * counts
        histogram += np.bincount((bins[:, 0] << 6) | (bins[:, 1] << 3) | bins[:, 2], weights=weight, minlength=512)
    return unit(np.sqrt(histogram))


def character_signature(image: np.ndarray, face: Box) -> np.ndarray:
    """512-d identity signature of a drawn character: the `soft_palette_signature` of its head
    (`head_box`: the face with its hair, ears and headwear). A hair, outfit or accent colour change
    that a face-box histogram shrugs off (most of a face box is skin) moves a large share of the
    head's colours; a turn of the head, a run cycle or a blink moves none. Where colours are is not
    measured: a layout change in the same colours goes unseen, and so does an eye-colour change
    alone (eyes are a sliver of the head)."""
    return soft_palette_signature(image, head_box(face, image.shape))


def colour_mood(image: np.ndarray) -> np.ndarray:
    """64-d coarse colour signature of a whole frame: the joint 4×4×4 RGB histogram, square-rooted
    and L2-normalised. Coarse on purpose: it compares a scene's light and palette across cuts,
    not the exact colours of whoever is in frame."""
    bins = (image.reshape(-1, 3) >> 6).astype(np.intp)  # 256 / 4 = 64 levels a bin
    counts = np.bincount((bins[:, 0] << 4) | (bins[:, 1] << 2) | bins[:, 2], minlength=64)
    return unit(np.sqrt(counts.astype(np.float64)))


def scene_continuity(last_frames: Sequence[np.ndarray], first_frames: Sequence[np.ndarray]) -> Score:
    """Continuity across each cut i → i+1: cosine of `colour_mood` of shot i's last frame and shot
    i+1's first frame; value = the worst cut (1.0 when there is no cut)."""
    per_cut = tuple(cosine(colour_mood(a), colour_mood(b)) for a, b in zip(last_frames, first_frames, strict=True))
    return Score("scene_continuity", min(per_cut, default=1.0), CONTINUITY_BACKEND, per_cut)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """a·b / (‖a‖‖b‖); 0 when either vector is zero."""
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norms) if norms > 0 else 0.0


def anchor(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """L2-normalised mean of the L2-normalised vectors (an ArcFace-style identity anchor)."""
    if not len(vectors):
        raise ValueError("an anchor needs at least one vector")
    return unit(np.mean([unit(np.asarray(v, dtype=np.float64)) for v in vectors], axis=0))


class IdentityMeter:
    """`identity_score` one frame at a time: per frame, one similarity (the frame is not kept)."""

    def __init__(self, anchor: np.ndarray, signature: Callable[[np.ndarray, Box], np.ndarray] = palette_signature,
                 backend: str = PALETTE_BACKEND) -> None:
        self.anchor, self.signature, self.backend = anchor, signature, backend
        self._values: list[float] = []
        self._missing: list[int] = []

    def add(self, frame: np.ndarray, box: Box | None) -> None:
        if box is None:
            self._missing.append(len(self._values))
        self._values.append(0.0 if box is None else cosine(self.signature(frame, box), self.anchor))

    def result(self) -> Score:
        if not self._values:
            raise ValueError("need one box (or None) per frame, got no frames")
        per_frame = tuple(self._values)
        return Score("identity", min(per_frame), self.backend, per_frame, {"frames_without_face": list(self._missing)})


def identity_score(frames: Sequence[np.ndarray], boxes_per_frame: Sequence[Box | None], anchor: np.ndarray,
                   signature: Callable[[np.ndarray, Box], np.ndarray] = palette_signature,
                   backend: str = PALETTE_BACKEND) -> Score:
    """per_frame[i] = cosine(signature(frame_i, box_i), anchor), 0 where the frame has no box;
    value = min over frames (the gate is "identity ≥ threshold in every frame"). The anchor must
    come from the same `signature` (`palette_signature`, or `character_signature` with
    CHARACTER_BACKEND). `IdentityMeter` computes it as frames stream."""
    if len(frames) != len(boxes_per_frame) or not len(frames):
        raise ValueError(f"need one box (or None) per frame, got {len(frames)} frames, {len(boxes_per_frame)} boxes")
    meter = IdentityMeter(anchor, signature, backend)
    for frame, box in zip(frames, boxes_per_frame):
        meter.add(frame, box)
    return meter.result()


# --- SSIM and near-duplicates ---------------------------------------------------------

class _SsimStats(NamedTuple):
    gray: np.ndarray
    mu: np.ndarray
    mean_sq: np.ndarray  # Gaussian-weighted mean of gray²


def _gauss(array: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(array, SSIM_SIGMA, truncate=SSIM_TRUNCATE, mode="reflect")


def _ssim_stats(gray: np.ndarray) -> _SsimStats:
    gray = gray.astype(np.float64)
    return _SsimStats(gray, _gauss(gray), _gauss(gray * gray))


def _ssim_from_stats(x: _SsimStats, y: _SsimStats) -> float:
    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2
    covariance = _gauss(x.gray * y.gray) - x.mu * y.mu
    var_x, var_y = x.mean_sq - x.mu**2, y.mean_sq - y.mu**2
    ssim_map = ((2 * x.mu * y.mu + c1) * (2 * covariance + c2)) / ((x.mu**2 + y.mu**2 + c1) * (var_x + var_y + c2))
    # Only windows wholly inside the image count (Wang et al.'s 'valid' filtering); tiny images keep all
    r = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    if min(ssim_map.shape) > 2 * r:
        ssim_map = ssim_map[r:-r, r:-r]
    return float(ssim_map.mean())


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the BT.601 grayscale images (Wang et al. 2004): per 11×11 Gaussian window
    (σ = 1.5) SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (0.01·255)², C2 = (0.03·255)², averaged over the windows wholly inside the image."""
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"SSIM needs equal sizes, got {a.shape[:2]} and {b.shape[:2]}")
    return _ssim_from_stats(_ssim_stats(_luma(a)), _ssim_stats(_luma(b)))


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """Grayscale, 64 px high, width in proportion (area-averaged)."""
    height, width = image.shape[:2]
    size = (max(1, round(width * THUMBNAIL_HEIGHT / height)), THUMBNAIL_HEIGHT)
    return np.asarray(Image.fromarray(_luma(image)).resize(size, Image.Resampling.BOX))


def near_duplicates(images: Sequence[np.ndarray], threshold: float) -> list[tuple[int, int, float]]:
    """Pairs (i, j, s), i < j, whose SSIM s on 64-px-high grayscale thumbnails is ≥ threshold.
    Images of different aspect ratios (thumbnail widths) are never duplicates."""
    stats = [_ssim_stats(_thumbnail(image)) for image in images]
    pairs = []
    for i, j in combinations(range(len(stats)), 2):
        if stats[i].gray.shape == stats[j].gray.shape:
            similarity = _ssim_from_stats(stats[i], stats[j])
            if similarity >= threshold:
                pairs.append((i, j, similarity))
    return pairs


def duplicates_of(image: np.ndarray, others: Sequence[np.ndarray], threshold: float) -> list[tuple[int, float]]:
    """(index into others, s) for each of `others` whose thumbnail SSIM s with `image` is ≥ threshold
    (near_duplicates for one image against a set, without comparing the set with itself)."""
    mine = _ssim_stats(_thumbnail(image))
    hits = []
    for index, other in enumerate(others):
        theirs = _ssim_stats(_thumbnail(other))
        if theirs.gray.shape == mine.gray.shape:
            similarity = _ssim_from_stats(mine, theirs)
            if similarity >= threshold:
                hits.append((index, similarity))
    return hits


# --- clip metrics -----------------------------------------------------------------------

def _mean_absdiff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a − b| over all pixels and channels, 0–255 (cv2.absdiff then mean)."""
    # max − min on uint8 is the exact |a − b| without widening the frames to a signed type
    return float((np.maximum(a, b) - np.minimum(a, b)).mean(dtype=np.float64))


def _blend(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Midpoint of two uint8 frames, truncated like VBench's tensor2img (floor of (a + b)/2)."""
    return ((a.astype(np.uint16) + b) >> 1).astype(np.uint8)


@dataclass(frozen=True)
class Interpolator:
    """A midpoint frame interpolator for VBench motion smoothness: `midpoint(E_k, E_k+1)` is the
    uint8 frame at t = ½; `backend` goes into the Score, `name` into its details."""

    name: str
    backend: str
    midpoint: Callable[[np.ndarray, np.ndarray], np.ndarray]


LINEAR_BLEND = Interpolator(SMOOTHNESS_INTERPOLATOR, SMOOTHNESS_BACKEND, _blend)
BLOCK_FLOW = Interpolator(FLOW_INTERPOLATOR, FLOW_SMOOTHNESS_BACKEND, flow.interpolate_midpoint)


class SmoothnessMeter:
    """`motion_smoothness` one frame at a time: it holds the last even frame and the odd frame
    after it, the window the formula reads (E_k, O_k, E_k+1)."""

    def __init__(self, interpolator: Interpolator = LINEAR_BLEND) -> None:
        self.interpolator = interpolator
        self.count = 0
        self._even: np.ndarray | None = None
        self._odd: np.ndarray | None = None
        self._d: list[float] = []

    def add(self, frame: np.ndarray) -> None:
        if frame.dtype != np.uint8:
            raise ValueError("frames must be uint8 arrays")
        if self.count % 2:
            self._odd = frame
        else:
            if self._even is not None and self._odd is not None:
                self._d.append(_mean_absdiff(self._odd, self.interpolator.midpoint(self._even, frame)))
            self._even = frame
        self.count += 1

    def result(self) -> Score:
        if self.count < 3:
            raise ValueError(f"need at least 3 frames, got {self.count}")
        d = np.array(self._d)
        return Score("motion_smoothness", float((255.0 - d.mean()) / 255.0), self.interpolator.backend,
                     tuple(((255.0 - d) / 255.0).tolist()),
                     {"interpolator": self.interpolator.name, "frames": [2 * k + 1 for k in range(len(d))]})


def motion_smoothness(frames: Iterable[np.ndarray], interpolator: Interpolator = LINEAR_BLEND) -> Score:
    """VBench's formula: even frames E_k = f_2k, odd O_k = f_2k+1, I_k = interpolator(E_k, E_k+1),
    D_k = mean |O_k − I_k| on uint8 for k = 0..|E|−2; value = (255 − mean_k D_k)/255;
    per_frame[k] = (255 − D_k)/255 for frame 2k+1. VBench interpolates with AMT-S; LINEAR_BLEND
    (I_k = floor((E_k + E_k+1)/2)) is exact only for motion linear in intensity (fades), so it
    scores real motion lower than AMT would; BLOCK_FLOW (`flow.interpolate_midpoint`) follows
    rigid motion. `SmoothnessMeter` computes it as frames stream."""
    meter = SmoothnessMeter(interpolator)
    for frame in frames:
        meter.add(frame)
    return meter.result()


# --- still-image quality ----------------------------------------------------------------

def sharpness(image: np.ndarray) -> float:
    """v = variance of the 4-neighbour Laplacian of the grayscale image (0–255 scale), mapped to
    0–1 by the saturating v / (v + 100): 0.5 at the usual blur cut-off, → 1 for crisp line art."""
    variance = float(ndimage.laplace(_luma(image)).var())
    return variance / (variance + SHARPNESS_HALF)


def mean_luminance(image: np.ndarray) -> float:
    """Mean BT.601 luma in 0–1."""
    return float(_luma(image).mean()) / 255.0


def exposure(image: np.ndarray) -> float:
    """1 − |mean luminance − 0.5|·2, luminance in 0–1: 1 for mid-grey mean, 0 for black or white."""
    return 1.0 - abs(mean_luminance(image) - 0.5) * 2.0


def contrast(image: np.ndarray) -> float:
    """Standard deviation of luminance (0–1) divided by 0.5, its largest possible value."""
    return min(1.0, float(_luma(image).std()) / 255.0 / 0.5)


def aesthetic_proxy(images: Sequence[np.ndarray]) -> Score:
    """Weight-free stand-in for the LAION aesthetic score, on its 0–10 scale but not comparable
    with it: per image 10·(sharpness + exposure + contrast)/3; value = the mean over images."""
    per_image = tuple(10.0 * (sharpness(image) + exposure(image) + contrast(image)) / 3.0 for image in images)
    if not per_image:
        raise ValueError("need at least one image")
    return Score("aesthetic", float(np.mean(per_image)), AESTHETIC_PROXY_BACKEND, per_image)


def palette_features(frames: Sequence[np.ndarray]) -> np.ndarray:
    """N×512 `palette_signature`s of whole frames: the feature extractor of the weight-free
    subject-consistency fallback (`vbench.subject_consistency`)."""
    return np.stack([palette_signature(frame) for frame in frames])


# --- style adherence --------------------------------------------------------------------

FLAT_TAGS = ("cel shading", "cel-shaded", "cel shaded", "flat color", "flat colors", "flat colour", "flat colours")
FLAT_RANGE = 8.0  # a 3×3 luma range up to this (of 255) is a flat fill, allowing for compression noise


def _segment_distance_sq(planes: list[np.ndarray], start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per pixel, the squared RGB distance to the segment start→end."""
    direction = end - start
    length_sq = float(direction @ direction)
    offsets = [plane - float(s) for plane, s in zip(planes, start)]
    t = sum(o * float(d) for o, d in zip(offsets, direction)) / length_sq if length_sq else 0.0
    t = np.clip(t, 0.0, 1.0)
    return sum((o - t * float(d)) ** 2 for o, d in zip(offsets, direction))


def palette_adherence(image: np.ndarray, colors: Sequence[ColorLike], tolerance: float = COLOR_TOLERANCE) -> float:
    """Share (0–1) of pixels within RGB distance `tolerance` of the palette's colour segments:
    black → c for each palette colour c (its shades: cel shadows, outlines) and c → c' for each
    pair (their blends: gradients, antialiased edges between fills)."""
    if image.size == 0 or not colors:
        return 0.0
    rgb = [np.asarray(as_rgb(c), dtype=np.float32) for c in colors]
    black = np.zeros(3, dtype=np.float32)
    segments = [(black, c) for c in rgb] + list(combinations(rgb, 2))
    planes = [image[..., i].astype(np.float32) for i in range(3)]
    nearest = None
    for start, end in segments:
        distance = _segment_distance_sq(planes, start, end)
        nearest = distance if nearest is None else np.minimum(nearest, distance)
    return float((nearest <= tolerance**2).mean())


def flat_colour_share(image: np.ndarray) -> float:
    """Share (0–1) of pixels whose 3×3 neighbourhood spans at most 8 luma levels: cel-shaded
    fills are flat, painterly or photographic texture is not."""
    luma = _luma(image)
    spread = ndimage.maximum_filter(luma, size=3) - ndimage.minimum_filter(luma, size=3)
    return float((spread <= FLAT_RANGE).mean())


def style_adherence(image: np.ndarray, palette: Sequence[ColorLike], style_tags: Sequence[str] = (),
                    tolerance: float = COLOR_TOLERANCE) -> Score:
    """Weight-free style adherence of a still: value = the mean of the measured components,
    `palette` = palette_adherence(image, palette) and, when a style tag asks for cel shading or
    flat colour (FLAT_TAGS), `flat_colour` = flat_colour_share(image). Tags with no weight-free
    measure are listed in details["unmeasured_tags"], not guessed at."""
    components = {"palette": palette_adherence(image, palette, tolerance)}
    tags = [tag.strip().lower() for tag in style_tags]
    if any(tag in FLAT_TAGS for tag in tags):
        components["flat_colour"] = flat_colour_share(image)
    unmeasured = [tag for tag in tags if tag not in FLAT_TAGS]
    return Score("style_adherence", float(np.mean(list(components.values()))), STYLE_BACKEND, (),
                 {**components, "unmeasured_tags": unmeasured})

