"""Ollama client for structured answers: /api/chat with images and a JSON-schema `format`,
validated against that schema, with a bounded repair round when the model answers badly.

Every failure is a typed `OllamaError` whose message names the server, the model and what to
do about it (reference/protocols.md §2 lists the statuses this maps). Each call has a total
deadline, the whole generation and every chunk of a stream included, and a size cap
(services/http.py); a malformed answer is OllamaBadResponse naming the field.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from anime_pipeline.services import ServiceError
from anime_pipeline.services.http import (JSON_LIMIT, BadJSON, ConnectionFailed, DeadlineExceeded,
                                          HTTPTransport, Stream, Timeout, TransportError, as_object, decode_json,
                                          excerpt, field)

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:11434"
BUSY_STATUS = 503  # queue full (OLLAMA_MAX_QUEUE): the same request later will succeed
EXCERPT_CHARS = 200
REPAIR_ECHO_CHARS = 4000  # a runaway answer should not blow the context of the repair request
SCHEMA_KEYWORDS = frozenset({"type", "properties", "required", "enum", "minimum", "maximum", "items",
                             "additionalProperties", "minLength", "description", "title"})


class OllamaError(ServiceError):
    """Anything that kept Ollama from giving a usable answer."""


class OllamaUnavailable(OllamaError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"Ollama at {url} is unreachable ({reason}); start it with `ollama serve` "
                         "or point the client at the right host:port")


class OllamaTimeout(OllamaError):
    def __init__(self, url: str, model: str | None, timeout: float) -> None:
        self.url, self.model, self.timeout = url, model, timeout
        super().__init__(f"no answer from Ollama at {url} (model {model!r}) within {timeout:g} s; "
                         "a cold or large model may need a longer client timeout")


class ModelMissing(OllamaError):
    def __init__(self, model: str, url: str, detail: str = "") -> None:
        self.model, self.url = model, url
        said = f" ({detail})" if detail else ""
        super().__init__(f"model {model!r} is not installed on the Ollama server at {url}{said}; "
                         f"install it with: ollama pull {model}")


class BadRequest(OllamaError):
    def __init__(self, url: str, model: str | None, text: str) -> None:
        self.url, self.model, self.text = url, model, text
        super().__init__(f"Ollama at {url} rejected the request for model {model!r}: {text}")


class OllamaBusy(OllamaError):
    def __init__(self, url: str, model: str | None, attempts: int, text: str) -> None:
        self.url, self.model, self.attempts, self.text = url, model, attempts, text
        super().__init__(f"Ollama at {url} stayed busy for model {model!r} through {attempts} attempts "
                         f"(HTTP 503: {text}); raise OLLAMA_MAX_QUEUE or send fewer parallel requests")


class OllamaServerError(OllamaError):
    def __init__(self, url: str, model: str | None, status: int, text: str) -> None:
        self.url, self.model, self.status, self.text = url, model, status, text
        super().__init__(f"Ollama at {url} failed for model {model!r} (HTTP {status}): {text}")


class OllamaBadResponse(OllamaError):
    """An answer that is not what Ollama sends: not JSON, wrong types, too large, cut short."""

    def __init__(self, url: str, model: str | None, problem: str) -> None:
        self.url, self.model, self.problem = url, model, problem
        super().__init__(f"Ollama at {url} sent a malformed answer (model {model!r}): {problem}")


class InvalidModelOutput(OllamaError):
    def __init__(self, model: str, problem: str, raw_excerpt: str) -> None:
        self.model, self.problem, self.raw_excerpt = model, problem, raw_excerpt
        super().__init__(f"model {model!r} gave an unusable answer: {problem}; the answer began {raw_excerpt!r}")


@dataclass(frozen=True)
class ModelInfo:
    """One entry of GET /api/tags, with `details` flattened."""

    name: str
    model: str = ""
    size: int = 0
    digest: str = ""
    modified_at: str = ""
    family: str = ""
    parameter_size: str = ""
    quantization_level: str = ""
    capabilities: list[str] = dataclass_field(default_factory=list)

    @classmethod
    def from_api(cls, entry: Mapping[str, Any], where: str = "model") -> ModelInfo:
        """Raises BadJSON naming `where` and the field when the entry is not what /api/tags sends."""
        details = field(entry, "details", dict, where, {})
        inner = f"{where}.details"
        capabilities = field(entry, "capabilities", list, where, [])
        if not all(isinstance(item, str) for item in capabilities):
            raise BadJSON(f"{where}.capabilities is not an array of strings")
        return cls(name=field(entry, "name", str, where), model=field(entry, "model", str, where, ""),
                   size=field(entry, "size", int, where, 0), digest=field(entry, "digest", str, where, ""),
                   modified_at=field(entry, "modified_at", str, where, ""),
                   family=field(details, "family", str, inner, ""),
                   parameter_size=field(details, "parameter_size", str, inner, ""),
                   quantization_level=field(details, "quantization_level", str, inner, ""),
                   capabilities=list(capabilities))

    def answers_to(self, name: str) -> bool:
        """Ollama resolves an untagged name to `:latest`."""
        return name in (self.name, self.model) or (":" not in name and self.name == f"{name}:latest")


# --- the JSON Schema subset the pipeline emits -------------------------------------------------

def check_schema(schema: Mapping[str, Any], path: str = "$") -> None:
    """Refuse keywords `schema_problems` does not check, so that no constraint is silently skipped."""
    unknown = set(schema) - SCHEMA_KEYWORDS
    if unknown:
        raise ValueError(f"schema at {path} uses keywords this client does not validate: {sorted(unknown)}")
    for key, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.{key}")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), Mapping):
            check_schema(schema[keyword], f"{path}.<{keyword}>")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer" if isinstance(value, int) else "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _has_type(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == expected


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def _object_problems(value: dict, schema: Mapping[str, Any], path: str) -> list[str]:
    properties = schema.get("properties") or {}
    problems = [f"{path}: missing required key {key!r}" for key in schema.get("required", []) if key not in value]
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            problems += schema_problems(item, properties[key], _child(path, key))
        elif extra is False:
            problems.append(f"{path}: unexpected key {key!r}")
        elif isinstance(extra, Mapping):
            problems += schema_problems(item, extra, _child(path, key))
    return problems


def schema_problems(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (the SCHEMA_KEYWORDS subset); empty when it conforms."""
    expected = schema.get("type")
    if expected is not None:
        options = [expected] if isinstance(expected, str) else list(expected)
        if not any(_has_type(value, option) for option in options):
            return [f"{path}: expected {'/'.join(options)}, got {_json_type(value)}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if _json_type(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(value, dict):
        problems += _object_problems(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problems += schema_problems(item, schema["items"], f"{path}[{index}]")
    return problems


def _strip_fence(content: str) -> str:
    """Some models wrap JSON in a Markdown fence even under `format`; a repair round for that is waste."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


def parse_answer(content: str, schema: Mapping[str, Any], done_reason: str = "stop") -> tuple[dict | None, str | None]:
    """(the answer, None) when `content` is a JSON object that follows `schema`; (None, the problem) otherwise."""
    try:
        value = decode_json(_strip_fence(content))
    except BadJSON as exc:
        cut = "; the answer was cut off (done_reason=length)" if done_reason == "length" else ""
        return None, f"{exc}{cut}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {_json_type(value)}"
    problems = schema_problems(value, schema)
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        return None, "does not follow the schema: " + "; ".join(problems[:5]) + more
    return value, None


def _with_images(messages: list[dict[str, Any]], images: list[bytes] | None) -> list[dict[str, Any]]:
    """A copy of `messages` with the images (plain base64, no data: prefix) on the last user message."""
    conversation = [dict(message) for message in messages]
    if not images:
        return conversation
    users = [i for i, message in enumerate(conversation) if message.get("role") == "user"]
    if not users:
        raise ValueError("images need a user message to attach to")
    if not all(isinstance(image, bytes | bytearray) for image in images):
        raise TypeError("images must be encoded file bytes (PNG/JPEG), not arrays")
    conversation[users[-1]]["images"] = [base64.b64encode(image).decode("ascii") for image in images]
    return conversation


def _repair_turn(content: str, problem: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": content[:REPAIR_ECHO_CHARS]},
            {"role": "user", "content": f"That answer is unusable: {problem}. Answer again with only one JSON "
                                        "object that follows the requested schema exactly, nothing else."}]


def _error_text(body: bytes, status: int) -> tuple[str, bool]:
    """(the server's message, whether it came as Ollama's {"error": ...} body)."""
    try:
        data = decode_json(body)
    except BadJSON:
        return (excerpt(body.strip(), EXCERPT_CHARS * 2) if body.strip() else f"HTTP {status}"), False
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return _text(data["error"]), True
    return excerpt(body.strip(), EXCERPT_CHARS * 2), False


def _text(message: Any) -> str:
    """A server's error message for ours: as is when short and printable, else an excerpt."""
    text = str(message)
    return text if len(text) <= EXCERPT_CHARS * 2 and text.isprintable() else excerpt(text, EXCERPT_CHARS * 2)


class OllamaClient:
    """A synchronous client for one Ollama server. `retries` bounds the re-sends of a request the
    server refused as busy (503), waiting `backoff`·2^n seconds; `timeout` bounds each call whole
    (connecting, the whole generation, every chunk of a stream); `max_answer_bytes` caps one answer."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, keep_alive: str | int = "5m", max_answer_bytes: int = JSON_LIMIT) -> None:
        self._http = HTTPTransport(base_url, Timeout(total=timeout))
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff, self.keep_alive = timeout, retries, backoff, keep_alive
        self.max_answer_bytes = max_answer_bytes

    def close(self) -> None:
        """Nothing is held between calls (each has its own connection)."""

    def tags(self) -> list[ModelInfo]:
        with self._open("GET", "/api/tags", None) as answer:
            data = self._object(answer, "/api/tags", None)
        with self._reading("/api/tags", None):
            entries = field(data, "models", list, default=[])
            return [ModelInfo.from_api(as_object(entry, f"models[{i}]"), f"models[{i}]")
                    for i, entry in enumerate(entries)]

    def ensure_model(self, name: str) -> ModelInfo:
        """The installed model called `name` (untagged means `:latest`), or ModelMissing."""
        installed = self.tags()
        for info in installed:
            if info.answers_to(name):
                return info
        names = ", ".join(info.name for info in installed) or "none"
        raise ModelMissing(name, self.base_url, f"installed: {names}")

    def chat_json(self, model: str, messages: list[dict[str, Any]], schema: dict[str, Any],
                  images: list[bytes] | None = None, seed: int = 0, temperature: float = 0.0,
                  repair_attempts: int = 1, *, stream: bool = False) -> dict[str, Any]:
        """The model's answer as a dict that follows `schema`. An unparsable or non-conforming answer
        is shown back to the model with the problem, up to `repair_attempts` times, then
        InvalidModelOutput. With `stream=True` the answer comes token by token, under the same deadline."""
        if repair_attempts < 0:
            raise ValueError(f"repair_attempts must be ≥ 0, got {repair_attempts}")
        check_schema(schema)
        conversation = _with_images(messages, images)
        for attempt in range(repair_attempts + 1):
            content, done_reason = self._chat(model, conversation, schema, seed, temperature, stream)
            answer, problem = parse_answer(content, schema, done_reason)
            if answer is not None:
                return answer
            log.info("ollama %s answer %d unusable: %s", model, attempt + 1, problem)
            conversation += _repair_turn(content, problem)
        raise InvalidModelOutput(model, f"{problem} (after {repair_attempts + 1} attempts)", content[:EXCERPT_CHARS])

    def _chat(self, model: str, messages: list[dict[str, Any]], schema: dict[str, Any], seed: int,
              temperature: float, stream: bool) -> tuple[str, str]:
        body = {"model": model, "messages": messages, "format": schema, "stream": stream,
                "options": {"temperature": temperature, "seed": seed}, "keep_alive": self.keep_alive}
        with self._open("POST", "/api/chat", model, body) as answer:
            if "ndjson" in answer.headers.get("content-type", ""):
                return self._read_stream(answer, model)
            data = self._object(answer, "/api/chat", model)
        if "error" in data:
            raise OllamaServerError(self.base_url + "/api/chat", model, answer.status, _text(data["error"]))
        with self._reading("/api/chat", model):
            message = field(data, "message", dict)
            return field(message, "content", str, "message"), field(data, "done_reason", str, default="stop")

    def _read_stream(self, answer: Stream, model: str) -> tuple[str, str]:
        """Concatenate NDJSON chunks; an {"error"} line can arrive after HTTP 200 was sent."""
        url, parts = self.base_url + "/api/chat", []
        with self._reading("/api/chat", model):
            for number, line in enumerate(answer.lines(), 1):
                if not line.strip():
                    continue
                where = f"stream line {number}"
                chunk = as_object(decode_json(line), where)
                if "error" in chunk:
                    raise OllamaServerError(url, model, answer.status,
                                            f"mid-stream error after {len(parts)} chunks: {_text(chunk['error'])}")
                message = field(chunk, "message", dict, where, {})
                parts.append(field(message, "content", str, f"{where}.message", ""))
                if field(chunk, "done", bool, where, False):
                    return "".join(parts), field(chunk, "done_reason", str, where, "stop")
        raise OllamaServerError(url, model, answer.status, f"stream ended before done after {len(parts)} chunks")

    @contextmanager
    def _open(self, method: str, path: str, model: str | None, body: dict[str, Any] | None = None
              ) -> Iterator[Stream]:
        """The answer of a successful call, re-sent while the server is busy; every transport failure,
        also one while the caller reads the body, comes out as this family's error."""
        url = self.base_url + path
        with self._transport_errors(model):
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                with self._http.stream(method, path, json=body, timeout=Timeout(total=self.timeout),
                                       limit=self.max_answer_bytes) as answer:
                    if answer.status == BUSY_STATUS:
                        text, _ = _error_text(answer.read(), answer.status)
                        log.info("ollama busy at %s (attempt %d/%d): %s", self._http.url + path, attempt + 1,
                                 self.retries + 1, text)
                        continue
                    if answer.status >= 400:
                        self._raise_for_status(answer, url, model)
                    yield answer
                    return
        raise OllamaBusy(url, model, self.retries + 1, text)

    def _raise_for_status(self, answer: Stream, url: str, model: str | None) -> None:
        text, from_ollama = _error_text(answer.read(), answer.status)
        # Ollama's 404 carries {"error": 'model "x" not found'}; a bare 404 means a wrong URL
        if answer.status == 404 and model and from_ollama:
            raise ModelMissing(model, self.base_url, f"server said: {text}")
        if answer.status == 400:
            raise BadRequest(url, model, text)
        raise OllamaServerError(url, model, answer.status, text)

    @contextmanager
    def _transport_errors(self, model: str | None) -> Iterator[None]:
        try:
            yield
        except ConnectionFailed as exc:
            raise OllamaUnavailable(self.base_url, exc.reason) from None
        except DeadlineExceeded:
            raise OllamaTimeout(self.base_url, model, self.timeout) from None
        except TransportError as exc:
            raise OllamaBadResponse(self.base_url, model, exc.reason) from None

    @contextmanager
    def _reading(self, path: str, model: str | None) -> Iterator[None]:
        """The field checks' BadJSON as OllamaBadResponse naming the route."""
        try:
            yield
        except BadJSON as exc:
            raise OllamaBadResponse(self.base_url + path, model, str(exc)) from None

    def _object(self, answer: Stream, path: str, model: str | None) -> dict[str, Any]:
        with self._reading(path, model):
            return as_object(decode_json(answer.read()), "the answer")
