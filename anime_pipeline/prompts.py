"""Prompt building: style tags + character design + variation + shot framing, and per-character negatives."""

from __future__ import annotations

from collections.abc import Sequence

from anime_pipeline.config.schema import Character, Style

FRAMING = {
    "establishing": "establishing shot, very wide, small figures, detailed environment",
    "wide": "wide shot, full body",
    "medium": "medium shot, waist up",
    "close-up": "close-up, head and shoulders",
    "extreme_close-up": "extreme close-up, face detail",
    "action": "dynamic action shot, full body, motion lines",
    "full_body": "full body, character reference, plain background",
    "portrait": "portrait, upper body, character reference, plain background",
}

# SPEC §7: a species marked "NOT human" gets these negatives, plus the character's common errors.
NON_HUMAN_NEGATIVES = ("human", "human face", "human skin", "realistic person", "humanoid body", "human proportions")


def _join(parts: Sequence[str]) -> str:
    seen: list[str] = []
    for part in parts:
        for token in (t.strip() for t in part.split(",")):
            if token and token not in seen:
                seen.append(token)
    return ", ".join(seen)


def character_negatives(character: Character) -> list[str]:
    negatives = list(character.appearance.common_errors)
    if "not human" in character.appearance.species.lower():
        negatives = [*NON_HUMAN_NEGATIVES, *negatives]
    return negatives


def negative_prompt(style: Style, characters: Sequence[Character]) -> str:
    return _join([style.negative_prompt, *(", ".join(character_negatives(c)) for c in characters)])


def character_prompt(character: Character, outfit: str = "", expression: str = "", pose: str = "") -> str:
    variation = [v for v in (outfit, f"{expression} expression" if expression else "", pose) if v]
    return _join([character.design_prompt, *variation])


def still_prompt(style: Style, character: Character, framing: str, outfit: str = "", expression: str = "", pose: str = "") -> str:
    return _join([*style.style_tags, FRAMING.get(framing, framing), character_prompt(character, outfit, expression, pose)])


def shot_prompt(style: Style, characters: Sequence[Character], shot_type: str, prompt: str, art_direction: str = "") -> str:
    parts = [*style.style_tags, FRAMING[shot_type], prompt]
    parts += [character_prompt(c) for c in characters]
    if art_direction:
        parts.append(art_direction)
    return _join(parts)


def extended(prompt: str, additions: Sequence[str]) -> str:
    """A prompt with words added (a fix the dataset learner chose), each once."""
    return _join([prompt, *additions])


def caption(character: Character, outfit: str, expression: str, pose: str) -> str:
    """Training caption: trigger word first (the slug), then the variation — kohya's convention."""
    return _join([character.slug, character.design_prompt, outfit, f"{expression} expression", pose])


def with_trigger_words(prompt: str, triggers: Sequence[str]) -> str:
    """The prompt led by the trigger words of the LoRAs a render loads (each character's slug, first
    in every caption it was trained on), those it does not hold already; unchanged without LoRAs."""
    present = {token.strip() for token in prompt.split(",")}
    missing = [t for t in dict.fromkeys(triggers) if t not in present]
    return ", ".join([*missing, prompt]) if missing else prompt
