"""The human figure: hair styles, head (front and back), torso, arms, legs and worn
features (cap, satchel, scarf, glasses, horns), in any reference or free-text pose.

The face box each drawing returns is the visible face (fringe to chin, between the side
locks): what a face finder outlines.
"""

from __future__ import annotations

import math

import numpy as np

from anime_pipeline.render.previz.colors import BLUSH, INK, RGB, WHITE, mix, shade
from anime_pipeline.render.previz.faces import draw_brows, draw_ears, draw_emote, draw_eye, draw_mouth, eye_layout
from anime_pipeline.render.previz.looks import Expression, Look, Pose
from anime_pipeline.render.previz.pen import FBox, Pen, Point, bezier, brush, ellipse_points, outline_of, polar


def draw_human(pen: Pen, look: Look, pose: Pose, ex: Expression, lid: float, phase: float) -> FBox:
    c = look.colors
    t = abs(pose.turn)
    dy = 0.17 if pose.sitting else 0.0
    pen.ellipse(0, 0.985, 0.16, 0.02, (0, 0, 0, 60))
    if pose.sitting:
        pen.polygon([(-0.12, 0.77), (0.12, 0.77), (0.12, 1.0), (-0.12, 1.0)], (150, 112, 78), (80, 56, 40))
    hx, hy = 0.0, 0.135 + dy
    pen.skew = pose.lean
    if not pose.back:
        _back_hair(pen, look, t, hx, hy)
    if look.has("tail"):
        pen.polygon(brush(bezier((0.05, 0.55 + dy), (0.3, 0.6 + dy), (0.24, 0.32 + dy), 14), 0.035),
                    c["hair"], outline_of(c["hair"]))
    arms = _arm_paths(pose, phase, dy, t)
    if t > 0.2 and not pose.back:
        _arm(pen, look, arms[0])
    _legs(pen, look, pose, phase, dy, t)
    _torso(pen, look, pose, dy, t)
    for arm in arms if (t <= 0.2 or pose.back) else arms[1:]:
        _arm(pen, look, arm)
    if look.has("scarf"):
        _scarf(pen, c["accent"], dy, pose.back)
    pen.stroke([(hx - t * 0.01, 0.24 + dy), (hx - t * 0.01, 0.29 + dy)], shade(c["skin"], 0.88), 0.042,
               outline_of(c["skin"]))
    if pose.back:
        return _human_head_back(pen, look, ex, hx, hy)
    return _human_head(pen, look, ex, lid, hx, hy, t)


def _back_hair(pen: Pen, look: Look, t: float, hx: float, hy: float) -> None:
    hair = shade(look.colors["hair"], 0.85)
    line = outline_of(look.colors["hair"])
    style, bx = look.hair_style, hx + t * 0.03
    if style == "long_hair":
        ends = [(bx + 0.15, hy + 0.345), (bx + 0.05, hy + 0.365), (bx - 0.05, hy + 0.355), (bx - 0.15, hy + 0.335)]
        pen.polygon(ellipse_points(bx, hy, 0.135, 0.14, math.pi, 2 * math.pi) + ends, hair, line)
    elif style == "ponytail":
        tail = bezier((bx + 0.06, hy - 0.1), (bx + 0.24, hy - 0.06), (bx + 0.16, hy + 0.27), 14)
        pen.polygon(brush(tail, 0.06, 0.05), hair, line)
        pen.ellipse(bx + 0.09, hy - 0.1, 0.022, 0.022, look.colors["accent"], outline_of(look.colors["accent"]))
    elif style == "bob":
        pen.polygon(ellipse_points(bx, hy, 0.13, 0.135, math.pi, 2 * math.pi)
                    + [(bx + 0.145, hy + 0.13), (bx + 0.08, hy + 0.12), (bx - 0.08, hy + 0.12),
                       (bx - 0.145, hy + 0.13)], hair, line)
    else:
        pen.ellipse(bx, hy - 0.005, 0.128, 0.125, hair, line)


