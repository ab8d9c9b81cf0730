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
from anime_pipeline.metrics.identity import FaceModel, largest_face_box, reference_embedding
from anime_pipeline.metrics.suite import Anchor
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES, Box, Renderer, StillRequest
from anime_pipeline.storage import atomic_path

SHEET_COLUMNS = 7
# A frontal face finder is not expected to find a face from behind or in profile (one eye);
# a profile face it does find is still used for the anchor.
NO_FACE_EXPECTED = {"back", "profile left", "profile right"}
ANCHOR_FILES = ("anchor.npy", "vectors.npy", "anchor_arcface.npy", "vectors_arcface.npy")
PALETTE_FACE_FINDER = "weight-free colour-region face finder (previz drawings)"


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


def detect_face(image: np.ndarray, ref: CharacterRef, faces: FaceModel | None = None) -> Box | None:
    """The largest face: found by the face pack's detector when given, else by the colour-region
    finder that knows the character's skin and eye colours (previz drawings)."""
    if faces is None:
        colors = ref.character.appearance.key_colors
        return weightfree.find_face(image, colors.skin, colors.eyes)
    box = largest_face_box(faces, image)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


def build_reference_sheet(ref: CharacterRef, renderer: Renderer, out_dir: Path, seed: int, show_dir: Path,
                          faces: FaceModel | None = None) -> ReferenceSheet:
    """Render 8 poses + 6 expressions (SPEC §7), copy any reference images from the YAML, detect
    faces (with `faces`, the face pack, when given: see `MetricSuite.face_model`)."""
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
            box = detect_face(result.image, ref, faces) if pose != "back" else None
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
        panels.append(Panel(path.stem, "given", path, detect_face(image, ref, faces), True))
        requests.append({"panel": path.stem, "source": str(source)})
    sheet_path = out_dir / "sheet.png"
    save_png(sheet_path, _contact_sheet([load_png(p.path) for p in panels]))
    manifest = base_manifest(
        "character_reference", ref.key, renderer.backend, renderer.device, renderer_version=renderer.version,
        checkpoint=style.checkpoint, sampler=style.sampler, scheduler=style.scheduler, steps=style.steps, cfg=style.cfg,
        panels=requests, faces={p.name: list(p.face_box) if p.face_box else None for p in panels},
        face_detector=faces.backend if faces else PALETTE_FACE_FINDER,
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
    anchor: Anchor
    names: list[str]
    similarities: list[float]  # each reference face's cosine to the anchor the gates use
    manifest: dict


def compute_embedding(ref: CharacterRef, sheet_dir: Path, faces: dict[str, list[int] | None], out_dir: Path,
                      face_model: FaceModel | None = None) -> Embedding:
    """The identity anchors (normalised mean of normalised vectors) of every reference face: the
    palette signature's always; with `face_model`, also ArcFace's, which the gates then use."""
    names = sorted(name for name, box in faces.items() if box)
    if not names:
        raise ValueError(f"{ref.key}: no reference image has a detected face; re-render the reference sheet")
    images = {name: load_png(sheet_dir / f"{name}.png") for name in names}
    palette = np.stack([weightfree.palette_signature(images[n], tuple(faces[n])) for n in names])
    files = {"anchor.npy": weightfree.anchor(list(palette)), "vectors.npy": palette}
    used = {"palette": names}  # the reference images behind each anchor, in the order of its vectors
    backend, vectors = weightfree.PALETTE_BACKEND, palette
    if face_model is not None:
        embedded = {n: reference_embedding(face_model, images[n]) for n in names}
        names = used["arcface"] = [n for n in names if embedded[n] is not None]
        if not names:
            raise ValueError(f"{ref.key}: {face_model.backend} finds no face in the reference sheet; re-render it")
        vectors = np.stack([embedded[n] for n in names])
        files |= {"anchor_arcface.npy": weightfree.anchor(list(vectors)), "vectors_arcface.npy": vectors}
        backend = face_model.backend
    anchor = Anchor(files["anchor.npy"], files.get("anchor_arcface.npy"))
    gate_anchor = anchor.palette if face_model is None else anchor.arcface
    similarities = [round(weightfree.cosine(v, gate_anchor), 4) for v in vectors]
    for name, array in files.items():
        _save_npy(out_dir / name, array.astype(np.float32))
    for stale in set(ANCHOR_FILES) - files.keys():  # an ArcFace anchor from an earlier run must not outlive it
        (out_dir / stale).unlink(missing_ok=True)
    manifest = base_manifest(
        "character_embedding", ref.key, backend, face_model.device if face_model else "cpu",
        dimensions=int(gate_anchor.shape[0]), images=names, similarities=dict(zip(names, similarities, strict=True)),
        anchors={"palette": weightfree.PALETTE_BACKEND, "arcface": backend if face_model else None},
        anchor_images=used, files=[file_entry(out_dir / name, out_dir) for name in files],
    )
    write_manifest(out_dir, manifest)
    return Embedding(anchor, names, similarities, manifest)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.save would append ".npy" to a name
        np.save(fh, array)


def load_anchor(embedding_dir: Path) -> Anchor:
    path = embedding_dir / "anchor.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize character_embedding first")
    arcface = embedding_dir / "anchor_arcface.npy"
    return Anchor(np.load(path), np.load(arcface) if arcface.exists() else None)
