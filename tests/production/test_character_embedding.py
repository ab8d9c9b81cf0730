"""character_reference → character_embedding: images the show file gives join the sheet and the anchor,
and a model's anchor exists only while that model judges the character."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from anime_pipeline.imaging import load_png
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.suite import ArcFaceIdentity, PaletteIdentity
from anime_pipeline.production.character_embedding import (
    CharacterEmbedding,
    EmbeddingManifest,
    compute_anchors,
    load_anchor,
)
from anime_pipeline.production.character_reference import CharacterReference
from anime_pipeline.production.step import run_step
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES
from tests.step_env import embedded_env
from tests.worlds import SAMPLE

MIO = "lantern-post/mio"


def _env(root, reference_images: list[str] | None = None):
    configs = root / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(SAMPLE.read_text())
    if reference_images:
        data["characters"][0]["reference_images"] = reference_images
    (configs / SAMPLE.name).write_text(yaml.safe_dump(data, sort_keys=False))
    return embedded_env(configs, root / "storage", root / "models")


def test_reference_images_from_the_yaml_join_the_sheet_and_the_anchor(tmp_path):
    drawn_env = _env(tmp_path / "drawn")
    drawn = run_step(CharacterReference(), drawn_env.project.characters[MIO], drawn_env).manifest
    refs = tmp_path / "given" / "configs" / "refs"
    refs.mkdir(parents=True)
    shutil.copy(drawn_env.paths.reference(MIO) / drawn.panels[0].image, refs / "mio_front.png")
    # the weight-free face finder reads flat colours: a high-quality JPEG keeps them (q75 blurs the eyes away)
    Image.open(refs / "mio_front.png").convert("RGB").save(refs / "mio.jpg", quality=95)

    env = _env(tmp_path / "given", ["refs/mio.jpg"])
    ref = env.project.characters[MIO]
    sheet = run_step(CharacterReference(), ref, env).manifest
    assert len(sheet.panels) == len(REFERENCE_POSES) + len(REFERENCE_EXPRESSIONS) + 1
    given = sheet.panels[-1]
    assert given.kind == "given" and given.image == "given-00.png" and given.face_box is not None
    assert given.source and given.source.endswith("mio.jpg")
    assert sheet.missing_panels == [] and sheet.faces_missing == []
    embedding = run_step(CharacterEmbedding(), ref, env).manifest
    assert "given-00" in embedding.images and min(embedding.similarities.values()) > 0.7
    assert run_step(CharacterEmbedding(), ref, env).kept  # nothing that determines the anchor changed


def test_a_face_pack_adds_an_arcface_anchor_that_a_later_palette_run_removes(tmp_path):
    pytest.importorskip("insightface")
    from anime_pipeline.metrics import identity
    from tests.tiny_models import SameFacesDetector, expected_embedding, tiny_arcface

    env = _env(tmp_path)
    ref = env.project.characters[MIO]
    sheet = run_step(CharacterReference(), ref, env).manifest
    sheet_dir, out = env.paths.reference(MIO), tmp_path / "embedding"
    recognizer = identity.load_recognizer(tiny_arcface(tmp_path / "w600k_tiny.onnx"))
    arcface = ArcFaceIdentity(identity.face_model(SameFacesDetector([(0, 0)]), recognizer, "tiny"))

    embedding = compute_anchors(ref, sheet_dir, sheet, out, arcface, fingerprint=None)
    tiles = [load_png(sheet_dir / f"{name}.png")[:112, :112] for name in embedding.images]
    expected = weightfree.anchor([expected_embedding(tile) for tile in tiles])
    np.testing.assert_allclose(load_anchor(out).arcface, expected, atol=1e-5)
    assert embedding.backend == arcface.backend and embedding.anchors["arcface"] == arcface.backend
    assert list(embedding.similarities.values()) == pytest.approx(
        [float(expected_embedding(t) @ expected) for t in tiles], abs=1e-4)

    compute_anchors(ref, sheet_dir, sheet, out, PaletteIdentity(), fingerprint=None)
    assert load_anchor(out).arcface is None and not (out / "vectors_arcface.npy").exists()
    assert EmbeddingManifest.load(out).backend == weightfree.CHARACTER_BACKEND