def _human_head(pen: Pen, look: Look, ex: Expression, lid: float, hx: float, hy: float, t: float) -> FBox:
    c = look.colors
    skin, rx, ry = c["skin"], 0.118, 0.128
    face = []
    for a in np.linspace(0, 2 * math.pi, 48, endpoint=False):
        x, y = rx * math.sin(a), -ry * math.cos(a)
        if y > 0:  # a softer, pointed anime chin that turns with the head
            x = x * (1 - 0.28 * (y / ry) ** 1.5) - t * 0.3 * rx * (y / ry) ** 2
        face.append((hx + x, hy + y))
    if t > 0.85:
        face = [(x - (0.012 if abs(y - hy - 0.05) < 0.02 and x < hx else 0.0), y) for x, y in face]
    if look.has("ears"):
        draw_ears(pen, look, hx + t * 0.02, hy - ry * 0.55, 0.62, inner=True)
    pen.polygon(face, skin, outline_of(skin))
    fx = hx - t * rx * 0.48  # the face's centre line turns towards where the character looks
    eyes = eye_layout(fx, t, 0.05)
    for x, inner, k in eyes:
        draw_eye(pen, x, hy + 0.025, 0.025 * k, 0.033, look, ex, lid, inner, skin)
    if ex.blush:
        for x, _, k in eyes:
            pen.ellipse(x + 0.004, hy + 0.068, 0.022 * k, 0.01, mix(skin, BLUSH, 0.45))
    draw_brows(pen, [(x, inner) for x, inner, _ in eyes], hy - 0.022, 0.035, ex, shade(c["hair"], 0.7))
    nose_x = fx - t * 0.02
    pen.line([(nose_x, hy + 0.058), (nose_x - 0.004, hy + 0.064)], shade(skin, 0.7), 0.005)
    draw_mouth(pen, fx - t * 0.012, hy + 0.094, 0.03, ex, skin)
    _front_hair(pen, look, hx, hy, rx, ry, t)
    if look.has("glasses"):
        for x, _, k in eyes:
            pen.ellipse(x, hy + 0.025, 0.036 * k, 0.034, None, INK)
        (x0, _, k0), (x1, _, k1) = eyes
        pen.line([(x0 + 0.036 * k0, hy + 0.02), (x1 - 0.036 * k1, hy + 0.02)], INK, 0.004)
    if look.has("horns"):
        _horns(pen, look, hx + t * 0.02, hy - ry * 0.75)
    if look.has("hat"):
        _cap(pen, look, hx, hy, rx, ry, t)
    draw_emote(pen, ex.emote, hx + rx * 1.45, hy - ry * 0.9, 0.045)
    # The face box is the visible face, between the side locks, from the fringe to the chin: what a
    # face finder outlines.
    xs, ys = zip(*face)
    bx = hx + t * 0.03
    left = min(xs) if t > 0.85 else max(min(xs), bx - 0.09)
    return pen.bounds([(left, hy - 0.045), (min(max(xs), bx + 0.09), max(ys))])


def _front_hair(pen: Pen, look: Look, hx: float, hy: float, rx: float, ry: float, t: float) -> None:
    hair, line = look.colors["hair"], outline_of(look.colors["hair"])
    bx = hx + t * 0.03
    style = look.hair_style
    fringe_y = hy - 0.035
    tips = np.linspace(-rx * 1.02, rx * 1.02, 7)
    fringe = []
    for i, x in enumerate(tips):
        x += -t * 0.02 * (1 - abs(x) / rx)
        fringe.append((bx + x, fringe_y + (0.012 if i % 2 else -0.018) + (0.008 if 0 < i < 6 else 0.02)))
    # The crown stays over the skull as the head turns (only the fringe and locks move), so a
    # profile is not bald at the front.
    cap = ellipse_points(hx + t * 0.008, hy - 0.004, rx * 1.1, ry * 1.08, math.pi * 1.02, math.pi * 1.98, 20)
    pen.polygon(cap + fringe[::-1], hair, line)
    lock_end = {"short": 0.06, "ponytail": 0.07, "bob": 0.13, "long_hair": 0.2}[style]
    for side in (-1, 1):
        if t > 0.85 and side < 0:
            continue
        sx = bx + side * rx * 1.06
        pen.polygon([(sx, hy - 0.05), (sx - side * 0.04, hy - 0.02), (sx - side * 0.025, hy + lock_end),
                     (sx + side * 0.005, hy + lock_end - 0.02)], hair, line)
    pen.line(ellipse_points(bx, hy - 0.004, rx * 0.85, ry * 0.82, math.pi * 1.2, math.pi * 1.45, 6),
             mix(hair, WHITE, 0.35), 0.012)


