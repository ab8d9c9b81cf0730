"""The animal figure: a chibi fox-like creature (standing, sitting, from behind, leaping)
with its tail, paws, chest fluff, an optional collar and a face drawn in head units."""

from __future__ import annotations

import math
from collections.abc import Sequence

from anime_pipeline.render.previz.colors import BLUSH, RGB, WHITE, mix, shade
from anime_pipeline.render.previz.faces import draw_brows, draw_ears, draw_emote, draw_eye, draw_mouth, eye_layout
from anime_pipeline.render.previz.looks import Expression, Look, Pose
from anime_pipeline.render.previz.pen import FBox, Pen, Point, bezier, brush, outline_of, polar

# Half a fox head (x >= 0) in head units around its centre, scaled up for chibi cuteness.
_ANIMAL_HEAD = [(0.0, -0.125), (0.07, -0.117), (0.12, -0.09), (0.15, -0.05), (0.165, 0.0), (0.205, 0.055),
                (0.15, 0.06), (0.165, 0.088), (0.1, 0.1), (0.045, 0.125), (0.0, 0.135)]
HEAD_SCALE = 1.3
HEAD_Y = 0.31  # the animal head's centre, figure units


def draw_animal(pen: Pen, look: Look, pose: Pose, ex: Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    pen.ellipse(0.0, 0.985, 0.22, 0.022, (0, 0, 0, 60))
    if pose.action:
        return _animal_leap(pen, look, ex, lid, phase)
    t = 0.0 if pose.back else abs(pose.turn)
    if pose.sitting and not pose.back:  # curled up the side: the tip shows even in a portrait
        _animal_tail(pen, look, (0.16, 0.93), (0.48, 0.92), (0.34, 0.46))
    elif not pose.back:
        _animal_tail(pen, look, (0.12, 0.8), (0.5, 0.82), (0.36, 0.42))
    front_legs = (-0.06 - t * 0.05, 0.06 - t * 0.05)
    if pose.sitting:
        for side in (-1, 1):
            pen.ellipse(side * 0.14, 0.88, 0.095, 0.1, shade(fur, 0.93), outline_of(fur))
        pen.ellipse(0.0, 0.74, 0.18, 0.26, fur, outline_of(fur))
    else:  # stubby legs under a round body: the body hides where they join
        for side in (-1, 1):
            pen.stroke([(side * 0.13, 0.78), (side * 0.135, 0.955)], shade(fur, 0.9), 0.07, outline_of(fur))
        if not pose.back:
            _paws(pen, fur, front_legs, 0.75, t)
        pen.ellipse(t * 0.03, 0.665, 0.165 * (1 + 0.15 * t), 0.2, fur, outline_of(fur))
    if pose.back:
        _animal_tail(pen, look, (0.0, 0.84), (0.25, 0.7), (0.1, 0.42))
    else:
        _chest_fluff(pen, fur, -t * 0.05, 0.45)
    if pose.sitting and not pose.back:
        _paws(pen, fur, front_legs, 0.72, t)
    _collar(pen, look, -t * 0.02, 0.49)
    return _animal_head(pen, look, ex, lid, 0.0, HEAD_Y, t, pose.back)


def _paws(pen: Pen, fur: RGB, xs: Sequence[float], top: float, t: float) -> None:
    for x in xs:
        pen.stroke([(x, top), (x, 0.94)], fur, 0.065, outline_of(fur))
        pen.ellipse(x - t * 0.012, 0.955, 0.04, 0.022, mix(fur, WHITE, 0.5), outline_of(fur))


def _chest_fluff(pen: Pen, fur: RGB, x: float, y: float) -> None:
    """A fluffy bib; its top hides under the chin."""
    pen.polygon([(x - 0.1, y), (x + 0.1, y), (x + 0.09, y + 0.06), (x + 0.05, y + 0.1), (x + 0.025, y + 0.085),
                 (x, y + 0.12), (x - 0.025, y + 0.085), (x - 0.05, y + 0.1), (x - 0.09, y + 0.06)],
                mix(fur, WHITE, 0.55), outline_of(fur))


def _collar(pen: Pen, look: Look, x: float, y: float) -> None:
    """Only when the outfit colour differs from the fur: a creature 'wearing' its fur needs nothing."""
    outfit, fur = look.colors["outfit"], look.colors["skin"]
    if sum(abs(a - b) for a, b in zip(outfit, fur)) < 90:
        return
    pen.ellipse(x, y, 0.13, 0.025, outfit, outline_of(outfit))
    pen.ellipse(x, y + 0.035, 0.018, 0.018, look.colors["accent"], outline_of(look.colors["accent"]))


def _animal_tail(pen: Pen, look: Look, base: Point, ctrl: Point, tip: Point) -> None:
    fur, accent = look.colors["skin"], look.colors["accent"]
    path = bezier(base, ctrl, tip, 18)
    glowing = look.has("tail_glow")
    if glowing:
        pen.glow(*path[-3], 0.07, accent)
    pen.polygon(brush(path, 0.09), fur, outline_of(fur))
    tip_color = accent if glowing else mix(fur, WHITE, 0.6)
    pen.polygon(brush(path, 0.09, start=0.7)[1:-1], tip_color, outline_of(accent if glowing else fur))


def _animal_head(pen: Pen, look: Look, ex: Expression, lid: float, hx: float, hy: float, t: float,
                 back: bool) -> FBox:
    fur = look.colors["skin"]
    outline = outline_of(fur)

    u = HEAD_SCALE  # one head unit, in figure units

    def at(x: float, y: float) -> Point:
        return hx + x * u, hy + y * u

    draw_ears(pen, look, *at(t * 0.03, -0.125), u, inner=not back)
    right = [at(x * (1 - 0.15 * t), y) for x, y in _ANIMAL_HEAD]
    left = [at(-x * (1 - 0.3 * t), y) for x, y in reversed(_ANIMAL_HEAD[1:-1])]
    pen.polygon(right + left, fur, outline)
    # Cheek to cheek and brow to chin, leaving out the tuft tips: the box stays mostly fur and eyes.
    box = pen.bounds([at(-0.17 * (1 - 0.3 * t), -0.11), at(0.17 * (1 - 0.15 * t), 0.13)])
    if back:
        draw_emote(pen, ex.emote, *at(0.22, -0.12), 0.05 * u)
        return box
    f = -t * 0.075  # the face's centre line, in head units
    muzzle = mix(fur, WHITE, 0.55)
    if t > 0.85:
        snout = [at(f - 0.02, -0.01), at(-0.21, 0.045), at(-0.235, 0.07), at(-0.215, 0.1), at(f, 0.125)]
        pen.polygon(snout, muzzle, outline)
        nose = at(-0.225, 0.062)
        snout_box = pen.bounds(snout)
        box = (min(box[0], snout_box[0]), box[1], max(box[2], snout_box[2]), box[3])
    else:
        pen.polygon([at(f + x, y) for x, y in ((-0.11, 0.04), (-0.06, 0.02), (0, 0.035), (0.06, 0.02), (0.11, 0.04),
                                               (0.1, 0.09), (0.045, 0.122), (0, 0.132), (-0.045, 0.122),
                                               (-0.1, 0.09))], muzzle)
        nose = at(f - t * 0.04, 0.07)
    pen.ellipse(*nose, 0.017 * u, 0.012 * u, (52, 40, 52))
    pen.ellipse(nose[0] - 0.005 * u, nose[1] - 0.004 * u, 0.005 * u, 0.003 * u, WHITE)
    eyes = eye_layout(f, t, 0.068)
    for x, inner, k in eyes:
        draw_eye(pen, *at(x, -0.005), 0.03 * u * k, 0.038 * u, look, ex, lid, inner, fur)
    if ex.blush:
        for x, inner, k in eyes:
            pen.ellipse(*at(x - inner * 0.02, 0.045), 0.022 * u * k, 0.01 * u, mix(fur, BLUSH, 0.5))
    brow_y = at(0, -0.06)[1]
    draw_brows(pen, [(at(x, 0)[0], inner) for x, inner, _ in eyes], brow_y, 0.03 * u, ex, shade(fur, 0.55))
    mx, my = nose[0], nose[1] + 0.024 * u
    if ex.mouth == "line":
        w = 0.011 * u
        pen.line([(mx - 2 * w, my), (mx - w, my + w), (mx, my), (mx + w, my + w), (mx + 2 * w, my)],
                 shade(fur, 0.4), 0.005 * u)
    else:
        draw_mouth(pen, mx, my + 0.006 * u, 0.028 * u, ex, fur)
    draw_emote(pen, ex.emote, *at(0.22, -0.12), 0.05 * u)
    return box


def _animal_leap(pen: Pen, look: Look, ex: Expression, lid: float, phase: float) -> FBox:
    fur = look.colors["skin"]
    reach = 0.5 + 0.5 * math.sin(2 * math.pi * phase)  # legs gather (0) and stretch (1)
    _animal_tail(pen, look, (0.24, 0.63), (0.46, 0.58 - 0.06 * reach), (0.52, 0.36))
    for x, angle in ((0.19, 0.4 + 0.8 * reach), (-0.1, -0.3 - 0.9 * reach)):
        pen.stroke([(x, 0.7), polar((x, 0.7), angle, 0.2)], shade(fur, 0.9), 0.06, outline_of(fur))
    pen.ellipse(0.05, 0.66, 0.22, 0.11, fur, outline_of(fur))
    for x, angle in ((0.16, 0.2 + 0.9 * reach), (-0.13, -0.5 - 0.7 * reach)):
        pen.stroke([(x, 0.71), polar((x, 0.71), angle, 0.2)], fur, 0.06, outline_of(fur))
    _chest_fluff(pen, fur, -0.14, 0.58)
    return _animal_head(pen, look, ex, lid, -0.16, 0.44, 0.55, back=False)
