"""Staging and compositing: the backdrop and the cast placed on a canvas a little larger than
the frame, sprites drawn once and reused per frame, and mapping canvas boxes into frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from anime_pipeline.drawings import find_faces
from anime_pipeline.imaging import Box
from anime_pipeline.render.previz.backdrops import draw_backdrop, lantern_sprite, world_palette
from anime_pipeline.render.previz.colors import stream_rng
from anime_pipeline.render.previz.layout import Framing, place_cast
from anime_pipeline.render.previz.looks import Expression, Look, Pose
from anime_pipeline.render.previz.motion import DRAWN_LIDS, RUN_CYCLE
from anime_pipeline.render.previz.pen import FBox, Point
from anime_pipeline.render.previz.sprites import Sprite, draw_sprite


@dataclass
class Actor:
    """A character on the stage: where it stands and its eyelids per frame (blinks)."""

    look: Look
    pose: Pose
    origin: Point  # canvas px
    scale: float
    lids: list[float]


Item = tuple[Image.Image, int, int]  # an RGBA image pasted at canvas px


class Stage:
    """A canvas a little larger than the frame (room for the camera) with the cast placed on it."""

    def __init__(self, looks: Sequence[Look], poses: Sequence[Pose], expression: Expression, framing: Framing,
                 frame: tuple[int, int], margin: tuple[int, int], background: Sequence[str], seed: int, text: str,
                 reach: tuple[float, float] = (0.0, 0.0)):
        """`text` (the prompts) joins the seed in placing the scenery and the cast: a changed prompt
        gives a changed picture, as it would from a real model, so edits propagate downstream."""
        width, height = frame
        self.size = (width + 2 * margin[0], height + 2 * margin[1])
        self.expression = expression
        ground = (framing.rows[1] * height + margin[1]) / self.size[1]
        key_colors = [color for look in looks for color in look.colors.values()]
        self.backdrop, lanterns = draw_backdrop(framing.backdrop, background, *self.size, ground,
                                                stream_rng(seed, f"backdrop:{text}"), key_colors)
        palette = world_palette(background)
        self.lanterns = [(lantern, lantern_sprite(lantern.radius, palette)) for lantern in lanterns]
        placements = place_cast(looks, poses, framing, width, height, stream_rng(seed, f"layout:{text}"))
        self.actors = [Actor(look, pose, (p.origin[0] + margin[0], p.origin[1] + margin[1]), p.scale, [])
                       for look, pose, p in zip(looks, poses, placements)]
        # Sprites only cover the canvas plus how far an actor may move: close-ups stay cheap.
        self.clip = (-reach[0], -reach[1], self.size[0] + reach[0], self.size[1] + reach[1])
        self._sprites: dict[tuple[int, float, float], Sprite | None] = {}

    def sprite(self, index: int, lid: float, phase: float) -> Sprite | None:
        """The actor drawn with eyelids at `lid`. Blinks only redraw the face (big close-ups stay cheap);
        lids between the drawn ones cross-fade, so a slow blink never jumps."""
        key = (index, lid, phase)
        if key in self._sprites:
            return self._sprites[key]
        actor = self.actors[index]
        if lid == 0:
            sprite = draw_sprite(actor.look, actor.pose, self.expression, 0.0, phase, actor.origin, actor.scale,
                                 self.clip)
        else:
            base = self.sprite(index, 0.0, phase)
            if base is None:
                return None
            low = max(v for v in DRAWN_LIDS if v <= lid)
            high = min(v for v in DRAWN_LIDS if v >= lid)
            patch = self._face_patch(index, low, phase, base)
            if high != low:
                patch = Image.blend(patch, self._face_patch(index, high, phase, base), (lid - low) / (high - low))
            image = base.image.copy()
            image.paste(patch, (base.face_rect[0] - base.left, base.face_rect[1] - base.top))
            sprite = replace(base, image=image)
        self._sprites[key] = sprite
        return sprite

    def _face_patch(self, index: int, lid: float, phase: float, base: Sprite) -> Image.Image:
        if lid == 0:
            x0, y0, x1, y1 = base.face_rect
            return base.image.crop((x0 - base.left, y0 - base.top, x1 - base.left, y1 - base.top))
        actor = self.actors[index]
        patch = draw_sprite(actor.look, actor.pose, self.expression, lid, phase, actor.origin, actor.scale,
                            base.face_rect)
        assert patch is not None  # the face rect lies inside the base sprite
        return patch.image

    def lantern_items(self, t: float) -> list[Item]:
        items = []
        for lantern, image in self.lanterns:
            y = lantern.y + lantern.radius * 0.4 * math.sin(2 * math.pi * t / lantern.period + lantern.phase)
            items.append((image, round(lantern.x - image.width / 2), round(y - image.height / 2)))
        return items

    def actor_items(self, i: int, t: float, progress: float, direction: int, travel: float,
                    bob: float) -> tuple[list[Item], dict[str, FBox]]:
        """Each actor's sprite for frame i (blink, run cycle) and where it goes; face boxes in canvas px."""
        items, boxes = [], {}
        for index, actor in enumerate(self.actors):
            phase = math.floor((t * RUN_CYCLE + index * 0.25 + 0.25) * 4) % 4 / 4 if actor.pose.action else 0.25
            sprite = self.sprite(index, actor.lids[i] if actor.lids else 0.0, phase)
            if sprite is None:
                continue
            dx = direction * progress * travel
            dy = -bob * math.sin(2 * math.pi * t / 3.2 + index * 1.7)
            if actor.pose.action:
                dy -= abs(math.sin(math.pi * (t * RUN_CYCLE + index * 0.25))) * actor.scale * 0.03
            items.append((sprite.image, sprite.left + round(dx), sprite.top + round(dy)))
            fx0, fy0, fx1, fy1 = sprite.face
            boxes[actor.look.slug] = (fx0 + round(dx), fy0 + round(dy), fx1 + round(dx), fy1 + round(dy))
        return items, boxes


