"""One figure rasterised: a human or animal drawing, supersampled and reduced, cut to the
region that can show, with its face box in canvas pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from anime_pipeline.imaging import Box
from anime_pipeline.render.previz.animal import draw_animal
from anime_pipeline.render.previz.colors import INK
from anime_pipeline.render.previz.human import draw_human
from anime_pipeline.render.previz.looks import Expression, Look, Pose
from anime_pipeline.render.previz.pen import SUPERSAMPLE, FBox, Pen, Point

_BOUNDS = {True: (-0.4, -0.1, 0.4, 1.02), False: (-0.5, -0.06, 0.64, 1.04)}  # figure units, generous


@dataclass(frozen=True)
class Sprite:
    """A figure drawn once and pasted per frame."""

    image: Image.Image  # RGBA
    left: int  # canvas px of the image's top-left
    top: int
    face: FBox  # canvas px

    @property
    def face_rect(self) -> Box:
        """Whole pixels around the face, inside the image: what a blink redraws."""
        x0, y0, x1, y1 = self.face
        right, bottom = self.left + self.image.width, self.top + self.image.height
        return (max(math.floor(x0) - 2, self.left), max(math.floor(y0) - 2, self.top),
                min(math.ceil(x1) + 2, right), min(math.ceil(y1) + 2, bottom))


def draw_sprite(look: Look, pose: Pose, ex: Expression, lid: float, phase: float, origin: Point,
                scale: float, clip: FBox) -> Sprite | None:
    """Draw one figure at `scale` px tall with its top-centre at canvas `origin`, keeping only `clip`."""
    bx0, by0, bx1, by1 = _BOUNDS[look.human]
    x0 = max(math.floor(origin[0] + bx0 * scale), math.floor(clip[0]))
    y0 = max(math.floor(origin[1] + by0 * scale), math.floor(clip[1]))
    x1 = min(math.ceil(origin[0] + bx1 * scale), math.ceil(clip[2]))
    y1 = min(math.ceil(origin[1] + by1 * scale), math.ceil(clip[3]))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    ss = SUPERSAMPLE
    image = Image.new("RGBA", ((x1 - x0) * ss, (y1 - y0) * ss), INK + (0,))
    pen = Pen(image, ((origin[0] - x0) * ss, (origin[1] - y0) * ss), scale * ss, pose.turn < 0, ss)
    draw = draw_human if look.human else draw_animal
    fx0, fy0, fx1, fy1 = draw(pen, look, pose, ex, lid, phase)
    face = (x0 + fx0 / ss, y0 + fy0 / ss, x0 + fx1 / ss, y0 + fy1 / ss)
    return Sprite(image.reduce(ss), x0, y0, face)
