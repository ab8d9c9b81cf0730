"""The gates' metric suite: model-based where weights are installed, weight-free otherwise, and
the backend of every score says which."""

from __future__ import annotations

import numpy as np
import pytest

from anime_pipeline.metrics import suite as suite_module
from anime_pipeline.metrics import temporal, vbench, weightfree
from anime_pipeline.metrics.models import ModelUnavailable
from anime_pipeline.metrics.suite import (
    Anchor,
    ArcFaceIdentity,
    MetricSuite,
    PaletteIdentity,
    character_identity,
    still_identity,
)
from tests.worlds import empty_store

COMFYUI, PREVIZ = "comfyui 0.3.10 (http://gpu:8188)", "previz (embedded, CPU)"
FRAMES = [np.full((32, 32, 3), v, np.uint8) for v in (10, 20, 30, 40, 50)]


def test_without_weights_every_metric_falls_back_and_says_why(weight_free):
    assert weight_free.temporal_stability(FRAMES, temporal.analyse(FRAMES, 24)).backend == temporal.STABILITY_BACKEND
    assert weight_free.motion_smoothness(FRAMES).backend == weightfree.FLOW_SMOOTHNESS_BACKEND
    assert weight_free.subject_consistency(FRAMES).backend == weightfree.PALETTE_CONSISTENCY_BACKEND
    assert weight_free.aesthetic(FRAMES[:1]).backend == weightfree.AESTHETIC_PROXY_BACKEND
    assert weight_free.identity_backend(COMFYUI, photoreal=True) == PaletteIdentity()
    assert set(weight_free.unavailable) == {"temporal_lpips", "motion_smoothness", "subject_consistency",
                                            "aesthetic", "identity"}
    assert "not found" in weight_free.unavailable["temporal_lpips"]


def test_a_model_that_cannot_load_is_tried_once(tmp_path, monkeypatch):
    calls = []

    def missing(store):
        calls.append(store)
        raise ModelUnavailable("AMT-S unavailable: amt-s.pth not found")

    monkeypatch.setitem(suite_module.LOADERS, "motion_smoothness", missing)
    suite = MetricSuite(empty_store(tmp_path))
    suite.motion_smoothness(FRAMES)
    suite.motion_smoothness(FRAMES)
    assert len(calls) == 1 and suite.unavailable["motion_smoothness"].startswith("AMT-S unavailable")


def test_installed_models_replace_the_fallbacks(tmp_path):
    reversed_blend = weightfree.Interpolator("tiny", "tiny interpolator", lambda a, b: b)
    extract = lambda frames: np.stack([f.reshape(-1)[:3].astype(float) + [1, 0, 0] for f in frames])  # noqa: E731
    head = vbench.LinearHead(np.array([3.0, 0.0, 0.0]), 1.0)
    suite = MetricSuite(empty_store(tmp_path), preloaded={
        "motion_smoothness": reversed_blend, "subject_consistency": extract, "aesthetic": (extract, head)})

    smooth = suite.motion_smoothness(FRAMES)
    assert smooth.backend == "tiny interpolator" and smooth.details["interpolator"] == "tiny"
    assert smooth.value == pytest.approx((255 - 10) / 255)  # odd frame 20 vs the "midpoint" 30, then 40 vs 50
    assert suite.subject_consistency(FRAMES).backend == vbench.DINO_BACKEND
    aesthetic = suite.aesthetic(FRAMES[:1])
    assert aesthetic.backend == vbench.AESTHETIC_BACKEND
    assert aesthetic.value == pytest.approx(3 * 11 / np.linalg.norm([11, 10, 10]) + 1)


def test_arcface_is_never_used_on_previz_drawings(tmp_path):
    suite = MetricSuite(empty_store(tmp_path), preloaded={"identity": "face pack"})
    assert suite.identity_backend(PREVIZ, photoreal=True) == PaletteIdentity()
    assert suite.identity_backend(COMFYUI, photoreal=True) == ArcFaceIdentity("face pack")


def test_a_corrupt_weight_file_falls_back_and_says_why(tmp_path):
    store = empty_store(tmp_path)
    store.face_pack_dir.mkdir(parents=True)
    (store.face_pack_dir / "w600k_r50.onnx").write_bytes(b"not an onnx model")
    suite = MetricSuite(store)
    assert suite.identity_backend(COMFYUI, photoreal=True) == PaletteIdentity()
    assert suite.unavailable["identity"].startswith("identity model failed to load: ")


