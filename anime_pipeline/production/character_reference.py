"""character_reference: a character's reference sheet — 8 poses and 6 expressions (SPEC §7), plus any
reference images the show file gives — with the face found in each panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.imaging import Box, load_png, save_png
from anime_pipeline.manifest import FileEntry, Manifest, Record, Timings
from anime_pipeline.metrics.suite import IdentityBackend, face_finder, largest_face
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import show_identity_backend
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Upstream
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES, Renderer, StillRequest
from anime_pipeline.storage import atomic_path

SHEET_COLUMNS = 7
SHEET_SEED = 1000
# A frontal face finder is not expected to find a face from behind or in profile (one eye);
# a profile face it does find is still used for the anchor.
NO_FACE_EXPECTED = {"back", "profile left", "profile right"}
PALETTE_FACE_FINDER = "weight-free colour-region face finder (previz drawings)"
FRONT_PANEL = "pose-front"


class Panel(Record):
    name: str
    kind: Literal["pose", "expression", "given"]
    image: str
    face_box: Box | None
    face_expected: bool
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    pose: str = ""
    expression: str = ""
    framing: str = ""
    resolution: tuple[int, int] | None = None
    renderer_params: dict[str, Any] = {}
    source: str | None = None  # a reference image given in the show file


class ReferenceManifest(Manifest):
    renderer_version: str
    checkpoint: str
    sampler: str
    scheduler: str
    steps: int
    cfg: float
    face_detector: str
    panels: list[Panel]
    sheet: str = "sheet.png"

    @property
    def expected_faces(self) -> list[Panel]:
        return [p for p in self.panels if p.face_expected]

    @property
    def faces_missing(self) -> list[str]:
        return [p.name for p in self.expected_faces if p.face_box is None]

    @property
    def missing_panels(self) -> list[str]:
        names = {p.name for p in self.panels}
        return [name for name in wanted_panels() if name not in names]

    def faces(self) -> dict[str, Box]:
        return {p.name: p.face_box for p in self.panels if p.face_box is not None}


def wanted_panels() -> list[str]:
    return [f"pose-{_slug(p)}" for p in REFERENCE_POSES] + [f"expression-{_slug(e)}" for e in REFERENCE_EXPRESSIONS]


def _slug(text: str) -> str:
    return text.replace(" ", "-")


def _faces_found(m: ReferenceManifest, _quality) -> Measured:
    found = len(m.expected_faces) - len(m.faces_missing)
    return Measured(found, m.face_detector, {"panels_without_face": ", ".join(m.faces_missing) or "none"},
                    threshold=len(m.expected_faces))


def _sheet_complete(m: ReferenceManifest, _quality) -> Measured:
    return Measured(len(m.panels) - len([p for p in m.panels if p.kind == "given"]), "count",
                    {"missing": ", ".join(m.missing_panels) or "none"}, threshold=len(wanted_panels()))


GATES: GateSet[ReferenceManifest] = GateSet((
    Gate("faces_found", "A face is found in every panel that should show one.", _faces_found, "at_least"),
    Gate("sheet_complete", f"{len(REFERENCE_POSES)} poses + {len(REFERENCE_EXPRESSIONS)} expressions present.",
         _sheet_complete, "at_least"),
))


def detect_face(image: np.ndarray, ref: CharacterRef, backend: IdentityBackend) -> Box | None:
    """The largest face, found the way the identity backend finds faces in frames: its detector
    (CCIP's anime face/head detector, ArcFace's face detector), else the colour-region finder
    that knows the character's skin and eye colours (previz drawings)."""
    colors = ref.character.appearance.key_colors
    return largest_face(image, backend, colors.skin, colors.eyes)


