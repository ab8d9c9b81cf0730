"""The director role (SPEC §4, §8): prompt refinement, scene planning and learning from scores.

`Director` is what the production steps use; `LocalPlanner` is the embedded one, and
`DirectorChain` asks Echo Brain, else Ollama, else the local planner, for prompts and for scene
plans alike. A hop moves on only on its client's root error (EchoBrainError, OllamaError): any
other exception is a bug and propagates. Each hop's failure is recorded in the answer's `path`
and logged, short and with the credentials of any URL in it removed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from anime_pipeline.config.schema import MOTION_PRESETS, ShowConfig
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.planning.plans import DialogueLine, PlannedScene, PlannedShot, Refinement
from anime_pipeline.services import redact_url
from anime_pipeline.services.echo_brain import EchoBrainClient, EchoBrainError
from anime_pipeline.services.ollama import OllamaClient, OllamaError

log = logging.getLogger(__name__)

REASON_CHARS = 200  # a path entry says why a hop failed, not the whole server answer
CREDENTIALS = re.compile(r"(?<=://)[^/\s]*@")  # the user:password@ of a URL, up to its last "@" before the path
ANGLE_WORDS = (("extreme", "extreme_close-up"), ("establish", "establishing"), ("close", "close-up"),
               ("action", "action"), ("wide", "wide"), ("medium", "medium"))
OLLAMA_SYSTEM = ("You are the art director of an anime production. You suggest Stable Diffusion XL prompt tags "
                 "for lighting, mood and style. Answer with JSON only.")
OLLAMA_REFINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"style_additions": {"type": "array", "items": {"type": "string", "minLength": 1}},
                   "negative_additions": {"type": "array", "items": {"type": "string", "minLength": 1}}},
    "required": ["style_additions", "negative_additions"],
    "additionalProperties": False,
}


class Director(Protocol):
    name: str  # what metadata calls it

    def refine_prompt(self, prompt: str, time_of_day: str = "", mood: str = "") -> Refinement:
        """The shot prompt with lighting / mood / style additions; never fails for a service."""
        ...

    def plan_scene(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene:
        """A shot list for one scene of `config`'s storyline; never fails for a service."""
        ...

    def send_feedback(self, scores: Mapping[str, Any]) -> bool:
        """True when a service took the scores; False, never an error, when none did."""
        ...


def redact_text(text: str) -> str:
    """`text` with the credentials of every URL in it removed: the clients' messages embed their base URL."""
    return CREDENTIALS.sub("", text)


