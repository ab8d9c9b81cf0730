"""The shot gates' temporal measures, each judged on the worst moment as well as the mean.

All of them read one `ClipMotion`: a single pass over the clip's consecutive pairs with the
sub-pixel flow of `motion` (each frame prepared once). Per pair (f_t, f_t+1), indexed by t:

- *motion compensation*: f_t+1's working luma sampled at p + v (the flow), compared with f_t's
  where p + v lies inside the frame, so that motion is never mistaken for change;
- **temporal stability** (weight-free stand-in for temporal LPIPS): 1 − mean SSIM of the
  compensated pair at half the working size (Gaussian windows, σ = 1.5 px there, wholly inside
  the compensated region); value = the worst pair. A flash, a jump cut or noise changes what no
  motion explains; a pan at any speed does not. (SSIM's luminance term is relative, so the last,
  darkest frames of a fade to black read as change: fades belong to the scene's transitions);
- **temporal flickering**: VBench's formula (255 − MAE)/255 on the compensated pair's luma;
  value = the worst pair, so one flash frame in 48 fails where the clip mean would not;
- **motion floor**: the pair's speed, the `SPEED_QUANTILE` of the blocks' motion lengths over
  textured blocks (motion that does not explain the change counts as none), in full-resolution
  px per frame. A pair *moves* when its speed is at least `MIN_SPEED` short sides of the frame
  per second, neither frame is blank, and f_t+1 is not a *return* to an earlier image; value =
  the share of pairs that move (VBench dynamic degree's rule: a clip moves when ≥ 25 % of its
  pairs do). A still, a noisy still, a fade or a flash have no explained motion; a loop
  (A, B, A, B …) returns;
- **frame timing**: for pair t inside a steady motion — the pairs t − 2, t − 1, t + 1 and t + 2
  agree, block by block, on a step v̄ (their mean; each within `TIMING_AGREEMENT` of it), on at
  least `TIMING_MIN_SHARE` of the pair's textured blocks, all of whose motion explains the change
  — s = the median over those blocks of v_t · v̄ / |v̄|², the pair's share of the steady step. A
  dropped frame gives s ≈ 2, a duplicated frame s ≈ 0; value = the largest |s − 1| (0 where no
  steady motion surrounds a pair). A timing error moves the whole picture, so a steady motion of a
  few blocks (a sprite's whole-pixel bob, a run cycle, a camera shake that agrees by chance) is no
  context to judge it by. A clip animated on twos (each drawing held for two frames) reads as a
  duplicated frame every other pair: generated and previz clips move on ones.

A frame returns when it is much closer to an image two or more frames back than to the frame
just before it: min over s ≤ j − 2 of D(j, s) ≤ `RETURN_SHARE` · D(j, j − 1), D the mean squared
difference of 8 × 8 means of the working luma.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from anime_pipeline.config.schema import Quality
from anime_pipeline.metrics import motion, perceptual
from anime_pipeline.metrics.scores import Score
from anime_pipeline.metrics.weightfree import SSIM_K1, SSIM_K2, SSIM_L, SSIM_SIGMA, SSIM_TRUNCATE

SPEED_QUANTILE = 0.9
MIN_SPEED = 0.02  # short sides of the frame per second
# The gates' thresholds, whose defaults are the show file's (`quality:`): read here for the details
MIN_MOVING_SHARE = Quality().min_moving_share  # VBench dynamic degree: 4 of every 16 sampled pairs
FRAME_TIMING_TOLERANCE = Quality().frame_timing  # |s − 1|: halfway between a steady step and a dropped or doubled one
RETURN_SHARE = 0.5
TIMING_CONTEXT = 2  # pairs each side that must agree on the steady step
TIMING_AGREEMENT = 0.25  # neighbouring flows agree when they differ by at most this share of their mean
TIMING_MIN_STEP = 0.5  # working px: slower steady motion cannot show a timing error
TIMING_MIN_BLOCKS = 4
TIMING_MIN_SHARE = 0.25  # of the pair's textured blocks: the steady motion is the picture's, not a sprite's
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # Wang et al.'s 11 × 11 window

STABILITY_BACKEND = "weight-free: 1 - SSIM after flow motion compensation (stands in for temporal LPIPS)"
FLICKER_BACKEND = "weight-free: VBench temporal flickering formula after flow motion compensation, worst pair"
FLOOR_BACKEND = "weight-free: robust sub-pixel flow speed, loop-aware, VBench dynamic-degree share"
TIMING_BACKEND = "weight-free: flow step ratio against steady neighbours"


@dataclass(frozen=True)
class ClipMotion:
    """What every temporal measure reads, from one pass over a clip (see the module doc)."""

    fps: float
    height: int
    width: int
    scale: float  # working px per full-resolution px
    flows: tuple[np.ndarray, ...]  # per pair: rows × cols × 2, working px
    textured: tuple[np.ndarray, ...]  # per pair: rows × cols bool
    explained: tuple[np.ndarray, ...]  # per pair: rows × cols bool, the block's motion explains its change
    blank: tuple[bool, ...]  # per frame
    change: tuple[float, ...]  # per pair: 1 − SSIM after compensation
    brightness: tuple[float, ...]  # per pair: mean |Δ luma| after compensation, levels
    returns: tuple[bool, ...]  # per frame

    @property
    def pairs(self) -> int:
        return len(self.flows)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float(values.mean())


def _halve(image: np.ndarray) -> np.ndarray:
    even = image[:image.shape[0] // 2 * 2, :image.shape[1] // 2 * 2]
    return 0.25 * (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2])


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM per Gaussian window (σ = 1.5), as `weightfree.ssim`, in float32; the
    five window means in one filter call over a stack."""
    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2
    means = ndimage.gaussian_filter(np.stack([x, y, x * x, y * y, x * y]), (0, SSIM_SIGMA, SSIM_SIGMA),
                                    truncate=SSIM_TRUNCATE, mode="reflect")
    mu_x, mu_y = means[0], means[1]
    var_x, var_y, covariance = means[2] - mu_x * mu_x, means[3] - mu_y * mu_y, means[4] - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * covariance + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))


