"""Weight-free optical flow: coarse-to-fine bilateral block matching, and what is built on it.

Bilateral (symmetric) block matching explains each B×B block of the frame *between* a and b
by a half-step displacement d: the block's content was at p − d in a and is at p + d in b.
Per block, d = argmin Σ_block |Y_a(p − d) − Y_b(p + d)| over integer d, where Y is BT.601 luma
less its frame mean (global flicker is not motion) and samples outside the frame clamp to the
edge. The search runs coarse to fine: every vector within `COARSE_RADIUS` on a ¼-resolution
pyramid level; then, at ½ and full resolution, v + δ (|δ| ≤ 1 per axis) for v = 0 and for the
most common vectors of the coarser estimate (doubled). Candidates are tried smallest |d| first,
a tie keeps the earlier one, and any motion must beat standing still by `MOTION_BIAS` a pixel,
so flat or merely noisy regions get zero motion. The full motion from a to b is 2d; the largest
representable |d| per axis is 2·(2·4 + 1) + 1 = 19 px.

It is a stand-in for learned flow and interpolation (RAFT, AMT) and says so in every result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anime_pipeline.metrics.scores import Score

FLOW_BLOCK = 16  # px at full resolution; the block grid is the same at every pyramid level
LEVELS = 3  # full, ½ and ¼ resolution
COARSE_RADIUS = 4  # search radius at the coarsest level, in that level's pixels
REFINE_VECTORS = 6  # common motions offered to every block at each finer level
# Any motion must beat standing still by this many luma levels a pixel: sensor or codec noise
# on a still, or a block that could dodge a sliver of a moving edge, is not motion.
MOTION_BIAS = 1.0
FLOW_BACKEND = "weight-free: bilateral block-matching flow"
DYNAMIC_BACKEND = FLOW_BACKEND + ", VBench dynamic-degree rule"
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# VBench dynamic degree (vbench/dynamic_degree.py), with this flow in place of RAFT
DYNAMIC_SAMPLE_FPS = 8.0
DYNAMIC_TOP_SHARE = 0.05
DYNAMIC_THRESHOLD_PX = 6.0  # at a 256-px short side, scaled with the short side


def _luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma less its mean: a global brightness change (flicker, a fade) is not motion."""
    luma = frame[..., :3].astype(np.float32) @ LUMA
    # a float64 mean rounded to float32: frames with the same content get bit-identical means, so
    # equal pixels stay equal and ties between candidate vectors are exact
    return luma - np.float32(luma.mean(dtype=np.float64))