def compose(backdrop: Image.Image, items: Sequence[Item]) -> Image.Image:
    canvas = backdrop.copy()
    for image, x, y in items:
        canvas.paste(image, (x, y), image)
    return canvas


def coverage(size: tuple[int, int], items: Sequence[Item]) -> Image.Image:
    """Where the items are opaque: the character layer's alpha."""
    mask = Image.new("L", size, 0)
    for image, x, y in items:
        alpha = image.getchannel("A")
        mask.paste(255, (x, y, x + image.width, y + image.height), alpha)
    return mask


def map_box(box: FBox, camera: FBox, frame: tuple[int, int]) -> Box | None:
    """A canvas box seen through the camera, in frame px, clipped; None when off-screen."""
    sx, sy = frame[0] / (camera[2] - camera[0]), frame[1] / (camera[3] - camera[1])
    x0 = max(0, math.floor((box[0] - camera[0]) * sx))
    y0 = max(0, math.floor((box[1] - camera[1]) * sy))
    x1 = min(frame[0], math.ceil((box[2] - camera[0]) * sx))
    y1 = min(frame[1], math.ceil((box[3] - camera[1]) * sy))
    return (x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None


def fit_first_frame(first: np.ndarray, width: int, height: int) -> np.ndarray:
    image = np.asarray(first)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    if image.shape[:2] != (height, width):
        image = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    return image


CONTINUITY_MIN_FACE = 0.0005  # share of the frame: small enough for the faces of an establishing shot


def faces_in(image: np.ndarray, looks: Sequence[Look]) -> dict[str, Box]:
    """Where the cast already is in a given frame (continuity): found by their skin and eye colours."""
    found: dict[str, Box] = {}
    for look in looks:
        faces = find_faces(image, look.colors["skin"], look.colors["eyes"], min_share=CONTINUITY_MIN_FACE)
        if faces:
            x0, y0, x1, y1 = (int(v) for v in faces[0])
            found[look.slug] = (x0, y0, x1, y1)
    return found
