"""Every adversarial clip through the gates' real measures, each decided by its gate's one rule
(a threshold and a direction shared by all clips, never tuned per clip)."""

from __future__ import annotations

import pytest

from anime_pipeline.metrics.suite import MetricSuite
from tests.metrics.adversarial_clips import BUILDERS, all_clips, measure, rules
from tests.worlds import empty_store


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    suite = MetricSuite(empty_store(tmp_path_factory.mktemp("no-weights")))
    return {clip.name: measure(clip, suite) for clip in all_clips()}


@pytest.mark.parametrize("index", range(len(BUILDERS)), ids=lambda i: BUILDERS[i].__name__.strip("_"))
def test_every_gate_decides_as_the_clip_deserves(measured, index):
    clip = all_clips()[index]
    values, gate_rules = measured[clip.name], rules()
    decided = {name: gate_rules[name].passes(values[name]) for name in clip.expect}
    wrong = {name: round(values[name], 4) for name, expected in clip.expect.items() if decided[name] != expected}
    assert not wrong, f"{clip.name}: decided against expectation {clip.expect} with {wrong}"


def test_every_case_of_the_issue_is_in_the_suite():
    names = " | ".join(clip.name for clip in all_clips())
    for case in ("still", "noisy still", "1-px loop", "2-frame loop", "pan 1 px/frame at 360x640", "pan 4 px/frame",
                 "pan 16 px/frame at 256x256", "zoom", "single white flash", "alternating flash", "dropped frame",
                 "duplicated frame", "jump cut", "fade to black", "random noise", "colours swapped halfway",
                 "slow drift 0.5 px/frame at 360x640"):
        assert case in names
