"""The previz renderer: stills and clips from the stage, camera and motion presets, with the
parameters it used recorded for the manifest."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from PIL import Image

from anime_pipeline.imaging import Box, rgb_to_hex
from anime_pipeline.render.base import (ClipRequest, ClipStream, CollectsClips, RenderedFrame, StillRequest,
                                        StillResult)
from anime_pipeline.render.previz.colors import stream_rng
from anime_pipeline.render.previz.develop import applied, finish
from anime_pipeline.render.previz.layout import FRAMINGS, framing_for
from anime_pipeline.render.previz.looks import (EXPRESSIONS, Expression, Look, resolve_expression, resolve_look,
                                                resolve_pose)
from anime_pipeline.render.previz.motion import CONTINUITY_FRAMES, MAX_TRAVEL, MOTIONS, Camera, clip_poses, plan_blinks
from anime_pipeline.render.previz.pen import FBox, Point
from anime_pipeline.render.previz.stage import Item, Stage, compose, coverage, faces_in, fit_first_frame, map_box


class PrevizRenderer(CollectsClips):
    """Deterministic CPU drawings of the cast: same request, same pixels."""

    backend = "previz (embedded, CPU)"
    device = "cpu"
    version = "previz-1"

    def render_still(self, request: StillRequest) -> StillResult:
        framing = framing_for(request.framing)
        size = (request.width, request.height)
        looks = [resolve_look(c, request.palette_overrides, request.outfit) for c in request.characters]
        pose, expression = resolve_pose(request.pose), resolve_expression(request.expression)
        stage = Stage(looks, [pose] * len(looks), expression, framing, size, (0, 0), request.background, request.seed,
                      request.prompt)
        items, boxes = stage.actor_items(0, 0.0, 0.0, 1, 0.0, 0.0)
        image, developed = finish(np.array(compose(stage.backdrop, stage.lantern_items(0.0) + items)), request.prompt,
                                  request.steps, request.exposure, request.contrast)
        faces = {slug: mapped for slug, box in boxes.items() if (mapped := map_box(box, (0, 0, *size), size))}
        params = self._params(request.seed, request.framing, looks, {look.slug: pose.name for look in looks},
                              expression, request.outfit, "none (still)", size, 1, None)
        params.update(developed, cfg=request.cfg)  # previz draws the same at any cfg: recorded, not honoured
        return StillResult(image=image, face_boxes=faces, params=params)

    def stream_clip(self, request: ClipRequest) -> ClipStream:
        """The clip's frames one at a time; a bad request fails here, before the first frame."""
        if request.shot_type not in MOTIONS:
            raise ValueError(f"unknown shot type {request.shot_type!r}; previz animates {sorted(MOTIONS)}")
        if request.n_frames < 1 or request.fps < 1:
            raise ValueError(f"a clip needs n_frames >= 1 and fps >= 1, got {request.n_frames} and {request.fps}")
        framing = FRAMINGS[request.shot_type]
        motion, size = MOTIONS[request.shot_type], (request.width, request.height)
        fps, n = request.fps, request.n_frames
        duration = n / fps
        rng = stream_rng(request.seed, "camera")
        direction = 1 if rng.random() < 0.5 else -1
        camera = Camera.plan(motion, size, duration, direction)
        travel, bob = min(motion.travel * duration, MAX_TRAVEL) * size[0], motion.bob * size[1]
        looks = [resolve_look(c, request.palette_overrides, "default outfit") for c in request.characters]
        poses = clip_poses(request.shot_type, len(looks), direction)
        expression = EXPRESSIONS["neutral"]  # shot prompts carry whole design prompts: no reliable mood words
        stage = Stage(looks, poses, expression, framing, size, camera.margin, request.background, request.seed,
                      f"{request.prompt}\n{request.motion_prompt}", reach=(travel / 2 + 4, bob + 4))
        for actor in stage.actors:
            actor.lids = plan_blinks(stream_rng(request.seed, f"blink:{actor.look.slug}"), n, fps, motion.blink)
        first = None if request.first_frame is None else fit_first_frame(request.first_frame, *size)
        params = self._params(request.seed, request.shot_type, looks, {a.look.slug: a.pose.name for a in stage.actors},
                              expression, "default outfit", motion.description, size, n, fps)
        params.update(applied(size[1], request.prompt, request.steps))
        params["continuity_frames"] = min(CONTINUITY_FRAMES, n) if first is not None else 0
        frames = self._frames(request, stage, camera, rng, (direction, travel, bob), looks, first)
        return ClipStream(params=params, n_frames=n, frames=frames)

    def _frames(self, request: ClipRequest, stage: Stage, camera: Camera, rng: Any, move: tuple[int, float, float],
                looks: Sequence[Look], first: np.ndarray | None) -> Iterator[RenderedFrame]:
        """Frame after frame, holding only the composite being reused and the frame being made."""
        size, fps, n = (request.width, request.height), request.fps, request.n_frames
        direction, travel, bob = move
        focus = self._focus(stage)
        duration = n / fps
        previous: tuple[Any, ...] | None = None
        canvas = stage.backdrop
        for i in range(n):
            t = i / fps
            progress = t / duration - 0.5
            actors, boxes = stage.actor_items(i, t, progress, direction, travel, bob)
            items = stage.lantern_items(t) + actors
            key = tuple((id(image), x, y) for image, x, y in items)
            if key != previous:  # blinks and bobs change rarely: reuse the composite meanwhile
                canvas, previous = compose(stage.backdrop, items), key
            view = camera.box(t, progress, focus, rng)
            # developed before continuity blends it with the given frame, which is developed already
            frame, _ = finish(np.array(canvas.resize(size, Image.Resampling.BILINEAR, box=view)),
                              request.prompt, request.steps)
            frame_faces = {slug: mapped for slug, box in boxes.items() if (mapped := map_box(box, view, size))}
            if first is not None and i < CONTINUITY_FRAMES:
                frame, frame_faces = self._continue(first, frame, i, looks, frame_faces, stage, actors, view)
            yield RenderedFrame(frame, frame_faces)

    @staticmethod
    def _continue(first: np.ndarray, frame: np.ndarray, i: int, looks: Sequence[Look], faces: dict[str, Box],
                  stage: Stage, actors: Sequence[Item], view: FBox) -> tuple[Any, dict[str, Box]]:
        """Continuity: frame 0 is the given frame; then its picture dissolves into the new shot while the
        cast is drawn fully opaque, so every frame shows each character whole (identity holds)."""
        if i == 0:
            return first.copy(), faces_in(first, looks)
        keep = 1 - i / CONTINUITY_FRAMES
        mask = coverage(stage.size, actors).resize(frame.shape[1::-1], Image.Resampling.BILINEAR, box=view)
        weight = keep * (1 - np.asarray(mask, dtype=np.float32)[..., None] / 255)
        drawn = np.asarray(frame, dtype=np.float32)
        return (drawn + (first - drawn) * weight).round().astype(np.uint8), faces

    @staticmethod
    def _focus(stage: Stage) -> Point:
        """Where zooms push in: the middle of the cast's faces (the canvas centre if none shows)."""
        faces = [s.face for i in range(len(stage.actors)) if (s := stage.sprite(i, 0.0, 0.25)) is not None]
        if not faces:
            return stage.size[0] / 2, stage.size[1] / 2
        return (sum(f[0] + f[2] for f in faces) / (2 * len(faces)), sum(f[1] + f[3] for f in faces) / (2 * len(faces)))

    def _params(self, seed: int, framing: str, looks: Sequence[Look], poses: dict[str, str], expression: Expression,
                outfit: str, motion: str, size: tuple[int, int], n_frames: int, fps: int | None) -> dict[str, Any]:
        return {
            "renderer": "previz", "backend": self.backend, "version": self.version, "device": self.device,
            "seed": seed, "framing": framing, "pose": poses, "expression": expression.name,
            "expression_drawn": expression.base, "outfit": outfit, "motion": motion,
            "resolution": list(size), "n_frames": n_frames, "fps": fps,
            "colors": {look.slug: {role: rgb_to_hex(color) for role, color in look.colors.items()} for look in looks},
            "features_not_drawn": {look.slug: list(look.not_drawn) for look in looks},
        }
