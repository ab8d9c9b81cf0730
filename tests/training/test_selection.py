"""The best epoch by identity over fixed validation renders, every epoch's scores kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.config.schema import Character, Style
from anime_pipeline.training.base import CancelToken, EpochCheckpoint, ValidationPrompt
from anime_pipeline.training.errors import TrainingCancelled, TrainingError
from anime_pipeline.training.selection import RULE, pick_best_epoch, validation_prompts

MIO = Character.model_validate({
    "slug": "mio", "name": "Mio", "design_prompt": "1girl, courier",
    "appearance": {"key_colors": {"hair": "#7a4a2a", "skin": "#f3d3bd", "eyes": "#d08a1e", "outfit": "#24305e"}},
    "variations": {"outfits": ["courier jacket", "raincoat"], "expressions": ["neutral", "smiling", "angry"],
                   "poses": ["standing"]},
})
EPOCHS = tuple(EpochCheckpoint(e, 10 * e, Path(f"/w/mio-e{e:03d}.safetensors")) for e in (1, 2, 3, 4))


def prompts(count: int = 3) -> tuple[ValidationPrompt, ...]:
    return validation_prompts(Style(), MIO, count, seed=100)


def test_prompts_spread_over_the_variations_with_fixed_seeds_and_the_trigger():
    chosen = prompts(3)
    assert [p.variation for p in chosen] == [("courier jacket", "neutral", "standing"),
                                             ("courier jacket", "angry", "standing"), ("raincoat", "smiling", "standing")]
    assert [p.seed for p in chosen] == [100, 101, 102] and all(p.prompt.startswith("mio, ") for p in chosen)
    assert "raincoat" in chosen[2].prompt and "smiling expression" in chosen[2].prompt
    assert (chosen[0].width, chosen[0].height) == Style().resolution and "lowres" in chosen[0].negative
    assert prompts(3) == chosen  # the same prompts for every epoch and every run
    assert len(prompts(8)) == 8  # more prompts than combinations repeat them with new seeds


def test_the_epoch_with_the_best_mean_identity_wins_and_all_are_recorded():
    table = {1: [0.5, 0.6, 0.55], 2: [0.8, 0.7, 0.75], 3: [0.78, 0.74, 0.72], 4: [0.6, 0.62, 0.61]}
    seen = []

    def score(epoch: EpochCheckpoint, asked) -> list[float]:
        seen.append((epoch.epoch, tuple(p.seed for p in asked)))
        return table[epoch.epoch]

    selection = pick_best_epoch(EPOCHS, prompts(), score, "ccip (test)")
    assert selection.chosen.epoch == 2 and selection.rule == RULE and selection.identity_backend == "ccip (test)"
    assert [(s.epoch, s.scores) for s in selection.scores] == [(e, tuple(v)) for e, v in table.items()]
    assert seen == [(e, (100, 101, 102)) for e in (1, 2, 3, 4)]
    assert selection.score(3).minimum == 0.72 and selection.overhead_s >= 0


def test_ties_go_to_the_better_worst_render_then_to_the_earlier_epoch():
    table = {1: [0.7, 0.7, 0.7], 2: [0.9, 0.5, 0.7], 3: [0.7, 0.7, 0.7], 4: [0.1, 0.1, 0.1]}
    assert pick_best_epoch(EPOCHS, prompts(), lambda e, _: table[e.epoch], "x").chosen.epoch == 1


@pytest.mark.parametrize("answer, message", [
    ([0.5, 0.5], "returned 2 identity value(s) for 3 validation prompt(s)"),
    ([0.5, float("nan"), 0.5], "validation prompt 1 (seed 101) is nan"),
    ([0.5, None, 0.5], "is None, not a finite number"),
])
def test_a_bad_score_names_the_epoch_and_prompt(answer, message):
    with pytest.raises(TrainingError) as caught:
        pick_best_epoch(EPOCHS, prompts(), lambda e, _: answer, "x")
    assert "epoch 1" in str(caught.value) and message in str(caught.value)


def test_cancel_stops_between_epochs_and_nothing_to_choose_from_is_an_error():
    token = CancelToken()

    def score(epoch, asked):
        token.cancel()
        return [0.5] * len(asked)

    with pytest.raises(TrainingCancelled, match="scoring epoch 2"):
        pick_best_epoch(EPOCHS, prompts(), score, "x", cancel=token)
    with pytest.raises(TrainingError, match="got 0 epoch"):
        pick_best_epoch((), prompts(), score, "x")
