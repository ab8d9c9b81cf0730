"""The local rule-based director: the embedded stand-in for Echo Brain / Ollama, and the last hop
of every fallback chain.

It refines shot prompts with the scene's time of day and mood and plans a scene with
conventional coverage. Deterministic and offline; always labelled as the local planner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.planning.plans import PlannedScene, PlannedShot, Refinement

NAME = "local planner (embedded, rule-based)"
LABEL = "local"  # its entry in a director path

LIGHTING = {
    "dawn": "soft pink dawn light", "morning": "clear morning light", "noon": "bright overhead sun",
    "afternoon": "warm afternoon light", "dusk": "golden dusk light, long shadows", "evening": "warm evening glow",
    "night": "moonlight, lantern glow, deep blue shadows",
}
MOOD_STYLE = {
    "cosy": "warm palette", "curious": "inviting composition", "hushed": "muted tones", "hopeful": "soft bloom",
    "tense": "high contrast", "sad": "desaturated", "joyful": "vivid colours", "action": "motion blur accents",
}
ACTION_WORDS = ("run", "chase", "leap", "follow", "fight", "jump")


class LocalPlanner:
    """A Director that needs nothing and never fails."""

    name = NAME

    def refine_prompt(self, prompt: str, time_of_day: str = "", mood: str = "") -> Refinement:
        additions = [LIGHTING[time_of_day]] if time_of_day in LIGHTING else []
        additions += [MOOD_STYLE[m.strip()] for m in mood.split(",") if m.strip() in MOOD_STYLE]
        refined = ", ".join([prompt, *additions]) if additions else prompt
        return Refinement(prompt, refined, tuple(additions), (), NAME, (f"{LABEL}: ok",))

    def plan_scene(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene:
        """Conventional coverage: establish, then medium on each of the first two characters, a
        close-up, and action when the text moves."""
        cast = tuple(characters)
        shots = [PlannedShot("establishing", 3.0, cast)]
        shots += [PlannedShot("medium", 2.5, (slug,)) for slug in cast[:2]]
        shots.append(PlannedShot("close-up", 2.0, cast[:1]))
        if any(word in scene_text.lower() for word in ACTION_WORDS):
            shots.append(PlannedShot("action", 2.0, cast))
        return PlannedScene(tuple(shots), NAME, (f"{LABEL}: ok",))

    def send_feedback(self, scores: Mapping[str, Any]) -> bool:
        """The local planner learns nothing from scores; False says nothing was sent."""
        return False
