"""Weight-free optical flow for frame interpolation: coarse-to-fine bilateral block matching.

Bilateral (symmetric) block matching explains each B×B block of the frame *between* a and b
by a half-step displacement d: the block's content was at p − d in a and is at p + d in b.
Per block, d = argmin Σ_block |Y_a(p − d) − Y_b(p + d)| over integer d, where Y is BT.601 luma
rounded to eighths of a level, round((299·R + 587·G + 114·B)/125)/8, less its frame mean rounded
to a whole eighth (global flicker is not motion), and samples outside the frame clamp to the
edge. Every cost is an exact integer, so ties between candidate vectors are exact. The search
runs coarse to fine over a pyramid of 2×2 averages: every vector within `COARSE_RADIUS` on the
¼-resolution level; then, at ½ and full resolution, v + δ (|δ| ≤ 1 per axis) for v = 0 and for
the `REFINE_VECTORS` most common vectors of the coarser estimate (doubled), offered to every
block. Candidates are tried smallest |d| first, a tie keeps the earlier one, and any motion must
beat standing still by `MOTION_BIAS` a pixel, so flat or merely noisy regions get zero motion.
The full motion from a to b is 2d; the largest representable |d| per axis is
2·(2·4 + 1) + 1 = 19 px.

It is the midpoint interpolator of the weight-free VBench motion smoothness (a stand-in for AMT,
`weightfree.BLOCK_FLOW`) and says so in every result. The temporal gates' sub-pixel flow between
consecutive frames is `motion`'s.
"""

from __future__ import annotations

import numpy as np

FLOW_BLOCK = 16  # px at full resolution; the block grid is the same at every pyramid level
LEVELS = 3  # full, ½ and ¼ resolution
COARSE_RADIUS = 4  # search radius at the coarsest level, in that level's pixels
REFINE_VECTORS = 6  # common motions offered to every block at each finer level
# Any motion must beat standing still by this many luma levels a pixel: sensor or codec noise
# on a still, or a block that could dodge a sliver of a moving edge, is not motion.
MOTION_BIAS = 1.0
FLOW_BACKEND = "weight-free: bilateral block-matching flow"
LUMA_STEPS = 8  # Y is luma rounded to 1/8 of a level

# Implementation: every level holds whole numbers. The full-resolution level is Y in eighths
# (|Y| ≤ 2040) as int16; level k > 0 holds 2×2 *sums* applied k times (4^k × the average) as
# int32, so a block's SAD there is 4^k × its SAD on the averages. The bias, in the same units
# (eighths × full-resolution pixels: a block always covers FLOW_BLOCK² of them), is the same at
# every level, which leaves every argmin as it is on the averages. At the finest level a
# difference is ≤ 4080 (int16) and a 16-row strip of one column ≤ 65 280 (uint16); a block's
# cost, at any level, ≤ 256·4080 + bias ≈ 1.05e6 (int32).
_BIAS = round(MOTION_BIAS * LUMA_STEPS * FLOW_BLOCK * FLOW_BLOCK)  # per block, at every level
# how far each level's samples may be shifted (its largest |d| per axis), finest level first
_REACH = tuple(reversed([COARSE_RADIUS * 2**i + 2**i - 1 for i in range(LEVELS)]))
# BT.601 weights × 1000: float32 holds each weighted sum exactly (whole numbers below 2²⁴)
_LUMA_THOUSANDTHS = np.array([299, 587, 114], dtype=np.float32)
_PER_STEP = 1000 // LUMA_STEPS  # thousandths of a level in one step of Y: 125
_RUN_ELEMENTS = 1 << 18  # differences computed at once: ≤ 1 MiB, about a core's L2 cache
assert 2 * 255 * LUMA_STEPS * FLOW_BLOCK < 2**16, "finest-level strip sums must fit uint16"