def test_identity_without_a_face_model_uses_the_palette_in_the_renderers_boxes():
    frame = np.zeros((20, 20, 3), np.uint8)
    frame[:10, :10] = (200, 150, 120)
    anchor = Anchor(weightfree.palette_signature(frame, (0, 0, 10, 10)))
    scores = character_identity([frame, frame], [{"mio": (0, 0, 10, 10)}, {}], {"mio": anchor}, PaletteIdentity()).scores
    assert scores["mio"].per_frame == pytest.approx((1.0, 0.0)) and scores["mio"].backend == weightfree.PALETTE_BACKEND
    whole = weightfree.cosine(weightfree.palette_signature(frame), anchor.palette)
    judged = still_identity(frame, None, anchor, PaletteIdentity())  # no box: the whole image
    assert (judged.similarity, judged.backend) == (pytest.approx(whole), weightfree.PALETTE_BACKEND)


class TestArcFace:
    """With a face pack (tiny ONNX recognizer, stand-in detector), identity is ArcFace's."""

    @pytest.fixture
    def faces(self, tmp_path):
        pytest.importorskip("insightface")
        from anime_pipeline.metrics import identity
        from tests.tiny_models import SameFacesDetector, tiny_arcface

        recognizer = identity.load_recognizer(tiny_arcface(tmp_path / "w600k_tiny.onnx"))
        return identity.face_model(SameFacesDetector([(0, 0)]), recognizer, "tiny")

    def test_clips_and_stills_are_measured_against_the_arcface_anchor(self, faces):
        from tests.tiny_models import expected_embedding, face

        anchor = Anchor(np.zeros(512), expected_embedding(face(1)))
        scores = character_identity([face(1), face(2)], [{}, {}], {"mio": anchor}, ArcFaceIdentity(faces)).scores
        assert scores["mio"].backend.startswith("InsightFace ArcFace (tiny")
        assert scores["mio"].per_frame[0] == pytest.approx(1.0, abs=1e-5)
        assert scores["mio"].per_frame[1] == pytest.approx(float(expected_embedding(face(2)) @ anchor.arcface), abs=1e-5)
        judged = still_identity(face(1), None, anchor, ArcFaceIdentity(faces))
        assert judged.similarity == pytest.approx(1.0, abs=1e-5) and judged.backend == faces.backend

    def test_a_shot_without_characters_has_no_identity_to_measure(self, faces):
        from tests.tiny_models import face

        assert character_identity([face(1)], [{}], {}, ArcFaceIdentity(faces)).scores == {}

    def test_without_an_arcface_anchor_the_palette_is_used(self, faces):
        from tests.tiny_models import face

        anchor = Anchor(weightfree.palette_signature(face(1)))
        scores = character_identity([face(1)], [{"mio": (0, 0, 112, 112)}], {"mio": anchor}, ArcFaceIdentity(faces)).scores
        assert scores["mio"].backend == weightfree.PALETTE_BACKEND and scores["mio"].value == pytest.approx(1.0)


class TestIdentityBackends:
    """Which backend judges identity, and the one same-character rule each brings."""

    def test_previz_drawings_and_missing_models_get_the_palette_signature(self, weight_free):
        from anime_pipeline.metrics.suite import PaletteIdentity

        assert weight_free.identity_backend(PREVIZ) == PaletteIdentity()
        assert weight_free.identity_backend(COMFYUI) == PaletteIdentity()
        assert weight_free.identity_backend(COMFYUI, photoreal=True) == PaletteIdentity()
        assert "not found" in weight_free.unavailable["ccip"] and "not found" in weight_free.unavailable["anime_detector"]

    def test_photoreal_renders_get_arcface_where_a_pack_is_installed(self, tmp_path):
        from anime_pipeline.metrics.character import ARCFACE_RULE
        from anime_pipeline.metrics.suite import ArcFaceIdentity

        suite = MetricSuite(empty_store(tmp_path), preloaded={"identity": "face pack"})
        backend = suite.identity_backend(COMFYUI, photoreal=True)
        assert backend == ArcFaceIdentity("face pack") and backend.rule == ARCFACE_RULE

    def test_drawn_renders_get_ccip_from_the_placed_files(self, tmp_path):
        pytest.importorskip("onnxruntime")
        from anime_pipeline.metrics import ccip
        from anime_pipeline.metrics.suite import CcipIdentity, character_identity
        from tests.tiny_models import tiny_anime_detector, tiny_ccip

        store = empty_store(tmp_path)
        tiny_ccip(store.ccip_dir, threshold=0.2)
        tiny_anime_detector(store.anime_detector_file, [(320, 320, 320, 320, 0.9)])
        suite = MetricSuite(store)
        backend = suite.identity_backend(COMFYUI)
        assert isinstance(backend, CcipIdentity) and backend.rule.threshold == pytest.approx(0.8)
        assert backend.backend.startswith("CCIP (ccip-caformer-24-randaug-pruned, onnxruntime)")
        cells = [np.kron(np.random.default_rng(s).integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((40, 40, 1), np.uint8))
                 for s in (1, 2)]
        from anime_pipeline.metrics.character import ccip_reference

        anchor = Anchor(np.zeros(512), ccip=ccip.merge([ccip_reference(backend.model, backend.detector, cells[0])]))
        result = character_identity([cells[0], cells[1]], [{}, {}], {"mio": anchor}, backend)
        assert result.rule == backend.rule and result.scores["mio"].per_frame[0] == pytest.approx(1.0, abs=1e-5)
        assert not result.passed and not result.same_character("mio")
        from anime_pipeline.metrics.suite import still_identity

        assert still_identity(cells[0], None, anchor, backend).similarity == pytest.approx(1.0, abs=1e-5)
        assert not still_identity(cells[1], None, anchor, backend).same_character
        # without a CCIP anchor the palette signature judges, and says why
        palette = character_identity(cells, [{"mio": (0, 0, 320, 320)}] * 2, {"mio": Anchor(weightfree.palette_signature(cells[0], (0, 0, 320, 320)))}, backend)
        assert palette.rule.backend == "palette" and palette.note == "no ccip anchor for every character"

    def test_the_head_signature_judges_where_the_anchor_has_one(self):
        from anime_pipeline.metrics.suite import PaletteIdentity, character_identity

        frame = np.zeros((60, 60, 3), np.uint8)
        frame[20:50, 20:40] = (200, 150, 120)
        box = (20, 20, 40, 50)
        anchor = Anchor(weightfree.palette_signature(frame, box), signature=weightfree.character_signature(frame, box))
        result = character_identity([frame], [{"mio": box}], {"mio": anchor}, PaletteIdentity())
        assert result.scores["mio"].backend == weightfree.CHARACTER_BACKEND and result.value == pytest.approx(1.0)
        assert result.passed and result.same_character("mio")
        assert character_identity([frame], [{}], {}, PaletteIdentity()).value == 1.0  # no characters: nothing to fail
        assert set(anchor.as_lists()) == {"palette", "arcface", "signature", "ccip"}


