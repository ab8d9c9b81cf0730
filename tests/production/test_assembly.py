from anime_pipeline.production.assembly import cast_identity


def _shot(identity, backend="palette"):
    return {"metrics": {"identity": identity, "backends": {"identity": backend} if identity else {}}}


def test_cast_identity_is_each_characters_worst_shot():
    shots = [_shot({"mio": 0.91, "hoshi": 0.82}), _shot({}), _shot({"mio": 0.64})]
    cast = cast_identity(["sh01", "sh02", "sh03"], shots)
    assert cast["per_character"] == {"mio": 0.64, "hoshi": 0.82}
    assert cast["score"] == 0.64 and cast["backend"] == "palette"
    assert cast["per_shot"]["sh02"] == {}


def test_a_scene_without_characters_passes():
    cast = cast_identity(["sh01"], [_shot({})])
    assert cast["score"] == 1.0 and cast["backend"] == "no characters"
