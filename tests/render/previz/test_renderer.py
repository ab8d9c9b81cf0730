"""Pixel-exact regression of the previz renderer: a fixed set of stills and clips (every framing,
every motion preset, every reference pose and expression, free-text poses and moods, humans with
each drawn feature and the fox, studio and world backdrops, outfits, palette overrides, continuity
from a given first frame) hashed with SHA-256 and compared with digests recorded from the renderer
before it was split into a package. Pixels, face boxes and params are hashed separately, so a
failure says which of them changed.

The digests depend on the numpy and Pillow builds (antialiasing, resampling). After an intended
change to the drawings, or a Pillow upgrade that moves pixels, re-record them with
`PYTHONPATH=$PWD python tests/render/previz/test_renderer.py` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from anime_pipeline.config import Project
from anime_pipeline.config.schema import Character
from anime_pipeline.render.base import (
    REFERENCE_EXPRESSIONS,
    REFERENCE_POSES,
    ClipRequest,
    StillRequest,
)
from anime_pipeline.render.previz import PrevizRenderer

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).with_name("previz_golden.json")
WORLD = ("#1b1f3b", "#3d3a6b", "#f2a65a", "#f7d488", "#8fb8de")
FRAMINGS = ("establishing", "wide", "action", "full_body", "medium", "portrait", "close-up", "extreme_close-up")
SHOT_TYPES = ("establishing", "wide", "medium", "close-up", "extreme_close-up", "action")


def _sample_cast() -> dict[str, Character]:
    show = Project.load(ROOT / "project_configs").shows["lantern-post"]
    mio, hoshi = show.character("mio"), show.character("hoshi")

    def variant(slug: str, features: list[str], base: Character = mio, **colors: str | None) -> Character:
        data = base.model_dump()
        data["slug"] = slug
        data["appearance"]["key_features"] = features
        data["appearance"]["key_colors"].update(colors)
        return Character.model_validate(data)

    return {
        "mio": mio,
        "hoshi": hoshi,
        # every other drawn feature, and an accent left to the renderer (derived from the eyes)
        "rin": variant("rin", ["long hair", "glasses", "scarf", "horns", "cat ears", "tail", "a silver locket"],
                       accent=None, hair="#2a2a4a"),
        "sora": variant("sora", ["ponytail", "beret", "backpack"], hair="#d05a7a", eyes="#3a7a3a"),
        "kei": variant("kei", [], hair="#1a1a1a", outfit="#a03030"),
        "hana": variant("hana", ["pointed ears", "bushy tail"], base=hoshi, skin="#d9823b", outfit="#3050a0"),  # collar
    }


CAST = _sample_cast()


def _still(names: str, **fields) -> StillRequest:
    base = dict(characters=tuple(CAST[n] for n in names.split()), prompt="a test", negative_prompt="", seed=7,
                width=128, height=192)
    return StillRequest(**{**base, **fields})


def _clip(names: str, shot_type: str, **fields) -> ClipRequest:
    base = dict(characters=tuple(CAST[n] for n in names.split()), shot_type=shot_type, prompt="a test",
                motion_prompt="", negative_prompt="", seed=11, width=192, height=108, fps=12, n_frames=36,
                background=WORLD)
    return ClipRequest(**{**base, **fields})


def _stills() -> dict[str, StillRequest]:
    cases = {}
    for framing in FRAMINGS:
        cases[f"still/{framing}/world"] = _still("mio hoshi", framing=framing, background=WORLD, width=192, height=128)
    for framing in ("full_body", "portrait", "close-up"):
        cases[f"still/{framing}/studio"] = _still("mio hoshi", framing=framing, width=192, height=128)
    for name in "mio hoshi rin sora kei hana".split():
        for pose in REFERENCE_POSES:
            cases[f"still/pose/{name}/{pose}"] = _still(name, pose=pose)
        for expression in REFERENCE_EXPRESSIONS:
            cases[f"still/expression/{name}/{expression}"] = _still(name, framing="portrait", expression=expression,
                                                                     width=160, height=160)
    for pose, expression in (("running through the rain", "shy smile"), ("curled up asleep", "sleepy"),
                             ("looking away", "determined"), ("holding a letter", "puzzled")):
        for name in ("mio", "hoshi"):
            cases[f"still/free/{name}/{pose}/{expression}"] = _still(name, pose=pose, expression=expression)
    cases["still/outfit/mio"] = _still("mio", outfit="rain cape")
    cases["still/palette/cast"] = _still("mio hoshi", framing="wide", width=192, height=128, background=WORLD,
                                         palette_overrides={"mio": {"hair": "#ff2020", "accent": "#20ff20"},
                                                            "hoshi": {"eyes": "#aa00aa"}})
    cases["still/prompt-changes-layout"] = _still("mio hoshi", framing="wide", width=192, height=128,
                                                  background=WORLD, prompt="another prompt")
    cases["still/empty"] = _still("", framing="wide", background=WORLD)
    cases["still/trio"] = _still("mio rin sora", framing="medium", width=256, height=128, seed=3)
    # the settings previz honours: lighting words, few steps (soft), developed exposure and contrast
    cases["still/low-key"] = _still("mio", background=WORLD, prompt="a test, low-key lighting")
    cases["still/few-steps"] = _still("mio", background=WORLD, steps=6)
    cases["still/developed"] = _still("mio", background=WORLD, exposure=0.5, contrast=1.3, cfg=9.0)
    return cases


def _clips() -> dict[str, ClipRequest]:
    cases = {}
    for shot_type in SHOT_TYPES:
        cases[f"clip/{shot_type}/duo"] = _clip("mio hoshi", shot_type)
    cases["clip/close-up/mio"] = _clip("mio", "close-up", width=256, height=144)
    cases["clip/action/hoshi"] = _clip("hoshi", "action", seed=12)  # the other running direction
    cases["clip/medium/trio"] = _clip("mio rin sora", "medium", n_frames=18)
    cases["clip/medium/studio"] = _clip("mio hoshi", "medium", background=(), n_frames=12)
    cases["clip/establishing/default-town"] = _clip("mio", "establishing", background=(), n_frames=12)
    cases["clip/wide/palette"] = _clip("mio hoshi", "wide", n_frames=12,
                                       palette_overrides={"mio": {"outfit": "#883300"}})
    cases["clip/empty"] = _clip("", "wide", n_frames=6)
    cases["clip/low-key/few-steps"] = _clip("mio", "medium", n_frames=6, prompt="a test, low-key lighting", steps=8)
    return cases


def _continuity_clips(renderer: PrevizRenderer) -> dict[str, ClipRequest]:
    last = renderer.render_clip(_clip("mio hoshi", "medium", n_frames=12)).frames[-1]
    gray = last.mean(axis=2).astype(np.uint8)
    return {
        "clip/continuity/same-size": _clip("mio hoshi", "close-up", n_frames=12, first_frame=last),
        "clip/continuity/resized": _clip("mio hoshi", "wide", n_frames=8, width=160, height=90, first_frame=last),
        "clip/continuity/gray": _clip("mio", "medium", n_frames=8, first_frame=gray),
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pixels(frames: list[np.ndarray]) -> str:
    return _sha(b"".join(repr((f.shape, f.dtype.str)).encode() + f.tobytes() for f in frames))


def _meta(boxes, params) -> str:
    return _sha(json.dumps({"boxes": boxes, "params": params}, sort_keys=True, default=list).encode())


def digests() -> dict[str, dict[str, str]]:
    renderer = PrevizRenderer()
    found = {}
    for name, request in _stills().items():
        result = renderer.render_still(request)
        found[name] = {"pixels": _pixels([result.image]), "meta": _meta(result.face_boxes, result.params)}
    for name, request in {**_clips(), **_continuity_clips(renderer)}.items():
        result = renderer.render_clip(request)
        found[name] = {"pixels": _pixels(result.frames), "meta": _meta(result.face_boxes, result.params)}
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, str]]:
    return digests()


def test_the_same_cases_are_recorded(rendered):
    assert sorted(rendered) == sorted(json.loads(GOLDEN.read_text()))


@pytest.mark.parametrize("part", ["pixels", "meta"])
def test_previz_output_matches_the_recorded_digests(rendered, part):
    golden = json.loads(GOLDEN.read_text())
    changed = sorted(name for name in golden if rendered.get(name, {}).get(part) != golden[name][part])
    assert not changed, f"{len(changed)} of {len(golden)} previz cases changed their {part}: {changed}"


def test_the_cases_differ_from_each_other(rendered):
    """Guards the table itself: a case that renders what another does adds no coverage."""
    pixels: Callable[[str], str] = lambda name: rendered[name]["pixels"]
    assert len({pixels(name) for name in rendered}) == len(rendered)


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(digests(), indent=1, sort_keys=True) + "\n")
    print(f"recorded {GOLDEN}")
