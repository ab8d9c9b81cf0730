from anime_pipeline.config import parse_show
from anime_pipeline.prompts import (
    NON_HUMAN_NEGATIVES,
    caption,
    character_negatives,
    negative_prompt,
    shot_prompt,
    still_prompt,
)


def test_non_human_negatives_and_common_errors(sample_text):
    show = parse_show(sample_text)
    mio, hoshi = show.characters
    assert character_negatives(mio) == ["long hair", "green eyes", "missing satchel"]
    assert character_negatives(hoshi)[:len(NON_HUMAN_NEGATIVES)] == list(NON_HUMAN_NEGATIVES)
    assert "two tails" in character_negatives(hoshi)
    negative = negative_prompt(show.show.style, [mio, hoshi])
    assert negative.startswith("lowres, bad anatomy")
    assert negative.count("human face") == 1 and "missing satchel" in negative


def test_prompt_order_and_deduplication(sample_text):
    show = parse_show(sample_text)
    mio = show.characters[0]
    prompt = still_prompt(show.show.style, mio, "portrait", "rain cape", "smiling", "standing")
    parts = prompt.split(", ")
    assert parts[:4] == ["anime", "cel shading", "soft evening light", "detailed background"]
    assert "portrait" in parts and "rain cape" in parts and "smiling expression" in parts
    assert len(parts) == len(set(parts))
    shot = shot_prompt(show.show.style, [mio, mio], "close-up", "Mio under a lantern")
    assert shot.split(", ").count("1girl") == 1 and "close-up" in shot


def test_caption_starts_with_the_trigger_word(sample_text):
    mio = parse_show(sample_text).characters[0]
    assert caption(mio, "courier jacket", "determined", "running").startswith("mio, 1girl")
