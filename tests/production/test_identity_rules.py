"""Identity through the production steps: recorded values re-judged by the show's per-backend
thresholds, and a character whose colours swap halfway through a shot failing both the shot's
identity and the scene's subject consistency (issue 10), while the unswapped scene passes."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import pytest

from anime_pipeline.config import Project
from anime_pipeline.config.loader import load_show
from anime_pipeline.config.schema import IdentityThresholds, Quality
from anime_pipeline.imaging import load_png
from anime_pipeline.metrics.character import ARCFACE_RULE, PALETTE_RULE, IdentityRule
from anime_pipeline.metrics.suite import (
    ArcFaceIdentity,
    CcipIdentity,
    MetricSuite,
    PaletteIdentity,
    still_identity,
)
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_embedding import compute_anchors, load_anchor
from anime_pipeline.production.character_reference import ReferenceManifest
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.scene_video import GATES as SCENE_GATES
from anime_pipeline.production.scene_video import SceneVideo, transition_frames
from anime_pipeline.production.shot_clip import GATES as SHOT_GATES
from anime_pipeline.production.shot_clip import ShotClip, score_clip
from anime_pipeline.production.step import run_step
from anime_pipeline.render.base import ClipRequest, ClipStream, RenderedFrame
from anime_pipeline.render.previz import PrevizRenderer
from tests.step_env import embedded_env
from tests.worlds import SAMPLE, empty_store

RENDERED = "comfyui 0.3.64 (http://gpu:8188)"  # a real renderer's images: the model backends judge them
SCENE = "lantern-post/ep01/sc01"
SWAPPED_SHOT = "lantern-post/ep01/sc01/sh02"  # the medium shot of mio: her face is large enough to track


def test_recorded_identity_is_judged_by_the_shows_threshold_for_its_backend():
    assert RuleRecord.of(PALETTE_RULE).threshold(Quality()) == 0.70
    assert RuleRecord.of(ARCFACE_RULE).threshold(Quality()) == 0.36
    ccip = RuleRecord.of(IdentityRule("ccip", 0.822, "metrics.json"))
    assert ccip.threshold(Quality()) == 0.822  # unset: the model's own calibrated threshold
    strict = Quality(identity=IdentityThresholds(palette=0.9, ccip=0.85))
    assert RuleRecord.of(PALETTE_RULE).threshold(strict) == 0.9 and ccip.threshold(strict) == 0.85


def test_transition_frames_are_the_overlaps_of_every_cut():
    assert transition_frames([10, 8, 6], 2) == {8, 9, 14, 15}
    assert transition_frames([10], 2) == set()


class SwapHalfway(PrevizRenderer):
    """Renders mio's shot twice with the same seed — her own colours, then the other character's
    hair, outfit and accent — and cuts from the first to the second halfway."""

    def __init__(self, colours: dict[str, str]):
        self.colours = colours

    def stream_clip(self, request: ClipRequest) -> ClipStream:
        own = super().stream_clip(request)
        if "mio" not in [c.slug for c in request.characters]:
            return own
        overrides = {**request.palette_overrides, "mio": {**request.palette_overrides.get("mio", {}), **self.colours}}
        swapped = super().stream_clip(replace(request, palette_overrides=overrides))
        half = own.n_frames // 2
        frames = (mine if index < half else RenderedFrame(theirs.image, mine.face_boxes)
                  for index, (mine, theirs) in enumerate(zip(own.frames, swapped.frames)))
        return ClipStream(own.params, own.n_frames, frames)


def renderer_env(world, renderer):
    env = embedded_env(world.configs, world.storage)

    @contextmanager
    def session(_config, _references, _loras=()):
        yield renderer

    env.open_renderer = session
    return env


def render_scene(world, renderer) -> tuple[dict, dict]:
    """The scene's shots and the scene itself; (each shot's gate verdicts, the scene's)."""
    env = renderer_env(world, renderer)
    scene_ref = env.project.scenes[SCENE]
    shots = {}
    for key in scene_ref.shot_keys:
        manifest = run_step(ShotClip(), env.project.shots[key], env, force=True).manifest
        shots[key] = {r.name: r for r in SHOT_GATES.evaluate(manifest.scores, scene_ref.config.quality)}
    scene = run_step(SceneVideo(), scene_ref, env, force=True).manifest
    return shots, {r.name: r for r in SCENE_GATES.evaluate(scene, scene_ref.config.quality)}


