"""The previz adapter: a k-means palette fit, honestly not a LoRA."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.config.schema import Character
from anime_pipeline.imaging import hex_to_rgb
from anime_pipeline.training.previz_adapter import PrevizAdapter, fit_previz_adapter

MIO = Character.model_validate({
    "slug": "mio", "name": "Mio", "design_prompt": "1girl, courier",
    "appearance": {"key_colors": {"hair": "#7a4a2a", "skin": "#f3d3bd", "eyes": "#d08a1e",
                                  "outfit": "#24305e", "accent": "#c9a227"}},
})
SHIFT = {"hair": (12, -8, 6), "skin": (-10, 6, -9), "eyes": (9, -7, 5), "outfit": (8, 10, -12), "accent": (10, -8, 6)}
BACKGROUND = (40, 170, 70)  # far from every key colour


def drawn_colors(shift: dict[str, tuple[int, int, int]]) -> dict[str, tuple[int, ...]]:
    keys = MIO.appearance.key_colors.model_dump()
    return {role: tuple(int(np.clip(c + d, 0, 255)) for c, d in zip(hex_to_rgb(keys[role]), shift[role])) for role in shift}


def figure(x: int, y: int, colors: dict, size=(256, 256), noise_seed: int | None = None) -> tuple[np.ndarray, tuple]:
    """Blocks of each role's colour; returns the image and its face box (the skin block)."""
    image = np.empty((*size, 3), np.uint8)
    image[:] = BACKGROUND
    image[y - 20:y, x - 24:x + 24] = colors["hair"]
    image[y:y + 40, x - 20:x + 20] = colors["skin"]
    image[y + 15:y + 20, x - 12:x - 6] = colors["eyes"]
    image[y + 15:y + 20, x + 6:x + 12] = colors["eyes"]
    image[y + 40:y + 140, x - 30:x + 30] = colors["outfit"]
    image[y + 60:y + 70, x - 5:x + 5] = colors["accent"]
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-3, 4, image.shape)
        image = np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)
    return image, (x - 20, y, x + 20, y + 40)


def dataset(shift=SHIFT, noise: bool = True):
    colors = drawn_colors(shift)
    drawn = [figure(x, y, colors, noise_seed=i if noise else None) for i, (x, y) in enumerate([(80, 40), (128, 60), (170, 50)])]
    return [image for image, _ in drawn], [box for _, box in drawn]


def test_loss_is_non_increasing_and_the_fit_is_deterministic():
    images, boxes = dataset()
    adapter = fit_previz_adapter(images, boxes, MIO, iterations=25, seed=3)
    history = adapter.loss_history
    assert len(history) == 25
    assert all(later <= earlier for earlier, later in zip(history, history[1:]))
    assert history[-1] < history[0]
    again = fit_previz_adapter(images, boxes, MIO, iterations=25, seed=3)
    assert again == adapter
    assert adapter.n_images == 3 and adapter.character == "mio"
    assert "not a LoRA" in adapter.backend


def test_recovers_a_shifted_palette():
    images, boxes = dataset(noise=False)
    adapter = fit_previz_adapter(images, boxes, MIO)
    for role, drawn in drawn_colors(SHIFT).items():
        assert np.abs(np.subtract(hex_to_rgb(adapter.palette[role]), drawn)).max() <= 1, role
    assert adapter.loss_history[-1] == pytest.approx(0.0, abs=1e-9)


def test_noisy_images_still_land_near_the_drawn_palette():
    images, boxes = dataset(noise=True)
    adapter = fit_previz_adapter(images, boxes, MIO, seed=1)
    for role, drawn in drawn_colors(SHIFT).items():
        assert np.abs(np.subtract(hex_to_rgb(adapter.palette[role]), drawn)).max() <= 3, role


def test_without_face_boxes_the_whole_image_is_sampled():
    images, _ = dataset(noise=False)
    adapter = fit_previz_adapter(images, [None] * len(images), MIO)
    assert adapter.palette["outfit"] == "#{:02x}{:02x}{:02x}".format(*drawn_colors(SHIFT)["outfit"])


def test_rejects_unusable_input():
    images, boxes = dataset()
    with pytest.raises(ValueError):
        fit_previz_adapter(images, boxes[:1], MIO)
    with pytest.raises(ValueError):
        fit_previz_adapter([np.full((32, 32, 3), (0, 255, 0), np.uint8)], [None], MIO)


def test_save_load_round_trip(tmp_path):
    images, boxes = dataset()
    adapter = fit_previz_adapter(images, boxes, MIO, iterations=5)
    path = adapter.save(tmp_path / "adapters" / "mio.json")
    assert path.suffix == ".json"
    assert PrevizAdapter.load(path) == adapter
    assert PrevizAdapter.from_json(adapter.to_json()) == adapter
    assert not list(tmp_path.rglob("*.safetensors"))
