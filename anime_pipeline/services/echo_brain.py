"""Echo Brain, the director service (SPEC §8). The director role that falls back from it to Ollama
and then to the local planner is planning.director's DirectorChain.

Echo Brain's schemas are not published beyond a few fields, so the parsing is tolerant: only the
fields the pipeline uses are validated; everything else is kept in `extra`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anime_pipeline.services import ServiceError
from anime_pipeline.services.http import (BadJSON, ConnectionFailed, DeadlineExceeded, HTTPTransport, Response,
                                          Timeout, TransportError, as_object)

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8309"
HEALTH = "/api/echo/health"
PLAN = "/api/echo/anime/scene/plan"
REFINE = "/api/echo/anime/prompt/refine"
LEARN = "/api/echo/anime/feedback/learn"
MAX_ANSWER_BYTES = 1 << 20  # plans, refinements and feedback are a few kB


class EchoBrainError(ServiceError):
    """Echo Brain gave no usable answer."""


class EchoBrainUnavailable(EchoBrainError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"Echo Brain at {url} is unavailable ({reason})")


class EchoBrainRejected(EchoBrainError):
    def __init__(self, url: str, status: int, text: str) -> None:
        self.url, self.status, self.text = url, status, text
        super().__init__(f"Echo Brain rejected the request to {url} (HTTP {status}): {text}")


class EchoBrainBadResponse(EchoBrainError):
    def __init__(self, endpoint: str, field_name: str, problem: str) -> None:
        self.endpoint, self.field, self.problem = endpoint, field_name, problem
        super().__init__(f"Echo Brain {endpoint} answered without a usable {field_name!r}: {problem}")


class _Tolerant(BaseModel):
    """Validates the declared fields; every other key of the answer lands in `extra`."""

    model_config = ConfigDict(frozen=True)

    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def _known_keys(cls) -> set[str]:
        keys: set[str] = set()
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                keys.update(choice for choice in alias.choices if isinstance(choice, str))
            elif name != "extra":
                keys.add(name)
        return keys

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = cls._known_keys()
        return {**{k: v for k, v in data.items() if k in known},
                "extra": {k: v for k, v in data.items() if k not in known}}


T = TypeVar("T", bound=_Tolerant)


class PlannedShot(_Tolerant):
    shot_number: int
    camera_angle: str
    duration: float = Field(gt=0, description="seconds")


class ScenePlan(_Tolerant):
    shot_list: list[PlannedShot]
    overall_mood: str
    lighting_suggestions: list[str]

    @field_validator("lighting_suggestions", mode="before")
    @classmethod
    def _one_suggestion(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class RefinedPrompt(_Tolerant):
    original: str = Field(description="the prompt that was sent")
    refined: str = Field(min_length=1, validation_alias=AliasChoices("refined_prompt", "refined"))
    style_additions: list[str] = Field(default_factory=list)
    negative_additions: list[str] = Field(default_factory=list)


class FeedbackResult(_Tolerant):
    patterns: list[Any]
    recommendations: list[Any]


def _field_path(loc: Sequence[str | int]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "<body>"


class EchoBrainClient:
    """Connection failures, timeouts and 5xx are retried `retries` times (`backoff`·2^n s apart),
    then EchoBrainUnavailable; a 4xx is EchoBrainRejected; an answer without a needed field, not
    JSON or over `max_answer_bytes` is EchoBrainBadResponse naming the endpoint and the field.
    `timeout` bounds each call whole, connect to last byte."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 10.0, retries: int = 1,
                 backoff: float = 0.25, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._http = HTTPTransport(base_url, Timeout(total=timeout))
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.max_answer_bytes = max_answer_bytes

    def close(self) -> None:
        """Nothing is held between calls (each has its own connection)."""

    def health(self) -> bool:
        try:
            return self._call("GET", HEALTH).get("status") == "healthy"
        except EchoBrainError as exc:
            log.info("echo brain health check failed: %s", exc)
            return False

    def plan_scene(self, session_id: str, scene_description: str, characters: Sequence[str]) -> ScenePlan:
        body = {"session_id": session_id, "scene_description": scene_description, "characters": list(characters)}
        return self._parse(ScenePlan, self._call("POST", PLAN, body), PLAN)

    def refine_prompt(self, prompt: str, context: Mapping[str, Any]) -> RefinedPrompt:
        data = self._call("POST", REFINE, {"prompt": prompt, "context": dict(context)})
        return self._parse(RefinedPrompt, {**data, "original": prompt}, REFINE)

    def learn(self, scores: Mapping[str, Any]) -> FeedbackResult:
        return self._parse(FeedbackResult, self._call("POST", LEARN, {"scores": dict(scores)}), LEARN)

    @staticmethod
    def _parse(model: type[T], data: dict[str, Any], endpoint: str) -> T:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            keys = ", ".join(sorted(str(key)[:40] for key in data)[:20])
            raise EchoBrainBadResponse(endpoint, _field_path(error["loc"]),
                                       f"{error['msg']}; answer keys: [{keys}]") from None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=body, timeout=Timeout(total=self.timeout),
                                              limit=self.max_answer_bytes)
            except (ConnectionFailed, DeadlineExceeded) as exc:
                reason = exc.reason
                continue
            except TransportError as exc:
                raise EchoBrainBadResponse(path, "<body>", exc.reason) from None
            if response.status >= 500:
                reason = f"HTTP {response.status}: {response.excerpt()}"
                continue
            if response.status >= 400:
                raise EchoBrainRejected(url, response.status, response.excerpt())
            return self._json(response, path)
        raise EchoBrainUnavailable(url, reason)

    @staticmethod
    def _json(response: Response, path: str) -> dict[str, Any]:
        try:
            return as_object(response.json(), "the answer")
        except TransportError as exc:
            raise EchoBrainBadResponse(path, "<body>", exc.reason) from None
        except BadJSON as exc:
            raise EchoBrainBadResponse(path, "<body>", str(exc)) from None