def _luma(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma in whole eighths of a level less its mean rounded to a whole eighth (int16):
    a global brightness change (flicker, a fade) is not motion, and frames with the same content
    give identical arrays, so equal pixels stay equal and ties are exact."""
    thousandths = np.matmul(frame[..., :3], _LUMA_THOUSANDTHS).astype(np.int32)
    # round(k/125) = ⌊(k + 62)/125⌋ exactly: k/125 is never halfway between whole numbers
    eighths = (thousandths + _PER_STEP // 2) // _PER_STEP
    total, count = int(eighths.sum(dtype=np.int64)), eighths.size
    eighths -= (2 * total + count) // (2 * count)  # the mean, rounded half up
    return eighths.astype(np.int16)


def _pad_to_blocks(gray: np.ndarray) -> np.ndarray:
    height, width = gray.shape
    if not (height % FLOW_BLOCK or width % FLOW_BLOCK):
        return gray
    return np.pad(gray, ((0, -height % FLOW_BLOCK), (0, -width % FLOW_BLOCK)), mode="edge")


def _pyramid(frame: np.ndarray) -> tuple[np.ndarray, ...]:
    """The luma pyramid of a frame, finest level first, each level padded by its `_REACH` with
    edge values (clamping samples outside the frame): Y, then 4^k × the 2×2-average levels."""
    level = _pad_to_blocks(_luma(frame))
    levels = [level]
    level = level.astype(np.int32)
    for _ in range(LEVELS - 1):
        pairs = level[0::2] + level[1::2]
        level = pairs[:, 0::2] + pairs[:, 1::2]
        levels.append(level)
    return tuple(np.pad(level, reach, mode="edge") for level, reach in zip(levels, _REACH))


def _candidates(radius: int) -> np.ndarray:
    """All integer offsets within `radius` per axis, smallest length first (n×2: dy, dx)."""
    span = np.arange(-radius, radius + 1)
    return _sorted(np.stack(np.meshgrid(span, span, indexing="ij"), axis=-1).reshape(-1, 2))


def _runs(offsets: np.ndarray, longest: int) -> list[tuple[int, int, np.ndarray]]:
    """The offsets as runs (dy, first dx, their indices) of at most `longest` consecutive dx at
    one dy, so that a run's shifted samples are strided views of one padded array."""
    order = np.lexsort((offsets[:, 1], offsets[:, 0]))
    runs: list[tuple[int, int, list[int]]] = []
    for index in order.tolist():
        dy, dx = int(offsets[index, 0]), int(offsets[index, 1])
        if runs and runs[-1][0] == dy and runs[-1][1] + len(runs[-1][2]) == dx and len(runs[-1][2]) < longest:
            runs[-1][2].append(index)
        else:
            runs.append((dy, dx, [index]))
    return [(dy, dx, np.array(indices)) for dy, dx, indices in runs]


def _costs(a: np.ndarray, b: np.ndarray, reach: int, block: int, offsets: np.ndarray) -> np.ndarray:
    """SAD per block of a(p − d) and b(p + d) for each uniform offset d, plus the motion bias for
    d ≠ 0: (len(offsets), bh, bw) int32. a and b are pyramid levels padded by `reach` ≥ |d|."""
    height, width = a.shape[0] - 2 * reach, a.shape[1] - 2 * reach
    rows, cols = height // block, width // block
    longest = max(1, _RUN_ELEMENTS // (height * width))  # keep a run's differences in cache
    # windows[:, j, :] holds columns j … j + width − 1 of the padded level: a(x − dx) is window
    # reach − dx of a, b(x + dx) window reach + dx of b
    windows_a = np.lib.stride_tricks.sliding_window_view(a, width, axis=1)
    windows_b = np.lib.stride_tricks.sliding_window_view(b, width, axis=1)
    # |differences| of the int16 level fit uint16 summed down a block (see _BIAS)
    strip_type = np.uint16 if a.dtype == np.int16 else np.int32
    most = min(longest, len(offsets))
    buffer, strip_buffer = np.empty(height * most * width, a.dtype), np.empty(rows * most * width, strip_type)
    sums_buffer = np.empty(rows * most * cols, np.int32)
    costs = np.empty((len(offsets), rows, cols), dtype=np.int32)
    for dy, dx, indices in _runs(offsets, longest):
        n = len(indices)
        first_a = reach - dx
        shifted_a = windows_a[reach - dy:reach - dy + height, first_a:first_a - n if first_a >= n else None:-1]
        shifted_b = windows_b[reach + dy:reach + dy + height, reach + dx:reach + dx + n]
        diff = buffer[:height * n * width].reshape(height, n, width)
        np.subtract(shifted_a, shifted_b, out=diff)
        np.abs(diff, out=diff)
        # block sums: first down each block's rows (long contiguous adds), then across each
        # block's columns as `block` strided adds (numpy's sum over a short last axis is slow)
        strips = strip_buffer[:rows * n * width].reshape(rows, n, cols, block)
        np.sum(diff.view(strip_type).reshape(rows, block, n, width), axis=1, out=strips.reshape(rows, n, width))
        sums = sums_buffer[:rows * n * cols].reshape(rows, n, cols)
        np.copyto(sums, strips[..., 0])
        for column in range(1, block):
            np.add(sums, strips[..., column], out=sums)
        costs[indices] = sums.transpose(1, 0, 2)
    costs[np.any(offsets != 0, axis=1)] += _BIAS
    return costs


def _sorted(offsets: np.ndarray) -> np.ndarray:
    """Unique offsets, smallest length first, so that ties resolve towards less motion."""
    unique = np.unique(offsets, axis=0)
    return unique[np.lexsort((unique[:, 1], unique[:, 0], (unique**2).sum(axis=1)))]


_NEAR = _candidates(1)
_COARSE = _candidates(COARSE_RADIUS)


def _refine(a: np.ndarray, b: np.ndarray, reach: int, block: int, predicted: np.ndarray) -> np.ndarray:
    """Per block, the cheapest of δ and v + δ (|δ| ≤ 1 per axis) for v among the
    `REFINE_VECTORS` most common predicted vectors. Offering every block the frame's common
    motions, rather than only its own prediction, mends blocks on a moving edge, where the
    coarser levels mixed object and background; small motions are always on offer."""
    vectors, counts = np.unique(predicted.reshape(-1, 2), axis=0, return_counts=True)
    common = vectors[np.argsort(-counts, kind="stable")[:REFINE_VECTORS]]
    offsets = _sorted(np.concatenate([_NEAR, (common[:, None] + _NEAR[None]).reshape(-1, 2)]))
    return offsets[np.argmin(_costs(a, b, reach, block, offsets), axis=0)]


def _flow(pyramid_a: tuple[np.ndarray, ...], pyramid_b: tuple[np.ndarray, ...]) -> np.ndarray:
    coarsest = LEVELS - 1
    costs = _costs(pyramid_a[coarsest], pyramid_b[coarsest], _REACH[coarsest], FLOW_BLOCK >> coarsest, _COARSE)
    flow = _COARSE[np.argmin(costs, axis=0)]
    for level in reversed(range(coarsest)):
        flow = _refine(pyramid_a[level], pyramid_b[level], _REACH[level], FLOW_BLOCK >> level, 2 * flow)
    return flow


def block_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Half-step flow between frames a and b (H×W×3 uint8, same size): an array of
    ⌈H/16⌉×⌈W/16⌉×2 integer (dy, dx) per 16-px block of the middle frame (see the module doc)."""
    if a.shape != b.shape:
        raise ValueError(f"flow needs equal sizes, got {a.shape} and {b.shape}")
    return _flow(_pyramid(a), _pyramid(b))


def _sample(frame: np.ndarray, flow: np.ndarray, sign: int) -> np.ndarray:
    """frame (H×W×C) sampled at p + sign·d(p), d from the block flow, edges clamped."""
    height, width, channels = frame.shape
    block_rows, block_cols = flow.shape[:2]
    y = np.arange(block_rows * FLOW_BLOCK).reshape(block_rows, FLOW_BLOCK, 1, 1)
    x = np.arange(block_cols * FLOW_BLOCK).reshape(1, 1, block_cols, FLOW_BLOCK)
    rows = np.clip(y + sign * flow[:, None, :, None, 0], 0, height - 1)
    cols = np.clip(x + sign * flow[:, None, :, None, 1], 0, width - 1)
    index = (rows * width + cols).reshape(block_rows * FLOW_BLOCK, block_cols * FLOW_BLOCK)
    return np.take(frame.reshape(height * width, channels), index[:height, :width], axis=0)


def interpolate_midpoint(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The frame halfway between uint8 frames a and b: I(p) = ⌊(a(p − d) + b(p + d)) / 2⌋ with d
    the block flow at p (truncated like VBench's tensor2img)."""
    flow = block_flow(a, b)
    from_a, from_b = _sample(a, flow, -1), _sample(b, flow, 1)
    # ⌊(x + y)/2⌋ = (x & y) + ((x ^ y) >> 1), without widening past uint8
    return (from_a & from_b) + ((from_a ^ from_b) >> 1)
