"""character_embedding: a character's identity anchors from its reference faces — the palette
signature's and the head palette signature's always (normalised means), and the anchor of the
model that judges the show's rendered frames where it is installed: CCIP's (`ccip.merge` of the
references' head features) for drawn styles, ArcFace's for photoreal ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.config.schema import Quality
from anime_pipeline.imaging import Box, load_png
from anime_pipeline.manifest import FileEntry, Manifest
from anime_pipeline.metrics import ccip, weightfree
from anime_pipeline.metrics.character import PALETTE_RULE, ccip_reference
from anime_pipeline.metrics.identity import reference_embedding
from anime_pipeline.metrics.suite import Anchor, ArcFaceIdentity, CcipIdentity, IdentityBackend
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_reference import ReferenceManifest
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.step import MetadataValue, Step, StepEnv, Table, Upstream
from anime_pipeline.storage import atomic_path, sha256_json

# kind → (anchor file, per-reference vectors file); what `load_anchor` reads back
ANCHOR_FILES = {"palette": ("anchor.npy", "vectors.npy"), "signature": ("anchor_signature.npy", "vectors_signature.npy"),
                "arcface": ("anchor_arcface.npy", "vectors_arcface.npy"), "ccip": ("anchor_ccip.npy", "vectors_ccip.npy")}


class EmbeddingManifest(Manifest):
    dimensions: int
    images: list[str]  # the reference panels behind the gate's anchor, in the order of its vectors
    similarities: dict[str, float]  # each of those panels' similarity to the gate's anchor
    rule: RuleRecord  # the same-character rule of the backend that made the gate's anchor
    anchors: dict[str, str | None]  # kind → backend that made it (None: not made)
    anchor_images: dict[str, list[str]]


def _references_agree(m: EmbeddingManifest, q: Quality) -> Measured:
    worst = min(m.similarities.values())
    return Measured(worst, m.backend, {"similarities": m.similarities, "rule": m.rule.source},
                    threshold=m.rule.threshold(q))


GATES: GateSet[EmbeddingManifest] = GateSet((
    Gate("references_agree", "Every reference face is the same character as the anchor (similarity ≥ the identity "
         "backend's threshold, quality.identity.<backend>).", _references_agree, "at_least", "identity"),
))


def _model_vectors(backend: IdentityBackend, images: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    """Per reference panel, the judging model's vector: CCIP's of the largest detected head, or
    ArcFace's of the largest face; None where the model finds none."""
    if isinstance(backend, CcipIdentity):
        return {n: ccip_reference(backend.model, backend.detector, image) for n, image in images.items()}
    assert isinstance(backend, ArcFaceIdentity)
    return {n: reference_embedding(backend.faces, image) for n, image in images.items()}


def _model_anchor(ref: CharacterRef, backend: IdentityBackend, images: dict[str, np.ndarray]
                  ) -> tuple[str, np.ndarray, np.ndarray, dict[str, float]]:
    """(kind, anchor, vectors, similarities to the anchor) of the judging model's references."""
    found = {n: v for n, v in _model_vectors(backend, images).items() if v is not None}
    if not found:
        raise ValueError(f"{ref.key}: {backend.backend} finds no face in the reference sheet; re-render it")
    vectors = np.stack(list(found.values()))
    if isinstance(backend, CcipIdentity):
        anchor = ccip.merge(vectors)
        similarity = 1.0 - backend.model.differences_to(vectors, anchor)[:, 0]
        return "ccip", anchor, vectors, dict(zip(found, similarity.tolist(), strict=True))
    anchor = weightfree.anchor(list(vectors))
    return "arcface", anchor, vectors, {n: weightfree.cosine(v, anchor) for n, v in found.items()}


