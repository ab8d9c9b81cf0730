"""Identity across backends: the same-character rules, CCIP on clips end to end (tiny models the
test builds), and subject consistency on identity tracks."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.metrics import character
from anime_pipeline.metrics.character import (
    ARCFACE_RULE,
    PALETTE_RULE,
    IdentityRule,
    tracked_consistency,
)


def test_each_backend_has_its_own_threshold_on_one_similarity_scale():
    assert PALETTE_RULE.threshold == 0.70 and ARCFACE_RULE.threshold == 0.36
    assert ARCFACE_RULE.threshold == pytest.approx(1 - 1.13**2 / 2, abs=0.005)  # deepface's ArcFace euclidean_l2
    assert PALETTE_RULE.same(0.70) and not PALETTE_RULE.same(0.699)
    assert ARCFACE_RULE.same(0.45)  # a typical same-person ArcFace cosine, which 0.70 would reject


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=float)
    return vector / np.linalg.norm(vector)


class TestTrackedConsistency:
    A, B = unit([1, 0, 0]), unit([0, 1, 0])
    RULE = IdentityRule("test", 0.9, "test")

    def test_a_character_that_stays_itself_is_fully_consistent(self):
        score = tracked_consistency({"mio": [self.A] * 5}, character.cosine_matrix, self.RULE, "cos")
        assert score.value == 1.0 and score.per_frame == (1.0,) * 4

    def test_a_swap_halfway_scores_three_quarters(self):
        track = [self.A] * 4 + [self.B] * 4
        score = tracked_consistency({"mio": track}, character.cosine_matrix, self.RULE, "cos")
        # frame 4: neither its predecessor nor the first frame match; 5–7 match their predecessor only
        assert score.per_frame == (1, 1, 1, 0, 0.5, 0.5, 0.5)
        assert score.value == pytest.approx(4.5 / 7)

    def test_frames_without_the_character_are_no_evidence_and_the_worst_character_decides(self):
        score = tracked_consistency({"mio": [self.A, None, self.A, self.B], "hoshi": [self.B, None, None, self.B],
                                     "extra": [None, self.A, None, None]}, character.cosine_matrix, self.RULE, "cos")
        assert score.details["per_character"] == {"mio": 0.5, "hoshi": 1.0}  # mio: found A, A, B
        assert score.per_frame == (1.0, 0.0) and score.value == 0.5
        assert score.details["frames_without_character"] == {"mio": [1], "hoshi": [1, 2], "extra": [0, 2, 3]}
        assert score.details["not_measured"] == ["extra"]  # found once: nothing to compare

    def test_no_character_found_twice_measures_nothing(self):
        assert tracked_consistency({"mio": [self.A, None]}, character.cosine_matrix, self.RULE, "cos") is None


class TestCcipOnClips:
    """A 320-px frame; the tiny detector finds one face at (80, 80)–(240, 240), whose head box
    is (40, 0)–(280, 240)."""

    @pytest.fixture
    def models(self, tmp_path):
        pytest.importorskip("onnxruntime")
        from anime_pipeline.metrics import ccip
        from tests.tiny_models import tiny_anime_detector, tiny_ccip

        model = ccip.load_ccip(tiny_ccip(tmp_path / "ccip-tiny", threshold=0.2))
        detector = ccip.load_detector(tiny_anime_detector(tmp_path / "face_detect_tiny" / "model.onnx",
                                                          [(320, 320, 320, 320, 0.9)]))
        return model, detector

    @staticmethod
    def frame(seed: int) -> np.ndarray:
        """Flat random colours in 40-px cells: pictures the tiny model's 32-px pooling tells apart."""
        cells = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        return np.kron(cells, np.ones((40, 40, 1), np.uint8))

    def test_the_character_is_itself_where_its_head_matches_the_anchor(self, models):
        from anime_pipeline.metrics import ccip
        from tests.tiny_models import ccip_expected_feature

        model, detector = models
        reference = character.ccip_reference(model, detector, self.frame(1))
        np.testing.assert_allclose(reference, ccip_expected_feature(self.frame(1)[0:240, 40:280]), rtol=1e-4, atol=2e-3)
        anchor = ccip.merge([reference])
        scores = character.ccip_identity([self.frame(1), self.frame(2), self.frame(1)], {"mio": anchor}, model, detector)
        rule = character.ccip_rule(model)
        assert rule.threshold == pytest.approx(0.8) and "metrics.json" in rule.source
        mio = scores["mio"]
        assert mio.per_frame[0] == pytest.approx(1.0, abs=1e-5) and mio.per_frame[2] == pytest.approx(1.0, abs=1e-5)
        assert not rule.same(mio.per_frame[1]) and mio.value == mio.per_frame[1]
        assert mio.backend == f"{model.backend} + {detector.backend}" and mio.details["threshold_difference"] == 0.2

    def test_one_head_goes_to_the_character_it_matches_best(self, models):
        from anime_pipeline.metrics import ccip

        model, detector = models
        anchors = {slug: ccip.merge([character.ccip_reference(model, detector, self.frame(seed))])
                   for slug, seed in (("mio", 1), ("hoshi", 2))}
        scores = character.ccip_identity([self.frame(2)], anchors, model, detector)
        assert scores["hoshi"].value == pytest.approx(1.0, abs=1e-5)
        assert scores["mio"].value == 0.0 and scores["mio"].details["frames_without_face"] == [0]

    def test_subject_consistency_on_ccip_tracks_catches_a_swap(self, models):
        from anime_pipeline.metrics import ccip

        model, detector = models
        anchor = ccip.merge([character.ccip_reference(model, detector, self.frame(1))])
        frames = [self.frame(1)] * 4 + [self.frame(2)] * 4
        found = character.ccip_tracks(frames, {"mio": anchor}, model, detector)
        tracks = {"mio": [feature for feature, _ in found["mio"]]}
        score = tracked_consistency(tracks, character.ccip_similarity(model), character.ccip_rule(model), "ccip")
        assert score.value == pytest.approx(4.5 / 7)
