"""The reviewer role: both reviewers fill the Protocol, and share one score formula and one
near-duplicate rule."""

from __future__ import annotations

import inspect
from typing import get_args

import numpy as np
import pytest

from anime_pipeline.config.schema import Backends, ReviewThresholds
from anime_pipeline.review.base import Reviewer, combined_score, duplicate_rejection
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.review.vision import OllamaVisionReviewer, checklist_items
from anime_pipeline.services.ollama import OllamaClient
from tests.review.test_heuristic_review import MIO, draw
from tests.services.fake_ollama import FakeOllama

ROLE_ATTRIBUTES = ("name", "backend", "device")


def reviewers(client: OllamaClient) -> list[Reviewer]:
    return [HeuristicReviewer(), OllamaVisionReviewer(client, "gemma3", device="1")]


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


def test_each_reviewer_fills_the_protocol(ollama):
    role = inspect.signature(Reviewer.review)
    for reviewer in reviewers(OllamaClient(ollama.url)):
        assert inspect.signature(type(reviewer).review) == role, type(reviewer).__name__
        assert all(isinstance(getattr(reviewer, attribute), str) for attribute in ROLE_ATTRIBUTES)
    heuristic, vision = reviewers(OllamaClient(ollama.url))
    assert (heuristic.backend, heuristic.device) == ("heuristic", "cpu")
    assert (vision.backend, vision.device, vision.name) == ("ollama", "1", "ollama vision (gemma3)")


def test_each_backend_the_show_file_offers_has_a_reviewer(ollama):
    offered = set(get_args(Backends.model_fields["reviewer"].annotation))
    assert {reviewer.backend for reviewer in reviewers(OllamaClient(ollama.url))} == offered


def test_combined_score_weights_the_measures_and_scales_by_the_checks_passed():
    assert combined_score(1.0, 0.5, 0.0, [True, True]) == pytest.approx(0.65)
    assert combined_score(1.0, 1.0, 1.0, [True, False, True, False]) == pytest.approx(0.5)
    assert combined_score(0.8, 0.8, 0.8, []) == pytest.approx(0.8)  # nothing checkable: no penalty


def test_duplicate_rejection_names_each_near_duplicate_and_its_similarity():
    image = draw(MIO)
    other = np.full_like(image, 40)
    assert duplicate_rejection(image, [other], 0.97) is None
    reason = duplicate_rejection(image, [other, image.copy(), image.copy()], 0.97)
    assert reason == "near-duplicate of others[1] (SSIM 1.000 ≥ 0.97), others[2] (SSIM 1.000 ≥ 0.97)"


def test_both_reviewers_reject_a_near_duplicate_with_the_same_reason(ollama):
    image = draw(MIO)
    ollama.answer({"character_match": 1.0, "clarity": 1.0, "completeness": 1.0, "training_value": 10, "solo": True,
                   "feature_checklist": {item: True for item in checklist_items(MIO.appearance)}, "notes": []})
    verdicts = [reviewer.review(image, MIO, None, None, [image.copy()], ReviewThresholds(), 0.97)
                for reviewer in reviewers(OllamaClient(ollama.url))]
    assert [v.decision for v in verdicts] == ["reject", "reject"]
    assert [v.training_value for v in verdicts] == [0.0, 0.0]
    assert verdicts[0].reasons[-1] == verdicts[1].reasons[-1] == duplicate_rejection(image, [image], 0.97)
