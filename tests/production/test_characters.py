import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from anime_pipeline.config import Project
from anime_pipeline.imaging import load_png
from anime_pipeline.manifest import read_manifest
from anime_pipeline.metrics import weightfree
from anime_pipeline.production.characters import build_reference_sheet, compute_embedding, load_anchor
from anime_pipeline.render.base import REFERENCE_EXPRESSIONS, REFERENCE_POSES
from anime_pipeline.render.previz import PrevizRenderer

from conftest import SAMPLE


def test_reference_images_from_the_yaml_join_the_sheet_and_the_anchor(tmp_path):
    configs = tmp_path / "configs"
    (configs / "refs").mkdir(parents=True)
    renderer = PrevizRenderer()
    project = Project.load(SAMPLE.parent)
    ref = project.characters["lantern-post/mio"]
    drawn = build_reference_sheet(ref, renderer, tmp_path / "drawn", seed=5, show_dir=configs)
    shutil.copy(drawn.panels[0].path, configs / "refs" / "mio_front.png")
    Image.open(configs / "refs" / "mio_front.png").convert("RGB").save(configs / "refs" / "mio.jpg")

    data = yaml.safe_load(SAMPLE.read_text())
    data["characters"][0]["reference_images"] = ["refs/mio.jpg"]
    (configs / "show.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    ref = Project.load(configs).characters["lantern-post/mio"]
    sheet = build_reference_sheet(ref, renderer, tmp_path / "sheet", seed=5, show_dir=configs)

    assert len(sheet.panels) == len(REFERENCE_POSES) + len(REFERENCE_EXPRESSIONS) + 1
    given = sheet.panels[-1]
    assert given.kind == "given" and given.path.name == "given-00.png" and given.face_box is not None
    assert sheet.missing_panels() == [] and sheet.faces_missing == []
    embedding = compute_embedding(ref, tmp_path / "sheet", sheet.manifest["faces"], tmp_path / "embedding")
    assert "given-00" in embedding.names and min(embedding.similarities) > 0.7


def test_a_face_pack_adds_an_arcface_anchor_that_a_later_palette_run_removes(tmp_path):
    pytest.importorskip("insightface")
    from anime_pipeline.metrics import identity
    from tiny_models import SameFacesDetector, expected_embedding, tiny_arcface

    ref = Project.load(SAMPLE.parent).characters["lantern-post/mio"]
    sheet = build_reference_sheet(ref, PrevizRenderer(), tmp_path / "sheet", seed=5, show_dir=SAMPLE.parent)
    recognizer = identity.load_recognizer(tiny_arcface(tmp_path / "w600k_tiny.onnx"))
    faces = identity.face_model(SameFacesDetector([(0, 0)]), recognizer, "tiny")
    out = tmp_path / "embedding"

    embedding = compute_embedding(ref, tmp_path / "sheet", sheet.manifest["faces"], out, faces)
    tiles = [load_png(tmp_path / "sheet" / f"{name}.png")[:112, :112] for name in embedding.names]
    expected = weightfree.anchor([expected_embedding(tile) for tile in tiles])
    np.testing.assert_allclose(load_anchor(out).arcface, expected, atol=1e-5)
    assert embedding.manifest["backend"] == faces.backend and embedding.manifest["anchors"]["arcface"] == faces.backend
    assert embedding.similarities == pytest.approx([float(expected_embedding(t) @ expected) for t in tiles], abs=1e-4)

    compute_embedding(ref, tmp_path / "sheet", sheet.manifest["faces"], out)
    assert load_anchor(out).arcface is None and not (out / "vectors_arcface.npy").exists()
    assert read_manifest(out)["backend"] == weightfree.PALETTE_BACKEND
