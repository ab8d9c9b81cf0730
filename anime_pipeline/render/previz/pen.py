"""The pen: drawing primitives in figure units (1 = figure height) onto a supersampled image,
and the curves (ellipse arcs, Bézier paths, tapered brushes) the figures are built from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from anime_pipeline.render.previz.colors import INK, RGB, mix, shade

Point = tuple[float, float]
FBox = tuple[float, float, float, float]
SUPERSAMPLE = 2  # drawn at twice the size, then reduced: antialiased edges


class Pen:
    """Draws in figure units: x from the centre line, y down from the top, 1 = figure height.

    `mirror` flips x so every pose is designed facing image left; `skew` leans the body
    about the hips for action poses.
    """

    def __init__(self, image: Image.Image, origin: Point, scale: float, mirror: bool, ss: int):
        self.image = image
        self.draw = ImageDraw.Draw(image)
        self.ox, self.oy = origin
        self.s = scale
        self.ss = ss
        self.m = -1.0 if mirror else 1.0
        self.skew = 0.0
        self.pivot = 0.57
        # Outlines thin out relative to the figure in close-ups, as in anime line art.
        self.lw = max(1, round(ss * min(0.006 * scale / ss, 3.5)))

    def pt(self, x: float, y: float) -> Point:
        return self.ox + self.m * (x + self.skew * (self.pivot - y)) * self.s, self.oy + y * self.s

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: Any, outline: RGB | None = None) -> None:
        x, y = self.pt(cx, cy)
        a, b = max(rx * self.s, 0.5), max(ry * self.s, 0.5)
        self.draw.ellipse((x - a, y - b, x + a, y + b), fill=fill, outline=outline, width=self.lw)

    def polygon(self, points: Sequence[Point], fill: Any, outline: RGB | None = None) -> None:
        self.draw.polygon([self.pt(*p) for p in points], fill=fill, outline=outline, width=self.lw)

    def line(self, points: Sequence[Point], fill: RGB, width: float) -> None:
        self.draw.line([self.pt(*p) for p in points], fill=fill, width=max(1, round(width * self.s)), joint="curve")

    def stroke(self, points: Sequence[Point], fill: RGB, width: float, outline: RGB) -> None:
        """A round-capped limb with a dark rim: a wider dark stroke under the coloured one."""
        for color, w in ((outline, width + 2 * self.lw / self.s), (fill, width)):
            self.line(points, color, w)
            for x, y in (points[0], points[-1]):
                self.ellipse(x, y, w / 2, w / 2, color)

    def glow(self, cx: float, cy: float, radius: float, color: RGB) -> None:
        x, y = self.pt(cx, cy)
        r = radius * self.s
        size = int(r * 5) + 4
        left, top = int(x - size / 2), int(y - size / 2)
        if left >= self.image.width or top >= self.image.height or left + size <= 0 or top + size <= 0:
            return
        k = max(1, int(r // 6))  # a glow has no detail: blur it small, then scale it up
        small = max(4, size // k)
        c, rs = small / 2, r / k
        layer = Image.new("RGBA", (small, small), color + (0,))
        ImageDraw.Draw(layer).ellipse((c - rs, c - rs, c + rs, c + rs), fill=color + (210,))
        layer = layer.filter(ImageFilter.GaussianBlur(rs * 0.7)).resize((size, size), Image.Resampling.BILINEAR)
        self.image.alpha_composite(layer, (left, top))

    def bounds(self, points: Sequence[Point]) -> FBox:
        xs, ys = zip(*(self.pt(*p) for p in points))
        return min(xs), min(ys), max(xs), max(ys)


def outline_of(color: RGB) -> RGB:
    return mix(shade(color, 0.42), INK, 0.35)


def ellipse_points(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> list[Point]:
    """Points on an ellipse from angle `start` to `end` (radians, 0 = right, pi/2 = down)."""
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(start, end, n)]


def bezier(p0: Point, p1: Point, p2: Point, n: int) -> list[Point]:
    return [((1 - s) ** 2 * p0[0] + 2 * (1 - s) * s * p1[0] + s * s * p2[0],
             (1 - s) ** 2 * p0[1] + 2 * (1 - s) * s * p1[1] + s * s * p2[1]) for s in np.linspace(0, 1, n)]


def brush(path: list[Point], width: float, start: float = 0.0) -> list[Point]:
    """A tapered, fluffy outline around a path (tails, ponytails); `start` trims the base."""
    left, right = [], []
    n = len(path)
    for i, (x, y) in enumerate(path):
        s = i / (n - 1)
        if s < start:
            continue
        (ax, ay), (bx, by) = path[max(i - 1, 0)], path[min(i + 1, n - 1)]
        nx, ny = bx - ax, by - ay
        norm = math.hypot(nx, ny) or 1.0
        w = width * math.sin(math.pi * (0.12 + 0.88 * s)) ** 0.6
        left.append((x - ny / norm * w, y + nx / norm * w))
        right.append((x + ny / norm * w, y - nx / norm * w))
    return left + right[::-1]


def polar(origin: Point, angle: float, length: float) -> Point:
    """A point `length` away at `angle` from straight down (positive angles swing towards +x)."""
    return origin[0] + math.sin(angle) * length, origin[1] + math.cos(angle) * length
