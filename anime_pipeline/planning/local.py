"""The local rule-based director: the embedded stand-in for Echo Brain / Ollama planning.

It refines shot prompts with the scene's time of day and mood. Deterministic and offline; always labelled as the local planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NAME = "local planner (embedded, rule-based)"

LIGHTING = {
    "dawn": "soft pink dawn light", "morning": "clear morning light", "noon": "bright overhead sun",
    "afternoon": "warm afternoon light", "dusk": "golden dusk light, long shadows", "evening": "warm evening glow",
    "night": "moonlight, lantern glow, deep blue shadows",
}
MOOD_STYLE = {
    "cosy": "warm palette", "curious": "inviting composition", "hushed": "muted tones", "hopeful": "soft bloom",
    "tense": "high contrast", "sad": "desaturated", "joyful": "vivid colours", "action": "motion blur accents",
}



@dataclass(frozen=True)
class Refinement:
    original: str
    refined: str
    style_additions: list[str] = field(default_factory=list)
    negative_additions: list[str] = field(default_factory=list)
    source: str = NAME
    path: list[str] = field(default_factory=lambda: [f"{NAME}: ok"])  # which director answered, and why


def refine_prompt(prompt: str, time_of_day: str = "", mood: str = "") -> Refinement:
    additions = [LIGHTING[time_of_day]] if time_of_day in LIGHTING else []
    additions += [MOOD_STYLE[m.strip()] for m in mood.split(",") if m.strip() in MOOD_STYLE]
    refined = ", ".join([prompt, *additions]) if additions else prompt
    return Refinement(prompt, refined, additions)


class LocalPlanner:
    name = NAME

    def refine_prompt(self, prompt: str, time_of_day: str = "", mood: str = "") -> Refinement:
        return refine_prompt(prompt, time_of_day, mood)

    def send_feedback(self, scores: object) -> bool:
        """The local planner learns nothing from scores; False says nothing was sent."""
        return False