def failure_reason(exc: Exception) -> str:
    """One short, credential-free line: the error's type and message."""
    text = " ".join(redact_text(f"{type(exc).__name__}: {exc}").split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def shot_type(camera_angle: str) -> str:
    """The motion preset a free-text camera angle names ("medium close-up" → close-up), else medium."""
    angle = camera_angle.lower()
    return next((preset for word, preset in ANGLE_WORDS if word in angle), "medium")


class _Hop(Protocol):
    label: str  # its entry in a director path
    error: type[Exception]  # its client family's root error: the only failure that moves the chain on

    def refine(self, prompt: str, time_of_day: str, mood: str) -> Refinement: ...

    def plan(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene: ...


class EchoBrainHop:
    label = "echo_brain"
    error = EchoBrainError

    def __init__(self, client: EchoBrainClient) -> None:
        self.client = client
        self.source = f"echo brain ({redact_url(client.base_url)})"

    def refine(self, prompt: str, time_of_day: str, mood: str) -> Refinement:
        answer = self.client.refine_prompt(prompt, {"time_of_day": time_of_day, "mood": mood})
        return Refinement(prompt, answer.refined, tuple(answer.style_additions), tuple(answer.negative_additions),
                          self.source, (f"{self.label}: ok",))

    def plan(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene:
        """Echo Brain's shot list knows no cast per shot: every shot gets the scene's characters."""
        plan = self.client.plan_scene(config.show.slug, scene_text, list(characters))
        shots = tuple(PlannedShot(shot_type(s.camera_angle), s.duration, tuple(characters)) for s in plan.shot_list)
        return PlannedScene(shots, self.source, (f"{self.label}: ok",))


class OllamaHop:
    label = "ollama"
    error = OllamaError

    def __init__(self, client: OllamaClient, model: str) -> None:
        self.client, self.model = client, model
        self.source = f"ollama ({model})"

    def refine(self, prompt: str, time_of_day: str, mood: str) -> Refinement:
        """Ollama only suggests additions; the prompt is composed here so the character and shot
        tags can never be dropped or rewritten by the model."""
        question = (f"Shot prompt: {prompt}\nTime of day: {time_of_day or 'unspecified'}\n"
                    f"Mood: {mood or 'unspecified'}\n"
                    "style_additions: up to 4 short tags for lighting and mood that fit this shot; "
                    "negative_additions: up to 4 short tags for what to avoid.")
        messages = [{"role": "system", "content": OLLAMA_SYSTEM}, {"role": "user", "content": question}]
        answer = self.client.chat_json(self.model, messages, OLLAMA_REFINE_SCHEMA)
        style = tuple(tag.strip() for tag in answer["style_additions"] if tag.strip())
        refined = ", ".join([prompt, *style]) if style else prompt
        return Refinement(prompt, refined, style, tuple(answer["negative_additions"]), self.source,
                          (f"{self.label}: ok",))

    def plan(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene:
        """Shots with dialogue; a shot without characters gets the scene's, and a line whose
        speaker is not in its shot is dropped."""
        names = ", ".join(f"{c.slug} ({c.name})" for c in config.characters if c.slug in characters)
        question = (f"Scene: {scene_text}\nCharacters (use these slugs): {names}\nBreak the scene into 3-6 anime "
                    f"shots. type is one of {list(MOTION_PRESETS)}; duration 1.5-6 seconds; at most two short "
                    "dialogue lines per shot, spoken by characters in the shot.")
        answer = self.client.chat_json(self.model, [{"role": "user", "content": question}],
                                       _scene_schema(characters))
        shots = []
        for shot in answer["shots"]:
            cast = tuple(shot["characters"] or characters)
            lines = tuple(DialogueLine(d["speaker"], d["line"]) for d in shot["dialogue"] if d["speaker"] in cast)
            shots.append(PlannedShot(shot["type"], float(shot["duration"]), cast, lines))
        return PlannedScene(tuple(shots), self.source, (f"{self.label}: ok",))


def _scene_schema(characters: Sequence[str]) -> dict[str, Any]:
    slug = {"type": "string", "enum": list(characters)}
    line = {"type": "object", "properties": {"speaker": slug, "line": {"type": "string", "minLength": 1}},
            "required": ["speaker", "line"], "additionalProperties": False}
    shot = {"type": "object", "additionalProperties": False, "required": ["type", "duration", "characters", "dialogue"],
            "properties": {"type": {"type": "string", "enum": list(MOTION_PRESETS)},
                           "duration": {"type": "number", "minimum": 1, "maximum": 30},
                           "characters": {"type": "array", "items": slug},
                           "dialogue": {"type": "array", "items": line}}}
    return {"type": "object", "properties": {"shots": {"type": "array", "items": shot}}, "required": ["shots"],
            "additionalProperties": False}


Answer = TypeVar("Answer", Refinement, PlannedScene)


class DirectorChain:
    """Echo Brain, else Ollama, else the local planner (a missing client is skipped as "not
    configured"); feedback goes to Echo Brain only, the one backend that learns from it."""

    name = "director (echo brain → ollama → local planner)"

    def __init__(self, echo: EchoBrainClient | None, ollama: OllamaClient | None, ollama_model: str = "gemma3",
                 local: LocalPlanner | None = None) -> None:
        self.echo = echo
        self.hops: tuple[tuple[str, _Hop | None], ...] = (
            (EchoBrainHop.label, EchoBrainHop(echo) if echo is not None else None),
            (OllamaHop.label, OllamaHop(ollama, ollama_model) if ollama is not None else None),
        )
        self.local = local or LocalPlanner()

    def refine_prompt(self, prompt: str, time_of_day: str = "", mood: str = "") -> Refinement:
        return self._first("prompt refinement", lambda hop: hop.refine(prompt, time_of_day, mood),
                           lambda: self.local.refine_prompt(prompt, time_of_day, mood))

    def plan_scene(self, config: ShowConfig, scene_text: str, characters: Sequence[str]) -> PlannedScene:
        return self._first("scene plan", lambda hop: hop.plan(config, scene_text, characters),
                           lambda: self.local.plan_scene(config, scene_text, characters),
                           unusable=lambda plan: "no shots returned" if not plan.shots else None)

    def send_feedback(self, scores: Mapping[str, Any]) -> bool:
        if self.echo is None:
            return False
        try:
            self.echo.learn(scores)
        except EchoBrainError as exc:
            log.warning("director: feedback to Echo Brain failed: %s", failure_reason(exc))
            return False
        return True

    def _first(self, task: str, ask: Callable[[_Hop], Answer], last: Callable[[], Answer],
               unusable: Callable[[Answer], str | None] = lambda answer: None) -> Answer:
        """The first hop's usable answer, else the local planner's, with the failed hops in front of its path."""
        tried: list[str] = []
        for label, hop in self.hops:
            if hop is None:
                tried.append(f"{label}: not configured")
                continue
            try:
                answer = ask(hop)
            except hop.error as exc:
                reason = failure_reason(exc)
                log.warning("director: %s from %s failed, falling back: %s", task, label, reason)
                tried.append(f"{label}: {reason}")
                continue
            problem = unusable(answer)
            if problem is None:
                return replace(answer, path=(*tried, *answer.path))
            tried.append(f"{label}: {problem}")
        answer = last()
        return replace(answer, path=(*tried, *answer.path))
