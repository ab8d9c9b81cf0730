"""Story to shots: a show's storyline, world and characters → a proposed episode breakdown.

The result is a whole show file (the user's show, world, characters and settings plus one
proposed new episode) that validates against the schema, for the user to review and merge
into project_configs/. Shot lists come from the show's director (planning.director: Echo
Brain, else Ollama, else the local coverage pattern); `path` records, per scene, which backend
planned it and why the ones before it did not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from anime_pipeline.config.loader import parse_show
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.planning.director import Director
from anime_pipeline.planning.plans import PlannedShot

MAX_SCENES = 4
SENTENCES_PER_SCENE = 2
MOTION = {"establishing": "slow pan across the scene", "wide": "slow zoom in", "medium": "gentle breathing, blink",
          "close-up": "slow push in, blink", "extreme_close-up": "very slow zoom, blink",
          "action": "fast movement, camera shake"}


@dataclass(frozen=True)
class Breakdown:
    text: str  # the proposed show file, YAML
    config: ShowConfig  # the same, validated
    path: tuple[str, ...]  # per scene, which backend planned its shots, and why the ones before it did not


def split_scenes(storyline: str) -> list[str]:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(storyline.split())) if s.strip()]
    scenes = [" ".join(sentences[i:i + SENTENCES_PER_SCENE]) for i in range(0, len(sentences), SENTENCES_PER_SCENE)]
    return scenes[:MAX_SCENES]


def mentioned(config: ShowConfig, text: str) -> list[str]:
    lowered = text.lower()
    found = [c.slug for c in config.characters
             if c.slug in lowered or any(part.lower() in lowered for part in c.name.split())]
    return found or [c.slug for c in config.characters]


def propose(config: ShowConfig, director: Director) -> Breakdown:
    """A new episode planned from the storyline, appended to a copy of the show file's data."""
    if not config.show.storyline.strip():
        raise ValueError(f"show {config.show.slug!r} has no storyline to plan from (show.storyline)")
    number = max(e.number for e in config.episodes) + 1
    scenes, path = [], []
    for index, text in enumerate(split_scenes(config.show.storyline), start=1):
        plan = director.plan_scene(config, text, mentioned(config, text))
        path.append(f"scene {index}: {' → '.join(plan.path)}")
        shots = [_shot(i, shot, text) for i, shot in enumerate(plan.shots, start=1)]
        scenes.append({"slug": f"sc{index:02d}", "title": text.split(",")[0][:60], "location": "",
                       "time_of_day": "", "mood": "", "shots": shots})
    data = config.model_dump(mode="json", exclude_none=True)
    data["episodes"] = [*data["episodes"], {"slug": f"ep{number:02d}", "number": number,
                                            "title": f"Episode {number} (proposed)",
                                            "synopsis": config.show.storyline.strip(), "scenes": scenes}]
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    return Breakdown(text, parse_show(text, f"proposal for {config.show.slug}"), tuple(path))


def _shot(index: int, shot: PlannedShot, scene_text: str) -> dict[str, Any]:
    return {"slug": f"sh{index:02d}", "type": shot.type, "characters": list(shot.characters),
            "prompt": scene_text[:200], "motion_prompt": MOTION[shot.type],
            "duration": round(min(max(shot.duration, 1.0), 30.0), 2),
            "dialogue": [{"speaker": d.speaker, "line": d.line} for d in shot.dialogue]}