@pytest.fixture
def one_attempt(characters):
    """The sample show with one render per shot (the swap is the same on every seed)."""
    path = characters.configs / "lantern_post.yaml"
    path.write_text(path.read_text() + "quality:\n  max_attempts: 1\n")
    return characters


def test_a_colour_swap_halfway_fails_shot_identity_and_scene_subject_consistency(one_attempt):
    hoshi = Project.load(one_attempt.configs).shows["lantern-post"].character("hoshi").appearance.key_colors
    swap = {"hair": hoshi.hair, "outfit": hoshi.outfit, "accent": hoshi.accent}
    shots, scene = render_scene(one_attempt, SwapHalfway(swap))
    identity = shots[SWAPPED_SHOT]["identity"]
    assert not identity.passed and identity.details["per_character"]["mio"] < identity.threshold
    assert scene["subject_consistency"].value < scene["subject_consistency"].threshold
    assert scene["subject_consistency"].backend.startswith("VBench subject consistency formula with the identity")

    shots, scene = render_scene(one_attempt, PrevizRenderer())
    assert all(gate.passed for gates in shots.values() for gate in gates.values()), shots
    assert scene["subject_consistency"].passed and scene["cast_identity"].passed, scene


def test_the_shows_look_picks_arcface_or_ccip(tmp_path):

    drawn = load_show(SAMPLE)
    photoreal = drawn.model_copy(update={"show": drawn.show.model_copy(
        update={"style": drawn.show.style.model_copy(update={"look": "photoreal"})})})
    suite = MetricSuite(empty_store(tmp_path), preloaded={"identity": "face pack"})
    assert show_identity_backend(suite, photoreal, RENDERED) == ArcFaceIdentity("face pack")
    assert show_identity_backend(suite, drawn, RENDERED) == PaletteIdentity()  # no CCIP placed: the fallback
    assert show_identity_backend(suite, photoreal, "previz (embedded, CPU)") == PaletteIdentity()


def test_ccip_anchors_and_identity_run_through_the_steps(characters, tmp_path):
    """With CCIP and an anime detector placed (tiny models the loaders read like the real ones),
    character_embedding makes a CCIP anchor, and a shot's identity is CCIP's, judged by the
    model's metrics.json threshold unless the show sets quality.identity.ccip."""
    pytest.importorskip("onnxruntime")
    from tests.tiny_models import tiny_anime_detector, tiny_ccip

    store = empty_store(tmp_path)
    tiny_ccip(store.ccip_dir, threshold=0.2)
    tiny_anime_detector(store.anime_detector_file, [(320, 200, 240, 240, 0.9)])
    suite = MetricSuite(store)
    project = Project.load(characters.configs)
    ref = project.characters["lantern-post/mio"]
    backend = show_identity_backend(suite, ref.config, RENDERED)
    assert isinstance(backend, CcipIdentity)

    paths = StoragePaths(characters.storage)
    sheet_dir, out = paths.reference(ref.key), tmp_path / "embedding"
    sheet = ReferenceManifest.require(sheet_dir, ref.key)
    manifest = compute_anchors(ref, sheet_dir, sheet, out, backend, None)
    assert manifest.rule.backend == "ccip" and manifest.rule.threshold(ref.config.quality) == pytest.approx(0.8)
    assert manifest.anchors["ccip"] == backend.backend and manifest.dimensions == 768
    anchor = load_anchor(out)
    assert anchor.ccip is not None and anchor.signature is not None and anchor.arcface is None

    panel = load_png(sheet_dir / f"{manifest.images[0]}.png")
    judged = still_identity(panel, None, anchor, backend)
    assert judged.backend == backend.backend and judged.rule == backend.rule
    assert judged.similarity == pytest.approx(manifest.similarities[manifest.images[0]], abs=1e-4)

    frames = [panel.copy() for _ in range(5)]
    scores = score_clip(frames, 24, [{} for _ in frames], {"mio": anchor}, suite, backend)
    assert scores.identity.backend == backend.backend and scores.identity.rule.backend == "ccip"
    strict = ref.config.quality.model_copy(update={"identity": IdentityThresholds(ccip=0.9999)})
    results = {r.name: r for r in SHOT_GATES.evaluate(scores, ref.config.quality)}
    assert results["identity"].threshold == pytest.approx(0.8)
    assert results["identity"].passed == (scores.identity.value >= 0.8)
    assert not {r.name: r for r in SHOT_GATES.evaluate(scores, strict)}["identity"].passed
