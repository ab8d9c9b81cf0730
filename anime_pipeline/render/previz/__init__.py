"""The embedded default renderer: deterministic CPU "previz" drawings of the cast.

It stands in for ComfyUI when no GPU exists, so a newcomer gets real, watchable files on
the first run, always labelled previz. Each character is drawn from its appearance data
(key colours, species, height, key features) with numpy and Pillow only.

Identity is later measured by comparing colour histograms of the face box with the
character's references, and reference faces are found by skin and eye colour. So the face
box is the visible face (fringe to chin, between the side locks), painted in flat key
colours, and eyes always show the key eye colour, even as small ovals in wide shots.

Speed: a clip draws its background and character sprites once (blinks redraw only the
face), then each frame is a copy of the background, a few alpha pastes and one resampled
crop for the camera: about 3-4 ms a 640x360 frame on two cores.

Modules, bottom up: `colors` (colours, seeded streams) → `looks` (appearance, pose and
expression → drawing parameters) → `pen` (primitives) → `faces` → `human`, `animal` →
`sprites`; `layout` (framings), `backdrops`, `motion` (camera and motion presets) →
`stage` (compositing) → `renderer`. Only `PrevizRenderer` is public.
"""

from anime_pipeline.render.previz.renderer import PrevizRenderer

__all__ = ["PrevizRenderer"]
