"""Facial features shared by humans and animals: eyes, brows, mouths, manga emotes, ears.

Identity is measured by colour histograms of the face box, and faces are found by skin and
eye colour, so the iris keeps the flat key eye colour (small eyes become plain ovals) and
fine detail never blurs into other colours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from anime_pipeline.render.previz.colors import BLUSH, INK, MOUTH, RGB, TONGUE, WHITE, mix, shade
from anime_pipeline.render.previz.looks import Expression, Look
from anime_pipeline.render.previz.pen import Pen, ellipse_points, outline_of, polar

SMALL_EYE_PX = 4.0  # eyes narrower than this radius (output px) are drawn as flat ovals


def draw_eye(pen: Pen, x: float, y: float, rx: float, ry: float, look: Look, ex: Expression,
             lid: float, inner: float, skin: RGB) -> None:
    """One anime eye; `lid` closes it (0 open, 1 shut), `inner` is the side of the nose (+1/-1).

    The iris stays mostly the flat key colour, and small eyes become plain ovals: identity and face
    finding look for that colour, and fine detail would blur into other colours."""
    eye = look.colors["eyes"]
    ry *= ex.eye_scale
    cover_in = lid + (1 - lid) * ex.lid_inner
    cover_out = lid + (1 - lid) * ex.lid_outer
    if min(cover_in, cover_out) >= 0.95:
        pen.line([(x - rx, y + ry * 0.15), (x, y + ry * 0.5), (x + rx, y + ry * 0.15)], INK, ry * 0.22)
        return
    small = rx * pen.s < SMALL_EYE_PX * pen.ss
    if small:  # a flat oval, a little smaller than the eye, so the face still reads as skin around it
        pen.ellipse(x, y + ry * 0.1, rx * 0.75, ry * 0.8, eye)
        pen.ellipse(x - rx * 0.25, y - ry * 0.2, rx * 0.25, rx * 0.25, WHITE)
    else:
        pen.ellipse(x, y, rx, ry, (252, 252, 255))
        ix, iy = x + ex.gaze * rx * 0.35 * -inner, y + ry * 0.08
        irx, iry = rx * 0.84 * ex.iris_scale, ry * 0.86 * ex.iris_scale
        pen.ellipse(ix, iy, irx, iry, eye, shade(eye, 0.45))
        pen.ellipse(ix, iy + iry * 0.45, irx * 0.72, iry * 0.42, mix(eye, WHITE, 0.15))
        pen.ellipse(ix, iy - iry * 0.08, irx * 0.38, iry * 0.42, shade(eye, 0.3))
        pen.ellipse(ix - irx * 0.35, iy - iry * 0.42, irx * 0.3, irx * 0.3, WHITE)
        pen.ellipse(ix + irx * 0.38, iy + iry * 0.38, irx * 0.14, irx * 0.14, WHITE)
    xi, xo = x + inner * rx * 1.1, x - inner * rx * 1.1
    yi, yo = y - ry + 2 * ry * cover_in, y - ry + 2 * ry * cover_out
    top = y - ry * 1.35
    if max(cover_in, cover_out) > 0:
        pen.polygon([(xi, top), (xo, top), (xo, yo), (xi, yi)], skin)
    arch = ry * 0.25 * (1 - max(cover_in, cover_out))
    pen.line([(xi, yi), ((xi + xo) / 2, (yi + yo) / 2 - arch), (xo, yo), (xo - inner * rx * 0.25, yo - ry * 0.2)],
             INK, ry * (0.14 if small else 0.26))
    if max(cover_in, cover_out) < 0.6 and not small:
        pen.line([(x - rx * 0.55, y + ry * 0.98), (x + rx * 0.55, y + ry * 0.98)], shade(skin, 0.55), ry * 0.08)


def draw_brows(pen: Pen, centers: Sequence[tuple[float, float]], y: float, size: float, ex: Expression,
               color: RGB) -> None:
    """`centers` are (x, inner side) per eye; brows tilt by expression."""
    y -= ex.lift
    for x, inner in centers:
        xi, xo = x + inner * size * 0.35, x - inner * size * 0.9
        pen.line([(xi, y - ex.brow), ((xi + xo) / 2, y - ex.brow / 2 - size * 0.12), (xo, y + size * 0.05)],
                 color, size * 0.22)


def draw_mouth(pen: Pen, x: float, y: float, w: float, ex: Expression, skin: RGB) -> None:
    w *= ex.mouth_width
    line = shade(skin, 0.4)
    if ex.mouth == "smile":
        pen.polygon([(x - w * 0.7, y - w * 0.1)] + ellipse_points(x, y - w * 0.1, w * 0.7, w * 0.65, 0, math.pi)[::-1]
                    + [(x + w * 0.7, y - w * 0.1)], MOUTH, outline_of(MOUTH))
        pen.ellipse(x, y + w * 0.32, w * 0.35, w * 0.18, TONGUE)
    elif ex.mouth == "frown":
        pen.line([(x - w * 0.55, y + w * 0.2), (x, y - w * 0.12), (x + w * 0.55, y + w * 0.2)], line, w * 0.16)
    elif ex.mouth == "shout":
        pen.polygon([(x - w * 0.7, y - w * 0.15), (x + w * 0.7, y - w * 0.15), (x + w * 0.4, y + w * 0.5),
                     (x - w * 0.4, y + w * 0.5)], MOUTH, outline_of(MOUTH))
        pen.polygon([(x - w * 0.6, y - w * 0.1), (x + w * 0.6, y - w * 0.1), (x + w * 0.55, y + w * 0.05),
                     (x - w * 0.55, y + w * 0.05)], WHITE)
    elif ex.mouth == "o":
        pen.ellipse(x, y + w * 0.1, w * 0.28, w * 0.38, MOUTH, outline_of(MOUTH))
    elif ex.mouth == "wavy":
        pen.line([(x - w * 0.6 + i * w * 0.3, y + (0.1 if i % 2 else -0.05) * w) for i in range(5)], line, w * 0.13)
    else:
        pen.line([(x - w * 0.5, y), (x, y + w * 0.14), (x + w * 0.5, y)], line, w * 0.15)


def draw_emote(pen: Pen, kind: str, x: float, y: float, size: float) -> None:
    """Manga symbols beside the head: they make expressions readable even from behind."""
    if kind == "sparkle":
        for dx, dy, k in ((0, 0, 1.0), (size * 1.1, size * 0.9, 0.6), (-size * 0.2, size * 1.5, 0.45)):
            r = size * 0.55 * k
            star = [(x + dx + r * reach * math.cos(a), y + dy + r * reach * math.sin(a))
                    for a, reach in zip(np.linspace(0, 2 * math.pi, 9)[:-1] - math.pi / 2, (1, 0.3) * 4)]
            pen.polygon(star, (255, 232, 120), (200, 150, 40))
    elif kind == "vein":
        g, reach = size * 0.2, size * 0.7
        for sx in (-1, 1):
            for sy in (-1, 1):
                pen.line([(x + sx * g, y + sy * reach), (x + sx * g, y + sy * g), (x + sx * reach, y + sy * g)],
                         (226, 48, 70), size * 0.22)
    elif kind == "shock":
        for angle in (-0.5, 0.0, 0.5):
            centre = (x, y + size)
            pen.line([polar(centre, math.pi - angle, size * 0.8), polar(centre, math.pi - angle, size * 1.6)],
                     INK, size * 0.16)
    elif kind == "gloom":
        for i in range(3):
            cx = x + (i - 1) * size * 0.5
            pen.line([(cx + (0.08 if j % 2 else -0.08) * size, y + j * size * 0.35) for j in range(5)],
                     (110, 125, 175), size * 0.1)
    elif kind == "sweat":
        pen.polygon([(x, y)] + ellipse_points(x, y + size * 0.9, size * 0.35, size * 0.4, -0.3, math.pi + 0.3),
                    (175, 220, 250), (70, 120, 170))


def eye_layout(fx: float, t: float, spread: float) -> list[tuple[float, float, float]]:
    """(x, inner side, width factor) per eye. The far eye narrows as the head turns; in profile a
    sliver of it stays, anime style (and face finders look for two eyes)."""
    if t > 0.85:
        return [(fx - spread * 0.35, 1.0, 0.55), (fx + spread * 0.4, -1.0, 0.75)]
    d = spread * (1 - 0.25 * t)
    return [(fx - d, 1.0, 1 - 0.45 * t), (fx + d, -1.0, 1.0)]


def draw_ears(pen: Pen, look: Look, x: float, y: float, size: float, inner: bool) -> None:
    """Pointed ears on top of a head whose top centre is (x, y); `size` 1 = a fox's own ears."""
    fur = look.colors["skin"] if not look.human else look.colors["hair"]
    for side in (-1, 1):
        base_in, base_out = (x + side * 0.045 * size, y + 0.01 * size), (x + side * 0.135 * size, y + 0.05 * size)
        tip = (x + side * 0.14 * size, y - 0.11 * size)
        pen.polygon([base_in, tip, base_out], fur, outline_of(fur))
        if inner:
            inside = [(base_in[0] + side * 0.015 * size, base_in[1]),
                      (tip[0] - side * 0.01 * size, tip[1] + 0.03 * size),
                      (base_out[0] - side * 0.015 * size, base_out[1] - 0.01 * size)]
            pen.polygon(inside, mix(look.colors["skin"], BLUSH, 0.35))