def _human_head_back(pen: Pen, look: Look, ex: Expression, hx: float, hy: float) -> FBox:
    hair, line = look.colors["hair"], outline_of(look.colors["hair"])
    rx, ry = 0.128, 0.138
    if look.has("ears"):
        draw_ears(pen, look, hx, hy - ry * 0.5, 0.62, inner=False)
    style = look.hair_style
    bottom = {"short": 0.09, "ponytail": 0.09, "bob": 0.13, "long_hair": 0.36}[style]
    width = 0.15 if style != "short" else 0.132
    pen.polygon(ellipse_points(hx, hy, rx, ry, math.pi, 2 * math.pi, 20)
                + [(hx + width, hy + bottom), (hx, hy + bottom + 0.01), (hx - width, hy + bottom)], hair, line)
    if style == "ponytail":
        pen.polygon(brush(bezier((hx, hy - 0.06), (hx + 0.05, hy + 0.15), (hx - 0.01, hy + 0.32), 12), 0.05, 0.05),
                    hair, line)
        pen.ellipse(hx, hy - 0.05, 0.022, 0.022, look.colors["accent"], outline_of(look.colors["accent"]))
    shine = ellipse_points(hx, hy, rx * 0.8, ry * 0.8, math.pi * 1.25, math.pi * 1.6, 6)
    pen.line(shine, mix(hair, WHITE, 0.35), 0.012)
    if look.has("horns"):
        _horns(pen, look, hx, hy - ry * 0.75)
    if look.has("hat"):
        _cap(pen, look, hx, hy, 0.118, 0.128, 0.0, back=True)
    draw_emote(pen, ex.emote, hx + rx * 1.45, hy - ry * 0.9, 0.045)
    return pen.bounds([(hx - rx * 1.05, hy - ry * 0.85), (hx + rx * 1.05, hy + ry)])


def _cap(pen: Pen, look: Look, hx: float, hy: float, rx: float, ry: float, t: float, back: bool = False) -> None:
    outfit, accent = look.colors["outfit"], look.colors["accent"]
    base = hy - ry * 0.62
    crown = ellipse_points(hx + t * 0.02, base, rx * 1.08, ry * 0.62, math.pi, 2 * math.pi, 18)
    pen.polygon(crown, outfit, outline_of(outfit))
    pen.line([(hx - rx * 1.04 + t * 0.02, base - 0.006), (hx + rx * 1.04 + t * 0.02, base - 0.006)], accent, 0.012)
    if not back:
        pen.ellipse(hx - t * 0.06, base + 0.004, rx * (0.78 + 0.2 * t), 0.016, shade(outfit, 0.7), outline_of(outfit))
        pen.ellipse(hx - t * 0.05, base - ry * 0.28, 0.014, 0.014, accent, outline_of(accent))


def _horns(pen: Pen, look: Look, x: float, y: float) -> None:
    horn = mix(look.colors["accent"], WHITE, 0.45)
    for side in (-1, 1):
        pen.polygon([(x + side * 0.04, y + 0.02), (x + side * 0.08, y + 0.01), (x + side * 0.09, y - 0.07)],
                    horn, outline_of(horn))


def _arm_paths(pose: Pose, phase: float, dy: float, t: float) -> list[list[Point]]:
    """Far arm first. Angles are from straight down, positive towards +x (away from the facing side)."""
    w = 1 - 0.35 * t
    shoulders = [(-0.082 * w - t * 0.01, 0.305 + dy), (0.082 * w - t * 0.01, 0.305 + dy)]
    if pose.action:
        swing = 0.9 * math.sin(2 * math.pi * phase)
        angles = [(-swing - 0.1, -swing - 1.5), (swing - 0.1, swing - 1.5)]
    elif pose.sitting:
        angles = [(-0.1, -0.5), (0.1, 0.5)]
    else:
        angles = [(-0.18, -0.1), (0.18 - pose.arm * 0.5, 0.1 - pose.arm * 2.6)]
    paths = []
    for shoulder, (upper, fore) in zip(shoulders, angles):
        elbow = polar(shoulder, upper, 0.11)
        paths.append([shoulder, elbow, polar(elbow, fore, 0.1)])
    return paths


def _arm(pen: Pen, look: Look, path: list[Point]) -> None:
    sleeve = shade(look.colors["outfit"], 0.92)
    pen.stroke(path, sleeve, 0.042, outline_of(sleeve))
    (x0, y0), (x1, y1) = path[-2], path[-1]
    pen.ellipse(x1 + (x1 - x0) * 0.25, y1 + (y1 - y0) * 0.25, 0.021, 0.021, look.colors["skin"],
                outline_of(look.colors["skin"]))
    pen.line([(x1 - 0.015, y1 - 0.01), (x1 + 0.015, y1 - 0.01)], look.colors["accent"], 0.008)


