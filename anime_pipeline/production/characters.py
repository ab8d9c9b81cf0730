"""Character reference sheets and the identity anchor computed from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import Timings, base_manifest, file_entry, write_manifest
from anime_pipeline.metrics import weightfree
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES, Box, Renderer, StillRequest
from anime_pipeline.storage import atomic_path

SHEET_COLUMNS = 7
# A frontal face finder is not expected to find a face from behind or in profile (one eye);
# a profile face it does find is still used for the anchor.
NO_FACE_EXPECTED = {"back", "profile left", "profile right"}


@dataclass(frozen=True)
class Panel:
    name: str
    kind: str  # "pose", "expression" or "given"
    path: Path
    face_box: Box | None
    face_expected: bool


@dataclass(frozen=True)
class ReferenceSheet:
    panels: list[Panel]
    sheet_path: Path
    manifest: dict

    @property
    def faces_missing(self) -> list[str]:
        return [p.name for p in self.panels if p.face_expected and p.face_box is None]

    def missing_panels(self) -> list[str]:
        names = {p.name for p in self.panels}
        wanted = [f"pose-{_slug(p)}" for p in REFERENCE_POSES] + [f"expression-{_slug(e)}" for e in REFERENCE_EXPRESSIONS]
        return [name for name in wanted if name not in names]


def _slug(text: str) -> str:
    return text.replace(" ", "-")


def detect_face(image: np.ndarray, ref: CharacterRef) -> Box | None:
    colors = ref.character.appearance.key_colors
    return weightfree.find_face(image, colors.skin, colors.eyes)


def build_reference_sheet(ref: CharacterRef, renderer: Renderer, out_dir: Path, seed: int, show_dir: Path) -> ReferenceSheet:
    """Render 8 poses + 6 expressions (SPEC §7), copy any reference images from the YAML, detect faces."""
    cfg, character = ref.config, ref.character
    style = cfg.show.style
    width, height = style.resolution
    timings = Timings()
    panels: list[Panel] = []
    requests: list[dict] = []
    jobs = [("pose", p, "full_body", p, "neutral") for p in REFERENCE_POSES]
    jobs += [("expression", e, "portrait", "front", e) for e in REFERENCE_EXPRESSIONS]
    negative = negative_prompt(style, [character])
    for index, (kind, label, framing, pose, expression) in enumerate(jobs):
        request = StillRequest(
            characters=(character,), prompt=still_prompt(style, character, framing, expression=expression, pose=pose),
            negative_prompt=negative, seed=seed + index, width=width // 2, height=height // 2, framing=framing,
            pose=pose, expression=expression, background=tuple(cfg.world.palette), steps=style.steps,
        )
        with timings.phase("render"):
            result = renderer.render_still(request)
        path = out_dir / f"{kind}-{_slug(label)}.png"
        save_png(path, result.image)
        face_expected = not (kind == "pose" and pose in NO_FACE_EXPECTED)
        with timings.phase("face_detection"):
            box = detect_face(result.image, ref) if pose != "back" else None
        panels.append(Panel(path.stem, kind, path, box, face_expected))
        requests.append({"panel": path.stem, "prompt": request.prompt, "negative_prompt": request.negative_prompt,
                         "seed": request.seed, "pose": pose, "expression": expression, "framing": framing,
                         "resolution": [request.width, request.height], "renderer_params": result.params})
    for index, given in enumerate(ref.character.reference_images):
        source = (show_dir / given).resolve()
        path = out_dir / f"given-{index:02d}.png"
        with atomic_path(path) as tmp:
            Image.open(source).convert("RGB").save(tmp, format="PNG")
        image = load_png(path)
        panels.append(Panel(path.stem, "given", path, detect_face(image, ref), True))
        requests.append({"panel": path.stem, "source": str(source)})
    sheet_path = out_dir / "sheet.png"
    save_png(sheet_path, _contact_sheet([load_png(p.path) for p in panels]))
    manifest = base_manifest(
        "character_reference", ref.key, renderer.backend, renderer.device, renderer_version=renderer.version,
        checkpoint=style.checkpoint, sampler=style.sampler, scheduler=style.scheduler, steps=style.steps, cfg=style.cfg,
        panels=requests, faces={p.name: list(p.face_box) if p.face_box else None for p in panels},
        face_detector="weight-free colour-region face finder (previz drawings)",
        files=[file_entry(p.path, out_dir) for p in panels] + [file_entry(sheet_path, out_dir)],
        timings=timings.seconds,
    )
    write_manifest(out_dir, manifest)
    return ReferenceSheet(panels, sheet_path, manifest)


def _contact_sheet(images: list[np.ndarray]) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // SHEET_COLUMNS)
    sheet = np.full((rows * h, SHEET_COLUMNS * w, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, SHEET_COLUMNS)
        tile = image if image.shape[:2] == (h, w) else np.asarray(Image.fromarray(image).resize((w, h)))
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


@dataclass(frozen=True)
class Embedding:
    anchor: np.ndarray
    vectors: np.ndarray
    names: list[str]
    similarities: list[float]
    manifest: dict


def compute_embedding(ref: CharacterRef, sheet_dir: Path, faces: dict[str, list[int] | None], out_dir: Path) -> Embedding:
    """Palette-signature identity vectors of every reference face and their normalised mean (the anchor)."""
    names = sorted(name for name, box in faces.items() if box)
    if not names:
        raise ValueError(f"{ref.key}: no reference image has a detected face; re-render the reference sheet")
    vectors = np.stack([weightfree.palette_signature(load_png(sheet_dir / f"{n}.png"), tuple(faces[n])) for n in names])
    anchor = weightfree.anchor(list(vectors))
    similarities = [round(weightfree.cosine(v, anchor), 4) for v in vectors]
    _save_npy(out_dir / "anchor.npy", anchor.astype(np.float32))
    _save_npy(out_dir / "vectors.npy", vectors.astype(np.float32))
    manifest = base_manifest(
        "character_embedding", ref.key, "weight-free palette signature (512-d, stands in for ArcFace)", "cpu",
        dimensions=int(anchor.shape[0]), images=names, similarities=dict(zip(names, similarities, strict=True)),
        files=[file_entry(out_dir / "anchor.npy", out_dir), file_entry(out_dir / "vectors.npy", out_dir)],
    )
    write_manifest(out_dir, manifest)
    return Embedding(anchor, vectors, names, similarities, manifest)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def load_anchor(embedding_dir: Path) -> np.ndarray:
    path = embedding_dir / "anchor.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize character_embedding first")
    return np.load(path)
