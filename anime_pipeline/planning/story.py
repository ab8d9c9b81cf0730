"""Story to shots: a show's storyline, world and characters → a proposed episode breakdown.

The result is a whole show file (the user's show, world, characters and settings plus one
proposed new episode) that validates against the schema, for the user to review and merge
into project_configs/. Shot lists come from Echo Brain's scene planner, else from Ollama, else
from the local coverage pattern; `path` records which was used and why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from anime_pipeline.config.loader import parse_show
from anime_pipeline.config.schema import MOTION_PRESETS, ShowConfig
from anime_pipeline.services.echo_brain import EchoBrainClient, EchoBrainError
from anime_pipeline.services.ollama import OllamaClient, OllamaError

MAX_SCENES = 4
SENTENCES_PER_SCENE = 2
MOTION = {"establishing": "slow pan across the scene", "wide": "slow zoom in", "medium": "gentle breathing, blink",
          "close-up": "slow push in, blink", "extreme_close-up": "very slow zoom, blink",
          "action": "fast movement, camera shake"}
ANGLE_WORDS = (("extreme", "extreme_close-up"), ("establish", "establishing"), ("close", "close-up"),
               ("action", "action"), ("wide", "wide"), ("medium", "medium"))


@dataclass
class PlannedShot:
    type: str
    duration: float
    characters: list[str]
    dialogue: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Breakdown:
    text: str  # the proposed show file, YAML
    config: ShowConfig  # the same, validated
    path: list[str]  # which planner produced each scene's shots, and why others were skipped


def split_scenes(storyline: str) -> list[str]:
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(storyline.split())) if s.strip()]
    scenes = [" ".join(sentences[i:i + SENTENCES_PER_SCENE]) for i in range(0, len(sentences), SENTENCES_PER_SCENE)]
    return scenes[:MAX_SCENES]


def mentioned(config: ShowConfig, text: str) -> list[str]:
    lowered = text.lower()
    found = [c.slug for c in config.characters
             if c.slug in lowered or any(part.lower() in lowered for part in c.name.split())]
    return found or [c.slug for c in config.characters]


def shot_type(camera_angle: str) -> str:
    angle = camera_angle.lower()
    return next((preset for word, preset in ANGLE_WORDS if word in angle), "medium")


def local_shots(scene_text: str, characters: list[str]) -> list[PlannedShot]:
    """Conventional coverage: establish, then medium on each character, a close-up, and action if the text moves."""
    shots = [PlannedShot("establishing", 3.0, characters)]
    shots += [PlannedShot("medium", 2.5, [slug]) for slug in characters[:2]]
    shots.append(PlannedShot("close-up", 2.0, characters[:1]))
    if any(word in scene_text.lower() for word in ("run", "chase", "leap", "follow", "fight", "jump")):
        shots.append(PlannedShot("action", 2.0, characters))
    return shots


class StoryPlanner:
    def __init__(self, echo: EchoBrainClient | None = None, ollama: OllamaClient | None = None,
                 ollama_model: str = "gemma3"):
        self.echo, self.ollama, self.ollama_model = echo, ollama, ollama_model

    def plan(self, config: ShowConfig, scene_text: str, characters: list[str]) -> tuple[list[PlannedShot], list[str]]:
        path: list[str] = []
        attempts: list[tuple[str, object, Callable[[], list[PlannedShot]]]] = [
            ("echo_brain", self.echo, lambda: self._from_echo(config, scene_text, characters)),
            ("ollama", self.ollama, lambda: self._from_ollama(config, scene_text, characters)),
        ]
        for label, client, ask in attempts:
            if client is None:
                path.append(f"{label}: not configured")
                continue
            try:
                shots = ask()
            except (EchoBrainError, OllamaError) as exc:
                path.append(f"{label}: {type(exc).__name__} ({exc})")
                continue
            if shots:
                return shots, [*path, f"{label}: ok"]
            path.append(f"{label}: no shots returned")
        return local_shots(scene_text, characters), [*path, "local: ok"]

    def _from_echo(self, config: ShowConfig, scene_text: str, characters: list[str]) -> list[PlannedShot]:
        plan = self.echo.plan_scene(config.show.slug, scene_text, characters)
        return [PlannedShot(shot_type(s.camera_angle), s.duration, characters) for s in plan.shot_list]

    def _from_ollama(self, config: ShowConfig, scene_text: str, characters: list[str]) -> list[PlannedShot]:
        schema = _ollama_schema(characters)
        names = ", ".join(f"{c.slug} ({c.name})" for c in config.characters if c.slug in characters)
        question = (f"Scene: {scene_text}\nCharacters (use these slugs): {names}\nBreak the scene into 3-6 anime "
                    f"shots. type is one of {list(MOTION_PRESETS)}; duration 1.5-6 seconds; at most two short "
                    "dialogue lines per shot, spoken by characters in the shot.")
        answer = self.ollama.chat_json(self.ollama_model, [{"role": "user", "content": question}], schema)
        return [PlannedShot(s["type"], float(s["duration"]), s["characters"] or characters,
                            [{"speaker": d["speaker"], "line": d["line"]} for d in s["dialogue"]
                             if d["speaker"] in (s["characters"] or characters)])
                for s in answer["shots"]]


def _ollama_schema(characters: list[str]) -> dict[str, Any]:
    slug = {"type": "string", "enum": characters}
    line = {"type": "object", "properties": {"speaker": slug, "line": {"type": "string", "minLength": 1}},
            "required": ["speaker", "line"], "additionalProperties": False}
    shot = {"type": "object", "additionalProperties": False, "required": ["type", "duration", "characters", "dialogue"],
            "properties": {"type": {"type": "string", "enum": list(MOTION_PRESETS)},
                           "duration": {"type": "number", "minimum": 1, "maximum": 30},
                           "characters": {"type": "array", "items": slug},
                           "dialogue": {"type": "array", "items": line}}}
    return {"type": "object", "properties": {"shots": {"type": "array", "items": shot}}, "required": ["shots"],
            "additionalProperties": False}


def propose(config: ShowConfig, planner: StoryPlanner) -> Breakdown:
    """A new episode planned from the storyline, appended to a copy of the show file's data."""
    if not config.show.storyline.strip():
        raise ValueError(f"show {config.show.slug!r} has no storyline to plan from (show.storyline)")
    number = max(e.number for e in config.episodes) + 1
    scenes, path = [], []
    for index, text in enumerate(split_scenes(config.show.storyline), start=1):
        characters = mentioned(config, text)
        shots, scene_path = planner.plan(config, text, characters)
        path.append(f"scene {index}: {' → '.join(scene_path)}")
        scenes.append({"slug": f"sc{index:02d}", "title": text.split(",")[0][:60], "location": "",
                       "time_of_day": "", "mood": "", "shots": [_shot(i, s, text) for i, s in enumerate(shots, 1)]})
    data = config.model_dump(mode="json", exclude_none=True)
    data["episodes"] = [*data["episodes"], {"slug": f"ep{number:02d}", "number": number,
                                            "title": f"Episode {number} (proposed)",
                                            "synopsis": config.show.storyline.strip(), "scenes": scenes}]
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    return Breakdown(text, parse_show(text, f"proposal for {config.show.slug}"), path)


def _shot(index: int, shot: PlannedShot, scene_text: str) -> dict[str, Any]:
    return {"slug": f"sh{index:02d}", "type": shot.type, "characters": shot.characters,
            "prompt": scene_text[:200], "motion_prompt": MOTION[shot.type],
            "duration": round(min(max(shot.duration, 1.0), 30.0), 2), "dialogue": shot.dialogue}