def _legs(pen: Pen, look: Look, pose: Pose, phase: float, dy: float, t: float) -> None:
    skin, outfit = look.colors["skin"], look.colors["outfit"]
    boot = mix(outfit, (50, 36, 32), 0.6)
    hips = 0.57 + dy
    w = 1 - 0.4 * t
    if pose.sitting:
        legs = [[(x * w, hips), (x * 1.3 * w, hips + 0.06), (x * 1.3 * w, 0.965)] for x in (-0.035, 0.035)]
    elif pose.action:
        swing = 0.7 * math.sin(2 * math.pi * phase)
        legs = []
        for x, b in ((-0.03, -swing), (0.03, swing)):
            knee = polar((x * w, hips), b, 0.19)
            legs.append([(x * w, hips), knee, polar(knee, b + 0.25 + 0.6 * max(0.0, b), 0.2)])
    else:
        legs = [[(x * w, hips), (x * 1.08 * w, 0.77), (x * 1.1 * w, 0.965)] for x in (-0.035, 0.035)]
    for leg in legs:
        pen.stroke(leg, skin, 0.036, outline_of(skin))
        (x0, y0), (x1, y1) = leg[-2], leg[-1]
        k = 0.09 / max(math.hypot(x1 - x0, y1 - y0), 1e-6)
        pen.stroke([(x1 - (x1 - x0) * k, y1 - (y1 - y0) * k), (x1, y1)], boot, 0.044, outline_of(boot))
        pen.ellipse(x1 - 0.012 * min(t * 2, 1), y1 + 0.005, 0.03, 0.014, boot, outline_of(boot))
    skirt = shade(outfit, 0.78)
    top, bottom = hips - 0.03, hips + (0.07 if pose.sitting else 0.1)
    pen.polygon([(-0.082 * w, top), (0.082 * w, top), (0.1 * w, bottom), (-0.1 * w, bottom)], skirt, outline_of(skirt))


def _torso(pen: Pen, look: Look, pose: Pose, dy: float, t: float) -> None:
    outfit, accent = look.colors["outfit"], look.colors["accent"]
    w, cx = 1 - 0.35 * t, -t * 0.01
    half = [(0.06, 0.285), (0.09, 0.305), (0.086, 0.36), (0.07, 0.46), (0.088, 0.585)]
    points = [(cx - x * w, y + dy) for x, y in half] + [(cx + x * w, y + dy) for x, y in reversed(half)]
    pen.polygon(points, outfit, outline_of(outfit))
    pen.line([(cx - 0.086 * w, 0.565 + dy), (cx + 0.086 * w, 0.565 + dy)], accent, 0.01)
    if look.has("bag"):
        _satchel(pen, look, dy, w, pose.back)
    if pose.back:
        pen.line([(cx, 0.33 + dy), (cx, 0.55 + dy)], shade(outfit, 0.6), 0.005)
        return
    mid = cx - t * 0.035
    pen.polygon([(mid - 0.032 * w, 0.285 + dy), (mid + 0.032 * w, 0.285 + dy), (mid, 0.345 + dy)], (244, 242, 236),
                outline_of((244, 242, 236)))
    pen.line([(mid - 0.04 * w, 0.29 + dy), (mid, 0.35 + dy), (mid + 0.04 * w, 0.29 + dy)], accent, 0.008)
    for y in (0.38, 0.43, 0.49):
        pen.ellipse(mid + 0.014, y + dy, 0.009, 0.009, accent, outline_of(accent))


def _satchel(pen: Pen, look: Look, dy: float, w: float, back: bool) -> None:
    leather = mix(look.colors["accent"], (112, 70, 42), 0.55)
    side = 1 if back else -1  # seen from behind, the strap crosses the other way
    pen.line([(-side * 0.07 * w, 0.295 + dy), (side * 0.08 * w, 0.52 + dy)], shade(leather, 0.8), 0.016)
    x = side * 0.11 * w
    pen.polygon([(x - 0.05, 0.49 + dy), (x + 0.05, 0.49 + dy), (x + 0.052, 0.585 + dy), (x - 0.052, 0.585 + dy)],
                leather, outline_of(leather))
    pen.polygon([(x - 0.05, 0.49 + dy), (x + 0.05, 0.49 + dy), (x + 0.045, 0.53 + dy), (x - 0.045, 0.53 + dy)],
                shade(leather, 0.85), outline_of(leather))
    pen.ellipse(x, 0.53 + dy, 0.01, 0.008, look.colors["accent"], outline_of(look.colors["accent"]))


def _scarf(pen: Pen, color: RGB, dy: float, back: bool) -> None:
    pen.polygon([(-0.055, 0.272 + dy), (0.055, 0.272 + dy), (0.06, 0.305 + dy), (-0.06, 0.305 + dy)], color,
                outline_of(color))
    tail_x = -0.03 if back else 0.03
    pen.polygon([(tail_x - 0.015, 0.3 + dy), (tail_x + 0.015, 0.3 + dy), (tail_x + 0.03, 0.39 + dy),
                 (tail_x + 0.002, 0.385 + dy)], color, outline_of(color))