def test_shot_measures_compute_every_gate_on_one_flow(weight_free):
    from anime_pipeline.metrics import temporal
    from anime_pipeline.metrics.suite import PaletteIdentity

    wide = np.kron(np.random.default_rng(3).integers(0, 256, (12, 30, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    frames = [np.ascontiguousarray(wide[:, 2 * t:2 * t + 96]) for t in range(9)]
    measures = weight_free.shot_measures(frames, 24, [{}] * 9, {}, PaletteIdentity())
    assert measures.motion_floor.value == 1.0 and measures.motion_floor.backend == temporal.FLOOR_BACKEND
    assert measures.temporal_stability.backend == temporal.STABILITY_BACKEND
    assert measures.temporal_flickering.value > 0.95 and measures.frame_timing.value < 0.2
    smooth = measures.motion_smoothness
    assert smooth.value == min(smooth.per_frame) and smooth.details["mean"] >= smooth.value
    assert measures.identity.scores == {}


def test_subject_consistency_without_characters_found_is_vbench_on_whole_frames(weight_free):
    from anime_pipeline.metrics.suite import Appearance, PaletteIdentity

    whole = weight_free.subject_consistency(FRAMES)
    assert weight_free.tracked_subject_consistency(FRAMES, {}, PaletteIdentity()) == whole
    nowhere = {"mio": Appearance(Anchor(np.zeros(512)), "#f3d3bd", "#d08a1e")}  # flat grey frames: no face
    assert weight_free.tracked_subject_consistency(FRAMES, nowhere, PaletteIdentity()) == whole


def test_a_still_is_judged_by_the_backend_its_anchor_allows(tmp_path):
    from anime_pipeline.metrics.character import ARCFACE_RULE, PALETTE_RULE
    from anime_pipeline.metrics.suite import (
        ArcFaceIdentity,
        PaletteIdentity,
        still_identity,
    )

    image = np.zeros((60, 60, 3), np.uint8)
    image[20:50, 20:40] = (200, 150, 120)
    box = (20, 20, 40, 50)
    signature = weightfree.character_signature(image, box)
    judged = still_identity(image, box, Anchor(weightfree.palette_signature(image, box), signature=signature),
                            PaletteIdentity())
    assert judged.similarity == pytest.approx(1.0) and judged.same_character and judged.rule == PALETTE_RULE
    whole = still_identity(image, None, Anchor(np.zeros(512), signature=weightfree.character_signature(image, (0, 0, 60, 60))),
                           PaletteIdentity())
    assert whole.similarity == pytest.approx(1.0) and whole.backend == weightfree.CHARACTER_BACKEND
    old = still_identity(image, box, Anchor(weightfree.palette_signature(image, box)), ArcFaceIdentity("pack"))
    assert old.backend == weightfree.PALETTE_BACKEND and old.rule == PALETTE_RULE  # no ArcFace anchor: palette
    assert ArcFaceIdentity("pack").rule == ARCFACE_RULE


def _streamed(frames, held: int):
    """Copies of the frames one at a time, failing when more than `held` frames already handed out
    are still referenced (by the meters) as the next one comes: the measures hold windows, not clips."""
    import weakref

    handed = []
    for frame in frames:
        alive = sum(ref() is not None for ref in handed)
        assert alive <= held, f"{alive} earlier frames still held at frame {len(handed)}"
        copy = frame.copy()
        handed.append(weakref.ref(copy))
        yield copy
        del copy  # only the consumer may keep it


def _previz_clip(n_frames: int, width: int = 256, height: int = 144):
    from anime_pipeline.config.loader import load_show
    from anime_pipeline.render.base import ClipRequest
    from anime_pipeline.render.previz import PrevizRenderer
    from tests.worlds import SAMPLE

    config = load_show(SAMPLE)
    request = ClipRequest(characters=tuple(config.characters), shot_type="medium", prompt="p", motion_prompt="m",
                          negative_prompt="n", seed=7, width=width, height=height, fps=24, n_frames=n_frames,
                          background=tuple(config.world.palette))
    return PrevizRenderer().render_clip(request)


def test_streamed_shot_measures_equal_the_whole_clip_formulas(weight_free):
    """The shot meter takes frames one at a time and lets them go: it keeps at most the smoothness
    window E_k, O_k (a frame within the flow's working size is its own working copy), and gives exactly what the whole-clip formulas give: VBench smoothness over
    the even/odd split, per-frame head-signature identity, the flow measures of the whole clip."""
    from anime_pipeline.metrics import flow, motion

    clip = _previz_clip(15)
    frames, boxes = clip.frames, clip.face_boxes
    full = next(i for i, b in enumerate(boxes) if len(b) == 2)
    anchors = {slug: Anchor(weightfree.palette_signature(frames[full], box),
                            signature=weightfree.character_signature(frames[full], box))
               for slug, box in boxes[full].items()}
    streamed = weight_free.shot_measures(_streamed(frames, held=2), 24, iter(boxes), anchors, PaletteIdentity())
    assert streamed == weight_free.shot_measures(frames, 24, boxes, anchors, PaletteIdentity())

    small = [motion.working_rgb(f) for f in frames]
    d = [float((np.maximum(o, m) - np.minimum(o, m)).mean(dtype=np.float64))
         for e0, e1, o in zip(small[0::2][:-1], small[0::2][1:], small[1::2])
         for m in [flow.interpolate_midpoint(e0, e1)]]
    assert streamed.motion_smoothness.per_frame == tuple(((255.0 - np.array(d)) / 255.0).tolist())
    for slug, anchor in anchors.items():
        expected = tuple(0.0 if b.get(slug) is None else
                         weightfree.cosine(weightfree.character_signature(f, b[slug]), anchor.signature)
                         for f, b in zip(frames, boxes))
        assert streamed.identity.scores[slug].per_frame == expected
    whole = temporal.analyse(frames, 24)
    assert streamed.temporal_stability == temporal.temporal_stability(whole)
    assert streamed.frame_timing == temporal.frame_timing(whole)


def test_model_identity_judges_windows_that_join_into_the_whole_clip(tmp_path):
    """CCIP judges IDENTITY_WINDOW frames at a time; the joined per-frame values and the frames
    without a face are those of one call over the whole clip."""
    pytest.importorskip("onnxruntime")
    from anime_pipeline.metrics import ccip
    from anime_pipeline.metrics.character import ccip_identity, ccip_reference
    from anime_pipeline.metrics.suite import IDENTITY_WINDOW, CcipIdentity
    from tests.tiny_models import tiny_anime_detector, tiny_ccip

    store = empty_store(tmp_path)
    tiny_ccip(store.ccip_dir, threshold=0.2)
    tiny_anime_detector(store.anime_detector_file, [(320, 320, 320, 320, 0.9)])
    backend = MetricSuite(store).identity_backend(COMFYUI)
    assert isinstance(backend, CcipIdentity)
    cells = [np.kron(np.random.default_rng(s).integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((40, 40, 1), np.uint8))
             for s in range(3)]
    frames = [cells[i % 3] for i in range(IDENTITY_WINDOW + 5)]
    anchor = ccip.merge([ccip_reference(backend.model, backend.detector, cells[0])])
    windowed = character_identity(frames, [{}] * len(frames), {"mio": Anchor(np.zeros(512), ccip=anchor)}, backend)
    whole = ccip_identity(frames, {"mio": anchor}, backend.model, backend.detector)["mio"]
    joined = windowed.scores["mio"]
    assert len(joined.per_frame) == len(frames)
    assert joined.per_frame == pytest.approx(whole.per_frame, abs=1e-6) and joined.value == pytest.approx(whole.value, abs=1e-6)
    assert joined.details == whole.details