def render_panels(ref: CharacterRef, renderer: Renderer, out_dir: Path, faces: IdentityBackend,
                  timings: Timings) -> list[Panel]:
    cfg, character = ref.config, ref.character
    style = cfg.show.style
    width, height = style.resolution
    jobs = [("pose", p, "full_body", p, "neutral") for p in REFERENCE_POSES]
    jobs += [("expression", e, "portrait", "front", e) for e in REFERENCE_EXPRESSIONS]
    negative = negative_prompt(style, [character])
    panels = []
    for index, (kind, label, framing, pose, expression) in enumerate(jobs):
        request = StillRequest(
            characters=(character,), prompt=still_prompt(style, character, framing, expression=expression, pose=pose),
            negative_prompt=negative, seed=SHEET_SEED + index, width=width // 2, height=height // 2,
            framing=framing, pose=pose, expression=expression, background=tuple(cfg.world.palette), steps=style.steps,
        )
        with timings.phase("render"):
            result = renderer.render_still(request)
        name = f"{kind}-{_slug(label)}"
        save_png(out_dir / f"{name}.png", result.image)
        with timings.phase("face_detection"):
            box = detect_face(result.image, ref, faces) if pose != "back" else None
        panels.append(Panel(name=name, kind=kind, image=f"{name}.png", face_box=box,
                            face_expected=not (kind == "pose" and pose in NO_FACE_EXPECTED), prompt=request.prompt,
                            negative_prompt=request.negative_prompt, seed=request.seed, pose=pose,
                            expression=expression, framing=framing, resolution=(request.width, request.height),
                            renderer_params=result.params))
    return panels


def given_panels(ref: CharacterRef, show_dir: Path, out_dir: Path, faces: IdentityBackend) -> list[Panel]:
    """The reference images the show file lists, copied in as PNG panels."""
    panels = []
    for index, given in enumerate(ref.character.reference_images):
        source = (show_dir / given).resolve()
        name = f"given-{index:02d}"
        with atomic_path(out_dir / f"{name}.png") as tmp:
            Image.open(source).convert("RGB").save(tmp, format="PNG")
        box = detect_face(load_png(out_dir / f"{name}.png"), ref, faces)
        panels.append(Panel(name=name, kind="given", image=f"{name}.png", face_box=box, face_expected=True,
                            source=str(source)))
    return panels


def contact_sheet(images: list[np.ndarray]) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // SHEET_COLUMNS)
    sheet = np.full((rows * h, SHEET_COLUMNS * w, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, SHEET_COLUMNS)
        tile = image if image.shape[:2] == (h, w) else np.asarray(Image.fromarray(image).resize((w, h)))
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return sheet


class CharacterReference(Step[CharacterRef, ReferenceManifest]):
    """Reference sheet per character: 8 poses and 6 expressions (plus any images given in the YAML), with
    the face found in each panel."""

    artifact = "character_reference"
    level = "character"
    manifest_type = ReferenceManifest
    gates = GATES
    device = "renderer"

    def folder(self, ref: CharacterRef, paths: StoragePaths) -> Path:
        return paths.reference(ref.key)

    def upstream(self, ref: CharacterRef) -> list[Upstream]:
        return []

    def spec(self, ref: CharacterRef) -> dict:
        return character_spec(ref)

    def produce(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> ReferenceManifest:
        out_dir = self.folder(ref, env.paths)
        timings = Timings()
        with env.open_renderer(ref.config, {}) as renderer:
            env.log(f"rendering the reference sheet of {ref.character.name} on {renderer.backend}")
            faces = show_identity_backend(env.metrics, ref.config, renderer.backend)
            panels = render_panels(ref, renderer, out_dir, faces, timings)
            panels += given_panels(ref, env.show_dir(ref.config.show.slug), out_dir, faces)
        save_png(out_dir / "sheet.png", contact_sheet([load_png(out_dir / p.image) for p in panels]))
        style = ref.config.show.style
        manifest = ReferenceManifest(
            kind=self.artifact, key=ref.key, backend=renderer.backend, device=renderer.device,
            inputs_fingerprint=fingerprint, renderer_version=renderer.version, checkpoint=style.checkpoint,
            sampler=style.sampler, scheduler=style.scheduler, steps=style.steps, cfg=style.cfg,
            face_detector=face_finder(faces) or PALETTE_FACE_FINDER, panels=panels,
            files=[FileEntry.of(out_dir / p.image, out_dir) for p in panels] + [FileEntry.of(out_dir / "sheet.png", out_dir)],
            timings=timings.seconds,
        )
        manifest.write(out_dir)
        return manifest

    def metadata(self, manifest: ReferenceManifest, folder: Path) -> dict[str, MetadataValue]:
        return {**super().metadata(manifest, folder), "panels": len(manifest.panels),
                "faces_found": len(manifest.faces()), "folder": FileLink(folder),
                "preview": Preview(folder / manifest.sheet, "reference sheet"),
                "render_seconds": manifest.timings.get("render", 0.0)}


def front_panel(paths: StoragePaths, character_key: str) -> Path | None:
    """A character's IP-Adapter reference: the front pose of its sheet, once the sheet exists."""
    path = paths.reference(character_key) / f"{FRONT_PANEL}.png"
    return path if path.exists() else None
