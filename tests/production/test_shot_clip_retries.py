"""The shot asset's retry loop decides with its blocking gates: a clip they reject is rendered
again with a new seed and more steps, the best attempt is kept, every attempt is recorded and
the gate it cannot pass fails the asset. The renderers here stand in for a broken video model:
the previz renderer's shot frozen on its first frame (a still), or noise, whatever the seed."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.config import Project
from anime_pipeline.definitions import build_assets, build_resources
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.shot_clip import STEPS_PER_RETRY, ShotManifest
from anime_pipeline.render.base import ClipRequest, ClipStream, RenderedFrame
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.resources import RendererResource

SHOT = "lantern-post/ep01/sc01/sh02"  # a medium shot of mio, no continuity


class FrozenRenderer(PrevizRenderer):
    """Renders the shot, then holds its first frame for the whole clip."""

    def stream_clip(self, request: ClipRequest) -> ClipStream:
        clip = super().stream_clip(request)
        first = next(clip.frames)
        return ClipStream(clip.params, clip.n_frames, (first for _ in range(clip.n_frames)))


class NoiseRenderer(PrevizRenderer):
    """Uniform noise frames, a new pattern every frame, seeded by the request."""

    def stream_clip(self, request: ClipRequest) -> ClipStream:
        rng = np.random.default_rng(request.seed)
        frames = (RenderedFrame(rng.integers(0, 256, (request.height, request.width, 3), dtype=np.uint8), {})
                  for _ in range(request.n_frames))
        return ClipStream({"stand-in": "noise"}, request.n_frames, frames)


class StandInRenderer(RendererResource):
    kind: str

    @contextmanager
    def session(self, context, config, references: Mapping[str, Path] | None = None,
                loras=(), on=None) -> Iterator[PrevizRenderer]:
        yield {"frozen": FrozenRenderer, "noise": NoiseRenderer, "previz": PrevizRenderer}[self.kind]()


def materialize_shot(world, kind: str) -> tuple[dg.ExecuteInProcessResult, ShotManifest]:
    settings = world.settings()
    key = asset_key("shot_clip", SHOT)
    shot = next(a for a in build_assets(Project.load(world.configs), settings) if key in a.keys)
    resources = {**build_resources(settings), "renderer": StandInRenderer(kind=kind)}
    with world.instance() as instance:
        result = dg.materialize([shot], instance=instance, resources=resources, raise_on_error=False)
    manifest = ShotManifest.load(StoragePaths(world.storage).shot(SHOT))
    assert manifest is not None
    return result, manifest


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("kind, failing", [("frozen", {"not_a_still"}),
                                           ("noise", {"not_a_still", "temporal_stability", "identity"})])
def test_a_clip_the_gates_reject_is_retried_then_fails_its_gate(characters, kind, failing):
    result, manifest = materialize_shot(characters, kind)
    attempts = manifest.attempts
    assert len(attempts) == 3  # quality.max_attempts: every attempt failed a blocking gate
    assert not any(a.passed for a in attempts)
    for attempt in attempts:
        failed = {g.name for g in attempt.gates if not g.passed}
        assert failing <= failed, (attempt.attempt, failed)
    assert len({a.seed for a in attempts}) == 3
    assert [a.steps - attempts[0].steps for a in attempts] == [0, STEPS_PER_RETRY, 2 * STEPS_PER_RETRY]
    verdicts = checks(result)
    assert {name for name, passed in verdicts.items() if not passed} >= failing
    assert not result.success  # a failed blocking check fails the asset, so nothing downstream runs on it
    # each attempt streamed into its own folder; only the kept one's frames and clip remain, in place
    shot_dir = StoragePaths(characters.storage).shot(SHOT)
    assert sorted(p.name for p in shot_dir.iterdir()) == ["clip.mp4", "frames", "manifest.json"]
    assert len(list((shot_dir / "frames").iterdir())) == manifest.frames == attempts[0].request.n_frames


def test_a_clip_that_passes_is_rendered_once(characters):
    result, manifest = materialize_shot(characters, "previz")
    assert result.success and len(manifest.attempts) == 1 and manifest.attempts[0].passed
    assert all(checks(result).values()) and set(checks(result)) == {g.name for g in manifest.attempts[0].gates}
