from anime_pipeline.manifest import write_manifest
from anime_pipeline.production.assembly import cast_identity


def _shot(folder, identity, backend="palette"):
    write_manifest(folder, {"metrics": {"identity": identity, "backends": {"identity": backend} if identity else {}}})
    return folder


def test_cast_identity_is_each_characters_worst_shot(tmp_path):
    shots = [_shot(tmp_path / "sh01", {"mio": 0.91, "hoshi": 0.82}), _shot(tmp_path / "sh02", {}),
             _shot(tmp_path / "sh03", {"mio": 0.64})]
    cast = cast_identity(["sh01", "sh02", "sh03"], shots)
    assert cast["per_character"] == {"mio": 0.64, "hoshi": 0.82}
    assert cast["score"] == 0.64 and cast["backend"] == "palette"
    assert cast["per_shot"]["sh02"] == {}


def test_a_scene_without_characters_passes(tmp_path):
    cast = cast_identity(["sh01"], [_shot(tmp_path / "sh01", {})])
    assert cast["score"] == 1.0 and cast["backend"] == "no characters"
