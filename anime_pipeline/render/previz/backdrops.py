"""Backdrops: a dusk town, a hill road and out-of-focus lanterns in the world palette, a
studio sheet for reference renders (no palette given), and the floating lanterns' sprites."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from anime_pipeline.render.previz.colors import BLACK, RGB, WHITE, luma, mix, parse_color, shade
from anime_pipeline.render.previz.pen import SUPERSAMPLE, Point

DEFAULT_BACKGROUND = ("#2b3350", "#4a5a8a", "#e9b872", "#f6e3b4", "#9cc3e4")


@dataclass(frozen=True)
class Lantern:
    x: float
    y: float
    radius: float
    period: float
    phase: float


def world_palette(background: Sequence[str]) -> dict[str, RGB]:
    given = [parse_color(c) for c in background]
    colors = sorted(given + [parse_color(c) for c in DEFAULT_BACKGROUND[len(given):]], key=luma)
    warm = max(colors, key=lambda c: c[0] - c[2])
    return {"dark": colors[0], "mid": colors[1], "light": colors[-1], "warm": warm}


def _gradient(width: int, height: int, stops: Sequence[tuple[float, RGB]]) -> Image.Image:
    ys = np.linspace(0.0, 1.0, height)
    colors = np.array([c for _, c in stops], dtype=float)
    rows = np.stack([np.interp(ys, [p for p, _ in stops], colors[:, k]) for k in range(3)], axis=1)
    return Image.fromarray(np.repeat(rows[:, None, :], width, axis=1).round().astype(np.uint8))


def _ridge(rng: np.random.Generator, width: int, height: int, base: float, amplitude: float) -> list[Point]:
    xs = np.linspace(0, width, 64)
    ys = np.full_like(xs, base * height)
    for k in range(1, 4):
        frequency = rng.uniform(1.0, 3.0) * k * 2 * math.pi / width
        ys += amplitude * height / k * np.sin(xs * frequency + rng.uniform(0, 2 * math.pi))
    return list(zip(xs.tolist(), ys.tolist())) + [(width, height), (0, height)]


def _sky(palette: dict[str, RGB], width: int, height: int, horizon: float) -> Image.Image:
    p = palette
    return _gradient(width, height, [(0.0, p["dark"]), (horizon * 0.65, p["mid"]),
                                     (horizon, mix(p["mid"], p["warm"], 0.55)), (1.0, mix(p["dark"], p["mid"], 0.4))])


def _stars(draw: ImageDraw.ImageDraw, rng: np.random.Generator, palette: dict[str, RGB], width: int, limit: float,
           count: int) -> None:
    for x, y, r, k in zip(rng.uniform(0, width, count), rng.uniform(0, limit, count), rng.uniform(1, 2.4, count),
                          rng.uniform(0.3, 0.9, count)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=mix(palette["mid"], palette["light"], float(k)))


def _town(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int, ground: float) -> Image.Image:
    """Dusk over a hillside town: sky, stars, moon, two ridges, roofs with lit windows, a road."""
    p = palette
    image = _sky(p, width, height, 0.66)
    draw = ImageDraw.Draw(image, "RGBA")
    _stars(draw, rng, p, width, height * 0.45, 70)
    mx, my, mr = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.22) * height, 0.045 * height
    for k, alpha in ((2.2, 25), (1.6, 45)):
        draw.ellipse((mx - mr * k, my - mr * k, mx + mr * k, my + mr * k), fill=p["light"] + (alpha,))
    draw.ellipse((mx - mr, my - mr, mx + mr, my + mr), fill=mix(p["light"], WHITE, 0.4))
    draw.polygon(_ridge(rng, width, height, 0.6, 0.03), fill=mix(p["dark"], p["mid"], 0.55))
    near = _ridge(rng, width, height, 0.72, 0.015)
    for x in np.arange(rng.uniform(0, 0.04) * width, width, 0.075 * width):
        if rng.random() < 0.25:
            continue
        w, h = rng.uniform(0.04, 0.065) * width, rng.uniform(0.05, 0.09) * height
        base = np.interp(x, [q[0] for q in near[:-2]], [q[1] for q in near[:-2]]) + 0.01 * height
        wall, roof = mix(p["dark"], p["mid"], 0.35), mix(p["dark"], BLACK, 0.25)
        draw.rectangle((x, base - h, x + w, base), fill=wall)
        draw.polygon([(x - w * 0.15, base - h), (x + w / 2, base - h - 0.5 * w), (x + w * 1.15, base - h)], fill=roof)
        for wx in rng.choice([0.2, 0.6], size=int(rng.integers(1, 3)), replace=False):
            draw.rectangle((x + w * wx, base - h * 0.7, x + w * (wx + 0.2), base - h * 0.45),
                           fill=mix(p["warm"], p["light"], 0.5))
    draw.polygon(near, fill=mix(p["dark"], BLACK, 0.1))
    road = mix(p["dark"], p["mid"], 0.45)
    draw.rectangle((0, (ground - 0.05) * height, width, height), fill=road)
    draw.rectangle((0, (ground - 0.05) * height, width, (ground - 0.04) * height), fill=mix(road, p["warm"], 0.3))
    return image


def _hill(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int, ground: float) -> Image.Image:
    """A hill road at night: sky, a far ridge and a path climbing towards the horizon."""
    p = palette
    horizon = ground - 0.22
    image = _sky(p, width, height, horizon + 0.05)
    draw = ImageDraw.Draw(image, "RGBA")
    _stars(draw, rng, p, width, height * horizon * 0.8, 40)
    draw.polygon(_ridge(rng, width, height, horizon, 0.04), fill=mix(p["dark"], p["mid"], 0.6))
    draw.polygon(_ridge(rng, width, height, horizon + 0.1, 0.015), fill=mix(p["dark"], p["mid"], 0.3))
    vanish = rng.uniform(0.35, 0.65) * width
    draw.polygon([(vanish - 0.02 * width, (horizon + 0.1) * height), (vanish + 0.02 * width, (horizon + 0.1) * height),
                  (width * 0.95, height), (width * 0.05, height)], fill=mix(p["mid"], p["warm"], 0.25) + (150,))
    return image


def _bokeh(rng: np.random.Generator, palette: dict[str, RGB], width: int, height: int) -> Image.Image:
    """Out-of-focus lantern lights: drawn small, blurred, scaled up (cheap and soft). Few and faint,
    so shots of one scene keep one colour mood across cuts whatever their seeds."""
    p = palette
    small = _gradient(max(width // 4, 1), max(height // 4, 1),
                      [(0.0, mix(p["mid"], p["dark"], 0.3)), (1.0, p["dark"])])
    draw = ImageDraw.Draw(small, "RGBA")
    w, h = small.size
    for _ in range(10):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.04, 0.1) * h
        color = [p["warm"], p["light"], p["mid"]][int(rng.integers(0, 3))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color + (int(rng.integers(40, 100)),))
    return small.filter(ImageFilter.GaussianBlur(1.5)).resize((width, height), Image.Resampling.BILINEAR)


_STUDIO_TONES: tuple[RGB, ...] = ((244, 241, 235), (214, 228, 242), (222, 236, 222), (236, 224, 242),
                                   (168, 186, 214), (200, 180, 196))


def _studio(rng: np.random.Generator, width: int, height: int, avoid: Sequence[RGB]) -> Image.Image:
    """Reference-sheet paper: the tone farthest from the cast's key colours, so figures (and face
    finders) separate from it; a few faint seeded circles."""
    tone = max(_STUDIO_TONES, key=lambda c: min((math.dist(c, k) for k in avoid), default=0.0))
    image = _gradient(width, height, [(0.0, shade(tone, 1.05)), (1.0, shade(tone, 0.93))])
    draw = ImageDraw.Draw(image, "RGBA")
    for _ in range(5):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.08, 0.2) * height
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 30))
    return image


def draw_backdrop(kind: str, background: Sequence[str], width: int, height: int, ground: float,
                  rng: np.random.Generator, avoid: Sequence[RGB]) -> tuple[Image.Image, list[Lantern]]:
    if not background and kind in ("hill", "bokeh"):
        return _studio(rng, width, height, avoid), []
    palette = world_palette(background)
    if kind == "bokeh":
        return _bokeh(rng, palette, width, height), []
    ss = SUPERSAMPLE
    draw = _town if kind == "town" else _hill
    image = draw(rng, palette, width * ss, height * ss, ground).reduce(ss)
    count, top = (11, 0.5) if kind == "town" else (4, 0.35)
    lanterns = [Lantern(float(rng.uniform(0.03, 0.97) * width), float(rng.uniform(0.06, top) * height),
                        float(rng.uniform(0.012, 0.026) * height), float(rng.uniform(3.5, 6.0)),
                        float(rng.uniform(0, 2 * math.pi))) for _ in range(count)]
    return image, lanterns


def lantern_sprite(radius: float, palette: dict[str, RGB]) -> Image.Image:
    ss = SUPERSAMPLE
    r = radius * ss
    size = int(r * 6) + 2
    c = size / 2
    glow = Image.new("RGBA", (size, size), palette["warm"] + (0,))
    ImageDraw.Draw(glow).ellipse((c - r * 1.6, c - r * 1.6, c + r * 1.6, c + r * 1.6), fill=palette["warm"] + (110,))
    glow = glow.filter(ImageFilter.GaussianBlur(r * 0.8))
    draw = ImageDraw.Draw(glow)
    paper = mix(palette["warm"], palette["light"], 0.45)
    draw.ellipse((c - r, c - r * 1.2, c + r, c + r * 1.2), fill=paper, outline=shade(palette["warm"], 0.6),
                 width=max(1, round(r * 0.12)))
    draw.ellipse((c - r * 0.45, c - r * 0.7, c + r * 0.45, c + r * 0.7), fill=mix(paper, WHITE, 0.5))
    cap = shade(palette["warm"], 0.35)
    draw.rectangle((c - r * 0.45, c - r * 1.35, c + r * 0.45, c - r * 1.1), fill=cap)
    draw.rectangle((c - r * 0.45, c + r * 1.1, c + r * 0.45, c + r * 1.35), fill=cap)
    return glow.reduce(ss)
