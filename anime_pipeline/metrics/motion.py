"""Sub-pixel motion between consecutive frames, computed once per clip for every temporal gate.

Each frame is reduced to a *working* luma image: BT.601 luma (PIL's "L", whole levels),
area-resized so that its short side is at most `WORK_SHORT_SIDE` px (never enlarged), blurred with a Gaussian of σ = `BLUR_SIGMA`
working px (so that one-pixel edges have gradients a linear model can follow, and sensor or codec
noise is damped), then standardised to zero mean and unit standard deviation. Standardising makes
a global brightness or contrast change (a fade, a flash) no motion at all; a frame whose blurred
luma varies by less than `BLANK_STD` levels is *blank* (a flat flash, black) and shows no motion.

Flow is per block of `BLOCK` × `BLOCK` working px: v(block) such that b(p + v) ≈ a(p) for the
block's pixels p, a the earlier frame. It is found coarse to fine on a three-level pyramid
(2 × 2 means) by Lucas–Kanade in its inverse-compositional form (the linearisation uses a's
gradients, so each frame's structure tensors are computed once): at the coarsest level each
block starts at zero or at the global translation found by phase correlation, whichever
matches better; at every level, v ← v − (M + εI)⁻¹ Σ ∇a·(b(p + v) − a), with M = Σ ∇a∇aᵀ over
the block (over its 3 × 3 neighbourhood of blocks at the two coarse levels, which regularises
the coarse field). The ε term (Tikhonov) keeps flat blocks at zero and gives edge blocks their
normal flow (the aperture problem). b is sampled bilinearly, so v is sub-pixel; |v| is capped
at `REACH` working px (samples beyond the frame repeat its edge).

A block's motion is trusted only when it explains the change: the residual energy after motion,
Σ(b(p + v) − a)², must be at most `EXPLAINED_SHARE` of the energy without motion, Σ(b − a)²;
otherwise its motion is zero (noise, a flash, new content: not motion). A block is *textured*
when its mean |∇a|² reaches `TEXTURE_MIN`: only there can motion be seen at all.

It stands in for learned flow (RAFT) and says so in every result built on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

WORK_SHORT_SIDE = 256
BLUR_SIGMA = 1.0
BLOCK = 16  # working px at the finest level; halved at each coarser level
LEVELS = 3
ITERATIONS = (2, 2, 3)  # Lucas–Kanade steps per level, coarsest first
MAX_STEP = 2.0  # largest update per step, in that level's px: a diverging block cannot fly off
REACH = 32  # largest |v| per axis, working px at the finest level
# Tikhonov term per pixel of a block, in standardised gradient units²: a unit-variance drawing
# has |∇|² of order 0.1 on its edges, blurred noise far less
TIKHONOV = 1e-3
TEXTURE_MIN = 2e-3
BLANK_STD = 2.0  # luma levels
EXPLAINED_SHARE = 0.5
THUMB = 8  # returns are judged on 8 × 8 means of the working luma
FLOW_BACKEND = "weight-free: pyramid Lucas-Kanade block flow (no RAFT weights)"


@dataclass(frozen=True)
class _Level:
    """One pyramid level of a standardised frame, as the earlier frame of a pair (blocks,
    gradients, structure tensors) and as the later one (edge-padded image to sample from)."""

    blocks: np.ndarray  # rows × cols × b × b
    grad_y: np.ndarray
    grad_x: np.ndarray
    tensor: tuple[np.ndarray, np.ndarray, np.ndarray]  # Σgy², Σgy·gx, Σgx² per block
    windows: np.ndarray  # (b + 1) × (b + 1) windows of the image padded by `reach`
    block: int
    reach: int


@dataclass(frozen=True)
class WorkingFrame:
    """One frame prepared for flow (see the module doc)."""

    levels: tuple[_Level, ...]  # finest first
    luma: np.ndarray  # blurred luma (levels 0–255) at working size, unpadded
    mean: float
    scale: float  # the std the frame was divided by (at least BLANK_STD)
    blank: bool

    @property
    def thumbnail(self) -> np.ndarray:
        height, width = (side - side % THUMB for side in self.luma.shape)
        part = self.luma[:height, :width]
        return part.reshape(height // THUMB, THUMB, width // THUMB, THUMB).mean(axis=(1, 3)).ravel()


@dataclass(frozen=True)
class PairFlow:
    """The motion from frame a to the next frame b, per block in working px: b(p + v) ≈ a(p)."""

    flow: np.ndarray  # rows × cols × 2 (dy, dx); zero where not explained
    textured: np.ndarray  # rows × cols bool
    explained: np.ndarray  # rows × cols bool
    compensated: np.ndarray  # b's blurred luma sampled at p + v, working size
    inside: np.ndarray  # working size bool: p + v fell inside the frame


def working_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the working images: short side ≤ WORK_SHORT_SIDE, aspect kept."""
    scale = min(1.0, WORK_SHORT_SIDE / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _area_resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    factor = image.height // size[0]
    if factor > 1 and (image.height, image.width) == (size[0] * factor, size[1] * factor):
        return image.reduce(factor)  # whole-factor area averaging: the common 2× case, at half the cost
    return image if (image.height, image.width) == size else image.resize((size[1], size[0]), Image.Resampling.BOX)


def working_rgb(frame: np.ndarray) -> np.ndarray:
    """An RGB frame area-resized to its working size (see `working_size`)."""
    size = working_size(*frame.shape[:2])
    return np.asarray(_area_resized(Image.fromarray(np.ascontiguousarray(frame[..., :3])), size))


def _working_luma(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    luma = _area_resized(Image.fromarray(np.ascontiguousarray(frame[..., :3])).convert("L"), size)  # BT.601, in C
    return ndimage.gaussian_filter(np.asarray(luma, dtype=np.float32), BLUR_SIGMA, truncate=3.0, mode="nearest")


def _to_blocks(image: np.ndarray, block: int) -> np.ndarray:
    rows, cols = image.shape[0] // block, image.shape[1] // block
    return np.ascontiguousarray(image.reshape(rows, block, cols, block).transpose(0, 2, 1, 3))


def _from_blocks(blocks: np.ndarray) -> np.ndarray:
    rows, cols, block, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(rows * block, cols * block)


def _neighbourhood(sums: np.ndarray) -> np.ndarray:
    """Each block's sum over its 3 × 3 neighbourhood of blocks (edge blocks repeated); by slices,
    since the arrays are tiny and a filter call's overhead would dominate."""
    rows = _three(sums)
    return _three(rows.T).T


def _three(values: np.ndarray) -> np.ndarray:
    """values[i − 1] + values[i] + values[i + 1] along the first axis, the edges repeated."""
    total = values.copy()
    total[1:] += values[:-1]
    total[:-1] += values[1:]
    total[0] += values[0]
    total[-1] += values[-1]
    return total


def _level(image: np.ndarray, block: int, reach: int, aggregate: bool) -> _Level:
    grad_y, grad_x = (_to_blocks(g, block) for g in np.gradient(image))
    tensor = tuple((g * h).sum(axis=(2, 3)) for g, h in ((grad_y, grad_y), (grad_y, grad_x), (grad_x, grad_x)))
    if aggregate:
        tensor = tuple(_neighbourhood(t) for t in tensor)
    padded = np.pad(image, reach + 1, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (block + 1, block + 1))
    return _Level(_to_blocks(image, block), grad_y, grad_x, tensor, windows, block, reach)


def _halve(image: np.ndarray) -> np.ndarray:
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def prepare(frame: np.ndarray, size: tuple[int, int]) -> WorkingFrame:
    """A frame (H × W × 3 uint8) as a WorkingFrame of working `size` (see `working_size`)."""
    luma = _working_luma(frame, size)
    mean, std = float(luma.mean()), float(luma.std())
    scale = max(std, BLANK_STD)
    image = np.pad((luma - mean) / scale, ((0, -size[0] % BLOCK), (0, -size[1] % BLOCK)), mode="edge")
    levels = []
    for index in range(LEVELS):
        levels.append(_level(image, BLOCK >> index, REACH >> index, aggregate=index > 0))
        image = _halve(image)
    return WorkingFrame(tuple(levels), luma, mean, scale, std < BLANK_STD)


def _sample(level: _Level, flow: np.ndarray) -> np.ndarray:
    """The level's image sampled bilinearly at p + v(block of p): rows × cols × b × b."""
    rows, cols = flow.shape[:2]
    whole = np.floor(flow)
    fraction = (flow - whole).astype(np.float32)
    origin = level.reach + 1  # padded coordinates of the image's (0, 0)
    ys = (np.arange(rows) * level.block + origin)[:, None] + whole[..., 0].astype(np.intp)
    xs = (np.arange(cols) * level.block + origin)[None, :] + whole[..., 1].astype(np.intp)
    window = level.windows[ys, xs]  # rows × cols × (b + 1) × (b + 1)
    fy, fx = fraction[..., 0, None, None], fraction[..., 1, None, None]
    top = window[:, :, :-1, :-1] + (window[:, :, :-1, 1:] - window[:, :, :-1, :-1]) * fx
    bottom = window[:, :, 1:, :-1] + (window[:, :, 1:, 1:] - window[:, :, 1:, :-1]) * fx
    return top + (bottom - top) * fy


def _lk_step(a: _Level, b: _Level, flow: np.ndarray, aggregate: bool) -> np.ndarray:
    error = _sample(b, flow) - a.blocks
    right_y, right_x = ((g * error).sum(axis=(2, 3)) for g in (a.grad_y, a.grad_x))
    if aggregate:
        right_y, right_x = _neighbourhood(right_y), _neighbourhood(right_x)
    ridge = TIKHONOV * a.block * a.block * (9 if aggregate else 1)
    syy, syx, sxx = a.tensor
    syy, sxx = syy + ridge, sxx + ridge
    det = syy * sxx - syx * syx
    step = np.stack([(sxx * right_y - syx * right_x) / det, (syy * right_x - syx * right_y) / det], axis=-1)
    return np.clip(flow - np.clip(step, -MAX_STEP, MAX_STEP), -a.reach, a.reach - 1)


def _phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The integer translation u with b(p) ≈ a(p − u), by phase correlation (Hann window)."""
    window = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    cross = np.fft.rfft2(b * window) * np.conj(np.fft.rfft2(a * window))
    surface = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), s=a.shape)
    peak = np.array(np.unravel_index(int(np.argmax(surface)), a.shape))
    return np.where(peak > np.array(a.shape) // 2, peak - np.array(a.shape), peak).astype(np.float64)


def _energy(difference: np.ndarray) -> np.ndarray:
    return (difference * difference).sum(axis=(2, 3))


def _initial_flow(a: _Level, b: _Level) -> np.ndarray:
    """Per coarsest block, zero or the global translation, whichever leaves less error."""
    rows, cols = a.tensor[0].shape
    still = np.zeros((rows, cols, 2))
    shift = np.clip(_phase_shift(_from_blocks(a.blocks), _from_blocks(b.blocks)), -a.reach, a.reach - 1)
    moved = np.broadcast_to(shift, (rows, cols, 2))
    better = _energy(_sample(b, moved) - a.blocks) < _energy(b.blocks - a.blocks)
    return np.where(better[..., None], moved, still)


def _inside(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    rows, cols = flow.shape[:2]
    y = (np.arange(rows) * BLOCK)[:, None, None, None] + np.arange(BLOCK)[None, None, :, None] + flow[..., 0, None, None]
    x = (np.arange(cols) * BLOCK)[None, :, None, None] + np.arange(BLOCK)[None, None, None, :] + flow[..., 1, None, None]
    return _from_blocks((y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1))[:height, :width]


def pair_flow(a: WorkingFrame, b: WorkingFrame) -> PairFlow:
    """The flow from a to b and its reliability (see the module doc)."""
    finest = a.levels[0]
    rows, cols = finest.tensor[0].shape
    flow = np.zeros((rows, cols, 2))
    if not (a.blank or b.blank):
        flow = _initial_flow(a.levels[-1], b.levels[-1])
        for index in reversed(range(LEVELS)):
            for _ in range(ITERATIONS[LEVELS - 1 - index]):
                flow = _lk_step(a.levels[index], b.levels[index], flow, aggregate=index > 0)
            if index:
                flow = 2.0 * flow
    textured = (finest.tensor[0] + finest.tensor[2]) / (BLOCK * BLOCK) >= TEXTURE_MIN
    moved = _sample(b.levels[0], flow)
    explained = _energy(moved - finest.blocks) <= EXPLAINED_SHARE * _energy(b.levels[0].blocks - finest.blocks)
    flow = np.where(explained[..., None], flow, 0.0)
    moved = np.where(explained[..., None, None], moved, b.levels[0].blocks)
    height, width = a.luma.shape
    compensated = _from_blocks(moved)[:height, :width] * b.scale + b.mean
    return PairFlow(flow, textured, explained, compensated, _inside(flow, height, width))


class PairStream:
    """Consecutive pairs of a stream of frames, one frame at a time: `add` prepares each frame once
    and holds only the previous one."""

    def __init__(self) -> None:
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self._previous: WorkingFrame | None = None

    def add(self, frame: np.ndarray) -> tuple[WorkingFrame, WorkingFrame, PairFlow] | None:
        """The next frame; (a, b, flow) from the frame before it (None for the first frame)."""
        self.shape = self.shape or frame.shape
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 arrays of one size, got {self.shape} and {frame.dtype} "
                             f"{frame.shape}")
        current = prepare(frame, working_size(*self.shape[:2]))
        previous, self._previous = self._previous, current
        self.count += 1
        return None if previous is None else (previous, current, pair_flow(previous, current))

    def check(self) -> None:
        if self.count < 2:
            raise ValueError(f"need at least 2 frames, got {self.count}")


def pair_flows(frames: Iterable[np.ndarray]) -> Iterator[tuple[WorkingFrame, WorkingFrame, PairFlow]]:
    """(a, b, flow) for every consecutive pair of a clip or a stream of frames (`PairStream`)."""
    pairs = PairStream()
    for frame in frames:
        if (pair := pairs.add(frame)) is not None:
            yield pair
    pairs.check()
