"""character_embedding: a character's identity anchors — the normalised mean of its reference faces'
vectors (palette signatures always; ArcFace embeddings too on rendered, not previz, references)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import FileEntry, Manifest
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.identity import FaceModel, reference_embedding
from anime_pipeline.metrics.suite import Anchor
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_reference import ReferenceManifest
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.step import MetadataValue, Step, StepEnv, Table, Upstream
from anime_pipeline.storage import atomic_path, sha256_json

ANCHOR_FILES = ("anchor.npy", "vectors.npy", "anchor_arcface.npy", "vectors_arcface.npy")


class EmbeddingManifest(Manifest):
    dimensions: int
    images: list[str]  # the reference panels behind the gate's anchor, in the order of its vectors
    similarities: dict[str, float]  # each of those panels' cosine to the anchor
    anchors: dict[str, str | None]  # kind → backend that made it (None: not made)
    anchor_images: dict[str, list[str]]


def _references_agree(m: EmbeddingManifest, _quality) -> Measured:
    worst = min(m.similarities.values())
    return Measured(worst, m.backend, {"similarities": m.similarities})


GATES: GateSet[EmbeddingManifest] = GateSet((
    Gate("references_agree", "Every reference face agrees with the anchor (cosine ≥ the identity threshold).",
         _references_agree, "at_least", "identity"),
))


def compute_anchors(ref: CharacterRef, sheet_dir: Path, sheet: ReferenceManifest, out_dir: Path,
                    face_model: FaceModel | None, fingerprint: str | None) -> EmbeddingManifest:
    faces = sheet.faces()
    names = sorted(faces)
    if not names:
        raise ValueError(f"{ref.key}: no reference image has a detected face; re-render the reference sheet")
    images = {name: load_png(sheet_dir / f"{name}.png") for name in names}
    palette = np.stack([weightfree.palette_signature(images[n], faces[n]) for n in names])
    files = {"anchor.npy": weightfree.anchor(list(palette)), "vectors.npy": palette}
    used = {"palette": names}
    backend, vectors = weightfree.PALETTE_BACKEND, palette
    if face_model is not None:
        embedded = {n: reference_embedding(face_model, images[n]) for n in names}
        names = used["arcface"] = [n for n in names if embedded[n] is not None]
        if not names:
            raise ValueError(f"{ref.key}: {face_model.backend} finds no face in the reference sheet; re-render it")
        vectors = np.stack([embedded[n] for n in names])
        files |= {"anchor_arcface.npy": weightfree.anchor(list(vectors)), "vectors_arcface.npy": vectors}
        backend = face_model.backend
    gate_anchor = files["anchor.npy"] if face_model is None else files["anchor_arcface.npy"]
    similarities = {n: round(weightfree.cosine(v, gate_anchor), 4) for n, v in zip(names, vectors, strict=True)}
    for name, array in files.items():
        _save_npy(out_dir / name, array.astype(np.float32))
    for stale in set(ANCHOR_FILES) - files.keys():  # an ArcFace anchor from an earlier run must not outlive it
        (out_dir / stale).unlink(missing_ok=True)
    manifest = EmbeddingManifest(
        kind=CharacterEmbedding.artifact, key=ref.key, backend=backend,
        device=face_model.device if face_model else "cpu", inputs_fingerprint=fingerprint,
        dimensions=int(gate_anchor.shape[0]), images=names, similarities=similarities,
        anchors={"palette": weightfree.PALETTE_BACKEND, "arcface": backend if face_model else None},
        anchor_images=used, files=[FileEntry.of(out_dir / name, out_dir) for name in files],
    )
    manifest.write(out_dir)
    return manifest


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the name
        np.save(fh, array)


def load_anchor(embedding_dir: Path) -> Anchor:
    path = embedding_dir / "anchor.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize character_embedding first")
    arcface = embedding_dir / "anchor_arcface.npy"
    return Anchor(np.load(path), np.load(arcface) if arcface.exists() else None)


class CharacterEmbedding(Step[CharacterRef, EmbeddingManifest]):
    """512-d identity anchors (normalised mean) and per-image vectors of the reference faces: palette
    signatures always, ArcFace embeddings too on rendered (not previz) references."""

    artifact = "character_embedding"
    level = "character"
    manifest_type = EmbeddingManifest
    gates = GATES

    def folder(self, ref: CharacterRef, paths: StoragePaths) -> Path:
        return paths.embedding(ref.key)

    def upstream(self, ref: CharacterRef) -> list[Upstream]:
        return [Upstream("character_reference", ref.key)]

    def spec(self, ref: CharacterRef) -> dict:
        return character_spec(ref)

    def fingerprint(self, ref: CharacterRef, env: StepEnv) -> str:
        sheet = ReferenceManifest.require(env.paths.reference(ref.key), f"character_reference {ref.key}")
        return sha256_json({"spec": self.spec(ref), "version": self.version, "sheet": [f.sha256 for f in sheet.files],
                            "metrics": dict(env.metric_backends)})

    def produce(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> EmbeddingManifest:
        sheet_dir = env.paths.reference(ref.key)
        sheet = ReferenceManifest.require(sheet_dir, f"character_reference {ref.key}")
        return compute_anchors(ref, sheet_dir, sheet, self.folder(ref, env.paths),
                               env.metrics.face_model(sheet.backend), fingerprint)

    def metadata(self, manifest: EmbeddingManifest, folder: Path) -> dict[str, MetadataValue]:
        return {**super().metadata(manifest, folder), "images": len(manifest.images),
                "dimensions": manifest.dimensions, "min_similarity": min(manifest.similarities.values()),
                "similarities": Table(manifest.similarities)}
