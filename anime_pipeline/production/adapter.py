"""The character-adapter stage (SPEC's character_lora) on the embedded trainer.

The previz trainer fits a colour adapter to the approved images; it is not a LoRA and is
never written as one. The validation render with the adapter applied must keep identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import base_manifest, file_entry, write_manifest
from anime_pipeline.metrics.identity import FaceModel
from anime_pipeline.metrics.suite import Anchor, image_identity
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import Renderer, StillRequest
from anime_pipeline.storage import read_json
from anime_pipeline.training.previz_adapter import PrevizAdapter, fit_previz_adapter

ADAPTER_FILE = "previz_adapter.json"
TRAINER = "previz adapter (embedded palette fit, not a LoRA)"


@dataclass(frozen=True)
class AdapterResult:
    adapter: PrevizAdapter
    validation_identity: float
    identity_backend: str
    validation_path: Path
    manifest: dict


def train_adapter(ref: CharacterRef, dataset_dir: Path, renderer: Renderer, anchor: Anchor, out_dir: Path,
                  seed: int, faces: FaceModel | None = None) -> AdapterResult:
    """Fit the adapter, render a validation portrait with it and measure its identity (ArcFace
    with `faces`, else the palette signature)."""
    dataset = read_json(dataset_dir / "manifest.json")
    entries = dataset["approved"]
    if not entries:
        raise ValueError(f"{ref.key}: the approved dataset is empty; approve images first")
    images = [load_png(dataset_dir / e["image"]) for e in entries]
    boxes = [tuple(e["face_box"]) if e["face_box"] else None for e in entries]
    adapter = fit_previz_adapter(images, boxes, ref.character, seed=seed)
    adapter.save(out_dir / ADAPTER_FILE)
    style = ref.config.show.style
    width, height = style.resolution
    request = StillRequest(
        characters=(ref.character,), prompt=still_prompt(style, ref.character, "portrait"),
        negative_prompt=negative_prompt(style, [ref.character]), seed=seed, width=width // 2, height=height // 2,
        framing="portrait", background=tuple(ref.config.world.palette), steps=style.steps,
        palette_overrides={ref.character.slug: adapter.palette},
    )
    result = renderer.render_still(request)
    validation_path = save_png(out_dir / "validation.png", result.image)
    box = result.face_boxes.get(ref.character.slug)
    identity, identity_backend = image_identity(result.image, box, anchor, faces)
    manifest = base_manifest(
        "character_lora", ref.key, TRAINER, "cpu", trainer_version="previz-adapter-1", seed=seed,
        dataset=[e["id"] for e in entries], iterations=adapter.iterations, palette=adapter.palette,
        loss_history=adapter.loss_history, validation={"prompt": request.prompt, "seed": seed,
                                                       "identity": round(identity, 4), "face_box": box,
                                                       "identity_backend": identity_backend},
        files=[file_entry(out_dir / ADAPTER_FILE, out_dir), file_entry(validation_path, out_dir)],
    )
    write_manifest(out_dir, manifest)
    return AdapterResult(adapter, round(identity, 4), identity_backend, validation_path, manifest)


def load_adapter_palette(adapter_dir: Path) -> dict[str, str] | None:
    path = adapter_dir / ADAPTER_FILE
    return PrevizAdapter.load(path).palette if path.exists() else None