def _pad_to_blocks(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    return np.pad(gray, ((0, -height % FLOW_BLOCK), (0, -width % FLOW_BLOCK)), mode="edge")


def _halve(gray: np.ndarray) -> np.ndarray:
    return 0.25 * (gray[0::2, 0::2] + gray[1::2, 0::2] + gray[0::2, 1::2] + gray[1::2, 1::2])


def _candidates(radius: int) -> np.ndarray:
    """All integer offsets within `radius` per axis, smallest length first (n×2: dy, dx)."""
    span = np.arange(-radius, radius + 1)
    return _sorted(np.stack(np.meshgrid(span, span, indexing="ij"), axis=-1).reshape(-1, 2))


def _costs(a: np.ndarray, b: np.ndarray, block: int, offsets: np.ndarray) -> np.ndarray:
    """SAD per block of a(p − d) and b(p + d) for each uniform offset d, plus the motion bias for
    d ≠ 0: (len(offsets), bh, bw)."""
    height, width = a.shape
    radius = int(np.abs(offsets).max())
    a_pad, b_pad = np.pad(a, radius, mode="edge"), np.pad(b, radius, mode="edge")
    costs = np.empty((len(offsets), height // block, width // block), dtype=np.float32)
    for i, (dy, dx) in enumerate(offsets):
        shifted_a = a_pad[radius - dy:radius - dy + height, radius - dx:radius - dx + width]
        shifted_b = b_pad[radius + dy:radius + dy + height, radius + dx:radius + dx + width]
        costs[i] = _block_sum(np.abs(shifted_a - shifted_b), block)
    costs[np.any(offsets != 0, axis=1)] += MOTION_BIAS * block * block
    return costs


def _block_sum(values: np.ndarray, block: int) -> np.ndarray:
    height, width = values.shape
    return values.reshape(height // block, block, width // block, block).sum(axis=(1, 3))


def _sorted(offsets: np.ndarray) -> np.ndarray:
    """Unique offsets, smallest length first, so that ties resolve towards less motion."""
    unique = np.unique(offsets, axis=0)
    return unique[np.lexsort((unique[:, 1], unique[:, 0], (unique**2).sum(axis=1)))]


def _refine(a: np.ndarray, b: np.ndarray, block: int, predicted: np.ndarray) -> np.ndarray:
    """Per block, the cheapest of δ and v + δ (|δ| ≤ 1 per axis) for v among the
    `REFINE_VECTORS` most common predicted vectors. Offering every block the frame's common
    motions, rather than only its own prediction, mends blocks on a moving edge, where the
    coarser levels mixed object and background; small motions are always on offer."""
    vectors, counts = np.unique(predicted.reshape(-1, 2), axis=0, return_counts=True)
    common = vectors[np.argsort(-counts, kind="stable")[:REFINE_VECTORS]]
    near = _candidates(1)
    offsets = _sorted(np.concatenate([near, (common[:, None] + near[None]).reshape(-1, 2)]))
    return offsets[np.argmin(_costs(a, b, block, offsets), axis=0)]


def block_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half-step flow between frames a and b (H×W×3 uint8, same size): an array of
    ⌈H/16⌉×⌈W/16⌉×2 integer (dy, dx) per 16-px block of the middle frame (see the module doc)."""
    if a.shape != b.shape:
        raise ValueError(f"flow needs equal sizes, got {a.shape} and {b.shape}")
    pyramid = [(_pad_to_blocks(_luma(a)), _pad_to_blocks(_luma(b)))]
    for _ in range(LEVELS - 1):
        pyramid.append((_halve(pyramid[-1][0]), _halve(pyramid[-1][1])))
    coarse = _candidates(COARSE_RADIUS)
    ya, yb = pyramid[-1]
    flow = coarse[np.argmin(_costs(ya, yb, FLOW_BLOCK >> (LEVELS - 1), coarse), axis=0)]
    for level in reversed(range(LEVELS - 1)):
        ya, yb = pyramid[level]
        flow = _refine(ya, yb, FLOW_BLOCK >> level, 2 * flow)
    return flow


def _sample(frame: np.ndarray, flow: np.ndarray, sign: int) -> np.ndarray:
    """frame (H×W×C) sampled at p + sign·d(p), d from the block flow, edges clamped."""
    height, width, channels = frame.shape
    reach = int(np.abs(flow).max())
    padded = np.pad(frame, ((reach, reach), (reach, reach), (0, 0)), mode="edge").reshape(-1, channels)
    stride = width + 2 * reach
    shift = np.repeat(np.repeat(sign * (flow[..., 0] * stride + flow[..., 1]), FLOW_BLOCK, axis=0), FLOW_BLOCK, axis=1)
    rows = np.arange(reach, reach + height)[:, None] * stride + np.arange(reach, reach + width)[None, :]
    return padded[rows + shift[:height, :width]]


def interpolate_midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The frame halfway between uint8 frames a and b: I(p) = ⌊(a(p − d) + b(p + d)) / 2⌋ with d
    the block flow at p (truncated like VBench's tensor2img)."""
    flow = block_flow(a, b)
    return ((_sample(a, flow, -1).astype(np.uint16) + _sample(b, flow, 1)) >> 1).astype(np.uint8)


def motion_magnitude(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel of the middle frame, the length in px of the motion from a to b (2·|d|)."""
    flow = block_flow(a, b)
    length = 2.0 * np.hypot(flow[..., 0], flow[..., 1])
    return np.repeat(np.repeat(length, FLOW_BLOCK, axis=0), FLOW_BLOCK, axis=1)[:a.shape[0], :a.shape[1]]


def _top_share_mean(values: np.ndarray, share: float) -> float:
    """Mean of the largest `share` of the values (VBench: mean of the top 5 % flow lengths)."""
    count = max(1, int(values.size * share))
    return float(np.partition(values.ravel(), values.size - count)[values.size - count:].mean())


def flow_dynamic_degree(frames: Sequence[np.ndarray], fps: float) -> Score:
    """VBench dynamic degree with block-matching flow in place of RAFT: frames are sampled every
    round(fps/8) (≥ 1); for each consecutive sampled pair, m = mean of the top 5 % per-pixel
    motion lengths; a pair moves when m > 6·max(1, 8/fps)·min(H, W)/256 px; the clip is dynamic
    (value 1.0, else 0.0) when at least round(4·n/16) of the n sampled frames' pairs move —
    here at least 1, so that a short still never passes (VBench's count can round to 0).
    per_frame[i] = m for sampled pair i. A looping still, noise or flicker on a still all have
    zero flow, so this is the motion floor the pixel-difference `dynamic_degree` cannot be."""
    if len(frames) < 2:
        raise ValueError(f"need at least 2 frames, got {len(frames)}")
    interval = max(1, round(fps / DYNAMIC_SAMPLE_FPS))
    sampled = frames[::interval]
    height, width = frames[0].shape[:2]
    threshold = max(1.0, DYNAMIC_SAMPLE_FPS / fps) * DYNAMIC_THRESHOLD_PX * min(height, width) / 256.0
    needed = max(1, round(4 * len(sampled) / 16.0))
    motion = [_top_share_mean(motion_magnitude(a, b), DYNAMIC_TOP_SHARE) for a, b in zip(sampled, sampled[1:])]
    moving = sum(m > threshold for m in motion)
    return Score("flow_dynamic_degree", 1.0 if moving >= needed else 0.0, DYNAMIC_BACKEND,
                 tuple(motion), {"threshold_px": threshold, "moving_pairs": moving, "pairs_needed": needed,
                                 "interval": interval})