def _compensated_change(a: motion.WorkingFrame, pair: motion.PairFlow) -> tuple[float, float]:
    """(1 − SSIM at half the working size, mean |Δ|) of a's luma and b's compensated luma,
    where p + v fell inside b (and, for SSIM, the whole window did)."""
    similarity = _ssim_map(_halve(a.luma), _halve(pair.compensated))
    inside = _halve(pair.inside.astype(np.float32)) == 1.0
    valid = ndimage.binary_erosion(inside, iterations=SSIM_RADIUS, border_value=0)
    difference = np.abs(a.luma - pair.compensated)
    return 1.0 - _masked_mean(similarity, valid), _masked_mean(difference, pair.inside)


def _returns(thumbnails: np.ndarray) -> tuple[bool, ...]:
    found = [False] * len(thumbnails)
    for j in range(2, len(thumbnails)):
        distances = ((thumbnails[:j] - thumbnails[j]) ** 2).mean(axis=1)
        step = distances[j - 1]
        found[j] = bool(step > 1e-9 and distances[:j - 1].min() <= RETURN_SHARE * step)
    return tuple(found)


class MotionMeter:
    """`analyse` one frame at a time, for clips that stream: it holds the previous frame's working
    images and what `ClipMotion` keeps per pair and frame (the block flows and masks at the working
    size, an 8 × 8-mean thumbnail): about 15 KB a frame, whatever the frame size."""

    def __init__(self, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.fps = float(fps)
        self._pairs = motion.PairStream()
        self._flows: list[np.ndarray] = []
        self._textured: list[np.ndarray] = []
        self._explained: list[np.ndarray] = []
        self._change: list[float] = []
        self._brightness: list[float] = []
        self._thumbnails: list[np.ndarray] = []
        self._blank: list[bool] = []

    def add(self, frame: np.ndarray) -> motion.PairFlow | None:
        """Take the next frame; the flow from the frame before it (None for the first frame)."""
        found = self._pairs.add(frame)
        if found is None:
            return None
        a, b, pair = found
        if not self._thumbnails:
            self._thumbnails.append(a.thumbnail)
            self._blank.append(a.blank)
        self._thumbnails.append(b.thumbnail)
        self._blank.append(b.blank)
        self._flows.append(pair.flow)
        self._textured.append(pair.textured)
        self._explained.append(pair.explained)
        structural, mean_difference = _compensated_change(a, pair)
        self._change.append(structural)
        self._brightness.append(mean_difference)
        return pair

    def result(self) -> ClipMotion:
        self._pairs.check()
        assert self._pairs.shape is not None
        height, width = self._pairs.shape[:2]
        scale = motion.working_size(height, width)[0] / height
        return ClipMotion(self.fps, height, width, scale, tuple(self._flows), tuple(self._textured),
                          tuple(self._explained), tuple(self._blank), tuple(self._change), tuple(self._brightness),
                          _returns(np.stack(self._thumbnails)))


def analyse(frames: Iterable[np.ndarray], fps: float) -> ClipMotion:
    """The flow, compensated change and returns of every consecutive pair of a clip."""
    meter = MotionMeter(fps)
    for frame in frames:
        meter.add(frame)
    return meter.result()


def _score(name: str, values: Sequence[float], backend: str, higher_is_worse: bool, **details: Any) -> Score:
    """A worst-moment Score: value = the worst per-pair value, the mean in details."""
    per_pair = tuple(float(v) for v in values)
    worst = max(per_pair) if higher_is_worse else min(per_pair)
    return Score(name, worst, backend, per_pair, {"mean": float(np.mean(per_pair)), **details},
                 higher_is_worse=higher_is_worse)


def worst_moment(score: Score) -> Score:
    """A per-frame Score judged on its worst frame: value = the worst per-frame value; the Score's
    own value (a clip mean, like VBench motion smoothness) moves to details["mean"]."""
    if score.worst is None:
        raise ValueError(f"{score.name} has no per-frame values to judge")
    return replace(score, value=score.worst, details={**score.details, "mean": score.value})


def temporal_stability(clip: ClipMotion) -> Score:
    """Worst-pair 1 − SSIM after motion compensation; per_frame[t] is pair (t, t + 1)."""
    return _score("temporal_lpips", clip.change, STABILITY_BACKEND, higher_is_worse=True)


def temporal_flickering(clip: ClipMotion) -> Score:
    """Worst-pair VBench flicker score after motion compensation; per_frame[t] is pair (t, t + 1)."""
    return _score("temporal_flickering", [(255.0 - mae) / 255.0 for mae in clip.brightness], FLICKER_BACKEND,
                  higher_is_worse=False)


def pair_speeds(clip: ClipMotion) -> np.ndarray:
    """Per pair, the robust speed in full-resolution px per frame (see the module doc)."""
    speeds = []
    for flow, textured in zip(clip.flows, clip.textured):
        lengths = np.hypot(flow[..., 0], flow[..., 1])[textured]
        speeds.append(float(np.quantile(lengths, SPEED_QUANTILE)) / clip.scale if lengths.size else 0.0)
    return np.array(speeds)


def motion_floor(clip: ClipMotion) -> Score:
    """The share of pairs that move (see the module doc); per_frame[t] = pair t's speed in px per
    frame. The clip passes the floor when the share is at least MIN_MOVING_SHARE."""
    speeds = pair_speeds(clip)
    floor_px = MIN_SPEED * min(clip.height, clip.width) / clip.fps
    blank, returns = np.array(clip.blank), np.array(clip.returns)
    moving = (speeds >= floor_px) & ~blank[:-1] & ~blank[1:] & ~returns[1:]
    return Score("motion_floor", float(moving.mean()), FLOOR_BACKEND, tuple(speeds.tolist()),
                 {"speed_floor_px_per_frame": floor_px, "min_speed_short_sides_per_s": MIN_SPEED,
                  "moving_pairs": int(moving.sum()), "pairs": clip.pairs, "min_moving_share": MIN_MOVING_SHARE,
                  "returning_frames": [int(i) for i in np.flatnonzero(returns)],
                  "blank_frames": [int(i) for i in np.flatnonzero(blank)]})


def _step_share(clip: ClipMotion, t: int) -> float | None:
    """Median of v_t·v̄/|v̄|² over the blocks where the pairs around t agree on a steady step v̄
    (see the module doc); None when too few blocks move steadily."""
    around = [t + d for d in range(-TIMING_CONTEXT, TIMING_CONTEXT + 1) if d]
    trusted = clip.textured[t] & clip.explained[t]
    for u in around:
        trusted = trusted & clip.textured[u] & clip.explained[u]
    mean = np.mean([clip.flows[u] for u in around], axis=0)
    length = np.hypot(mean[..., 0], mean[..., 1])
    agree = np.ones(length.shape, bool)
    for u in around:
        agree &= np.hypot(*(clip.flows[u] - mean).transpose(2, 0, 1)) <= TIMING_AGREEMENT * length
    steady = trusted & agree & (length >= TIMING_MIN_STEP)
    if np.count_nonzero(steady) < max(TIMING_MIN_BLOCKS, TIMING_MIN_SHARE * np.count_nonzero(clip.textured[t])):
        return None
    shares = (clip.flows[t][steady] * mean[steady]).sum(axis=-1) / (length[steady] ** 2)
    return float(np.median(shares))


def frame_timing(clip: ClipMotion) -> Score:
    """Worst |s − 1| over pairs (see the module doc); per_frame[t] is pair (t, t + 1), 0 where no
    steady motion surrounds it (the first and last TIMING_CONTEXT pairs, stills, irregular motion)."""
    errors, shares = [0.0] * clip.pairs, {}
    for t in range(TIMING_CONTEXT, clip.pairs - TIMING_CONTEXT):
        share = _step_share(clip, t)
        if share is not None:
            shares[t] = share
            errors[t] = abs(share - 1.0)
    return _score("frame_timing", errors, TIMING_BACKEND, higher_is_worse=True,
                  step_shares={t: round(s, 3) for t, s in shares.items() if abs(s - 1.0) > FRAME_TIMING_TOLERANCE},
                  tolerance=FRAME_TIMING_TOLERANCE)


# --- temporal LPIPS on the same rule ------------------------------------------------------------

def compensated(frames: Sequence[np.ndarray], clip: ClipMotion, pair: int) -> tuple[np.ndarray, np.ndarray]:
    """(f_t, f_t+1 sampled at p + v) at full resolution for pair t = `pair`: the flow of the
    working block holding each pixel, scaled to full-resolution px, bilinear; where p + v falls
    outside the frame the pixel is f_t's own, so only what both frames show is compared."""
    return compensate(frames[pair], frames[pair + 1], clip.flows[pair], clip.scale)


def compensate(first: np.ndarray, second: np.ndarray, flow: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """`compensated` for one pair, from its working-size block flow and the working scale."""
    height, width = first.shape[:2]
    flow = flow / scale
    rows = np.minimum(((np.arange(height) + 0.5) * scale // motion.BLOCK).astype(int), flow.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * scale // motion.BLOCK).astype(int), flow.shape[1] - 1)
    per_pixel = flow[rows[:, None], cols[None, :]]
    y = np.arange(height, dtype=np.float64)[:, None] + per_pixel[..., 0]
    x = np.arange(width, dtype=np.float64)[None, :] + per_pixel[..., 1]
    inside = (y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1)
    warped = np.stack([ndimage.map_coordinates(second[..., c].astype(np.float32), [y, x], order=1, mode="nearest")
                       for c in range(3)], axis=-1)
    warped = np.clip(warped.round(), 0, 255).astype(np.uint8)
    return first, np.where(inside[..., None], warped, first)


class LpipsMeter:
    """`compensated_lpips` pair by pair as the frames stream: it holds the previous frame and at
    most `perceptual.BATCH` compensated pairs (the batch a forward pass takes)."""

    def __init__(self, model: perceptual.LpipsModel) -> None:
        self.model = model
        self._previous: np.ndarray | None = None
        self._batch: list[tuple[np.ndarray, np.ndarray]] = []
        self._distances: list[float] = []

    def add(self, frame: np.ndarray, flow: np.ndarray | None) -> None:
        """The next frame and the block flow to it from the previous one (None for the first)."""
        if flow is not None and self._previous is not None:
            scale = motion.working_size(*frame.shape[:2])[0] / frame.shape[0]  # as ClipMotion.scale
            self._batch.append(compensate(self._previous, frame, flow, scale))
            if len(self._batch) == perceptual.BATCH:
                self._flush()
        self._previous = frame

    def _flush(self) -> None:
        if self._batch:
            self._distances += perceptual.lpips_distances([a for a, _ in self._batch], [b for _, b in self._batch],
                                                          self.model)
            self._batch = []

    def result(self) -> Score:
        self._flush()
        return _score("temporal_lpips", self._distances,
                      f"{self.model.backend}, motion compensated with {motion.FLOW_BACKEND}", higher_is_worse=True,
                      device=self.model.device)


def compensated_lpips(frames: Sequence[np.ndarray], clip: ClipMotion, model: perceptual.LpipsModel) -> Score:
    """Temporal LPIPS (AlexNet) judged like the weight-free stand-in: per pair t, LPIPS of f_t and
    the motion-compensated f_t+1 (`compensated`); value = the worst pair. `LpipsMeter` streams."""
    meter = LpipsMeter(model)
    for index, frame in enumerate(frames):
        meter.add(frame, clip.flows[index - 1] if index else None)
    return meter.result()