def compute_anchors(ref: CharacterRef, sheet_dir: Path, sheet: ReferenceManifest, out_dir: Path,
                    backend: IdentityBackend, fingerprint: str | None) -> EmbeddingManifest:
    faces: dict[str, Box] = sheet.faces()
    names = sorted(faces)
    if not names:
        raise ValueError(f"{ref.key}: no reference image has a detected face; re-render the reference sheet")
    images = {name: load_png(sheet_dir / f"{name}.png") for name in names}
    palette = np.stack([weightfree.palette_signature(images[n], faces[n]) for n in names])
    signature = np.stack([weightfree.character_signature(images[n], faces[n]) for n in names])
    vectors = {"palette": palette, "signature": signature}
    anchors = {kind: weightfree.anchor(list(v)) for kind, v in vectors.items()}
    made = {"palette": weightfree.PALETTE_BACKEND, "signature": weightfree.CHARACTER_BACKEND}
    used = {"palette": names, "signature": names}
    gate_kind, rule, gate_backend = "signature", PALETTE_RULE, weightfree.CHARACTER_BACKEND
    similarities = {n: weightfree.cosine(v, anchors["signature"]) for n, v in zip(names, signature, strict=True)}
    if isinstance(backend, CcipIdentity | ArcFaceIdentity):
        gate_kind, anchor, model_vectors, similarities = _model_anchor(ref, backend, images)
        anchors[gate_kind], vectors[gate_kind], made[gate_kind] = anchor, model_vectors, backend.backend
        used[gate_kind] = list(similarities)
        rule, gate_backend = backend.rule, backend.backend
    files = {}
    for kind, anchor in anchors.items():
        anchor_file, vectors_file = ANCHOR_FILES[kind]
        files[anchor_file], files[vectors_file] = anchor, vectors[kind]
    for name, array in files.items():
        _save_npy(out_dir / name, array.astype(np.float32))
    for kind in ANCHOR_FILES.keys() - anchors.keys():  # a model's anchor from an earlier run must not outlive it
        for stale in ANCHOR_FILES[kind]:
            (out_dir / stale).unlink(missing_ok=True)
    manifest = EmbeddingManifest(
        kind=CharacterEmbedding.artifact, key=ref.key, backend=gate_backend, device=_device(backend),
        inputs_fingerprint=fingerprint, dimensions=int(anchors[gate_kind].shape[0]), images=used[gate_kind],
        similarities={n: round(float(v), 4) for n, v in similarities.items()}, rule=RuleRecord.of(rule),
        anchors={kind: made.get(kind) for kind in ANCHOR_FILES}, anchor_images=used,
        files=[FileEntry.of(out_dir / name, out_dir) for name in files],
    )
    manifest.write(out_dir)
    return manifest


def _device(backend: IdentityBackend) -> str:
    if isinstance(backend, CcipIdentity):
        return backend.model.device
    return backend.faces.device if isinstance(backend, ArcFaceIdentity) else "cpu"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: np.save would add ".npy" to the name
        np.save(fh, array)


def load_anchor(embedding_dir: Path) -> Anchor:
    """Every anchor character_embedding made (`Anchor`); the palette signature's always exists."""
    path = embedding_dir / ANCHOR_FILES["palette"][0]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize character_embedding first")

    def optional(kind: str) -> np.ndarray | None:
        file = embedding_dir / ANCHOR_FILES[kind][0]
        return np.load(file) if file.exists() else None

    return Anchor(np.load(path), arcface=optional("arcface"), signature=optional("signature"), ccip=optional("ccip"))


class CharacterEmbedding(Step[CharacterRef, EmbeddingManifest]):
    """Identity anchors and per-image vectors of the reference faces: palette and head palette
    signatures always, the judging model's (CCIP for drawn styles, ArcFace for photoreal ones) on
    rendered (not previz) references where it is installed."""

    artifact = "character_embedding"
    level = "character"
    manifest_type = EmbeddingManifest
    gates = GATES
    version = "2"  # issue 10: the calibrated gate measures, identity judged per backend

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
                               show_identity_backend(env.metrics, ref.config, sheet.backend), fingerprint)

    def metadata(self, manifest: EmbeddingManifest, folder: Path) -> dict[str, MetadataValue]:
        return {**super().metadata(manifest, folder), "images": len(manifest.images),
                "dimensions": manifest.dimensions, "min_similarity": min(manifest.similarities.values()),
                "similarities": Table(manifest.similarities)}
