"""Ollama client for structured answers: /api/chat with images and a JSON-schema `format`,
validated against that schema, with a bounded repair round when the model answers badly.

Every failure is a typed `OllamaError` whose message names the server, the model and what to
do about it (reference/protocols.md §2 lists the statuses this maps).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:11434"
BUSY_STATUS = 503  # queue full (OLLAMA_MAX_QUEUE): the same request later will succeed
EXCERPT_CHARS = 200
REPAIR_ECHO_CHARS = 4000  # a runaway answer should not blow the context of the repair request
SCHEMA_KEYWORDS = frozenset({"type", "properties", "required", "enum", "minimum", "maximum", "items",
                             "additionalProperties", "minLength", "description", "title"})


class OllamaError(RuntimeError):
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
    capabilities: list[str] = field(default_factory=list)

    @classmethod
    def from_api(cls, entry: Mapping[str, Any]) -> ModelInfo:
        details = entry.get("details") or {}
        return cls(name=entry["name"], model=entry.get("model", ""), size=entry.get("size", 0),
                   digest=entry.get("digest", ""), modified_at=entry.get("modified_at", ""),
                   family=details.get("family", ""), parameter_size=details.get("parameter_size", ""),
                   quantization_level=details.get("quantization_level", ""),
                   capabilities=list(entry.get("capabilities") or []))

    def answers_to(self, name: str) -> bool:
        """Ollama resolves an untagged name to `:latest`."""
        return name in (self.name, self.model) or (":" not in name and self.name == f"{name}:latest")


def connection_problem(exc: requests.RequestException) -> str:
    """A short cause for a connection failure; requests' own text is a nested urllib3 repr."""
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"), ("Read timed out", "read timed out"),
                           ("timed out", "connection timed out"), ("Name or service not known", "unknown host"),
                           ("Connection reset", "connection reset"),
                           ("RemoteDisconnected", "connection closed by the server")):
        if needle in text:
            return reason
    return text.splitlines()[0][:EXCERPT_CHARS] if text else type(exc).__name__


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
        value = json.loads(_strip_fence(content))
    except json.JSONDecodeError as exc:
        cut = "; the answer was cut off (done_reason=length)" if done_reason == "length" else ""
        return None, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}){cut}"
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


def _error_text(response: requests.Response) -> tuple[str, bool]:
    """(the server's message, whether it came as Ollama's {"error": ...} body)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:EXCERPT_CHARS * 2] or response.reason, False
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"], True
    return json.dumps(body)[:EXCERPT_CHARS * 2], False


class OllamaClient:
    """A synchronous client for one Ollama server. `retries` bounds the re-sends of a request the
    server refused as busy (503), waiting `backoff`·2^n seconds; `timeout` is per socket read, so
    for a non-streamed answer it bounds the whole generation."""

    def __init__(self, base_url: str = DEFAULT_URL, timeout: float = 120.0, retries: int = 3,
                 backoff: float = 0.5, keep_alive: str | int = "5m") -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff, self.keep_alive = timeout, retries, backoff, keep_alive
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def tags(self) -> list[ModelInfo]:
        data = self._json(self._request("GET", "/api/tags", None), "/api/tags", None)
        return [ModelInfo.from_api(entry) for entry in data.get("models", [])]

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
        InvalidModelOutput. `stream=True` turns `timeout` into the longest gap between tokens."""
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
        response = self._request("POST", "/api/chat", model, body, stream)
        with response:
            if "ndjson" in response.headers.get("Content-Type", ""):
                return self._read_stream(response, model)
            data = self._json(response, "/api/chat", model)
        if "error" in data:
            raise OllamaServerError(self.base_url + "/api/chat", model, response.status_code, str(data["error"]))
        try:
            return data["message"]["content"], data.get("done_reason", "stop")
        except (KeyError, TypeError):
            raise OllamaServerError(self.base_url + "/api/chat", model, response.status_code,
                                    f"answer has no message.content (keys: {sorted(data)})") from None

    def _read_stream(self, response: requests.Response, model: str) -> tuple[str, str]:
        """Concatenate NDJSON chunks; an {"error"} line can arrive after HTTP 200 was sent."""
        url, parts = self.base_url + "/api/chat", []
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    raise OllamaServerError(url, model, response.status_code,
                                            f"mid-stream error after {len(parts)} chunks: {chunk['error']}")
                parts.append((chunk.get("message") or {}).get("content", ""))
                if chunk.get("done"):
                    return "".join(parts), chunk.get("done_reason", "stop")
        except requests.RequestException as exc:
            raise self._translate(exc, model) from exc
        except json.JSONDecodeError as exc:
            raise OllamaServerError(url, model, response.status_code, f"unreadable stream line: {exc}") from exc
        raise OllamaServerError(url, model, response.status_code, f"stream ended before done after {len(parts)} chunks")

    def _request(self, method: str, path: str, model: str | None, body: dict[str, Any] | None = None,
                 stream: bool = False) -> requests.Response:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._session.request(method, url, json=body, timeout=self.timeout, stream=stream)
            except requests.RequestException as exc:
                raise self._translate(exc, model) from exc
            if response.status_code != BUSY_STATUS:
                self._raise_for_status(response, url, model)
                return response
            text, _ = _error_text(response)
            log.info("ollama busy at %s (attempt %d/%d): %s", url, attempt + 1, self.retries + 1, text)
        raise OllamaBusy(url, model, self.retries + 1, text)

    def _raise_for_status(self, response: requests.Response, url: str, model: str | None) -> None:
        if response.status_code < 400:
            return
        text, from_ollama = _error_text(response)
        response.close()
        # Ollama's 404 carries {"error": 'model "x" not found'}; a bare 404 means a wrong URL
        if response.status_code == 404 and model and from_ollama:
            raise ModelMissing(model, self.base_url, f"server said: {text}")
        if response.status_code == 400:
            raise BadRequest(url, model, text)
        raise OllamaServerError(url, model, response.status_code, text)

    def _translate(self, exc: requests.RequestException, model: str | None) -> OllamaError:
        reason = connection_problem(exc)
        # A streamed read timeout arrives as ConnectionError(ReadTimeoutError)
        if isinstance(exc, requests.ReadTimeout) or reason == "read timed out":
            return OllamaTimeout(self.base_url, model, self.timeout)
        return OllamaUnavailable(self.base_url, reason)

    def _json(self, response: requests.Response, path: str, model: str | None) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise OllamaServerError(self.base_url + path, model, response.status_code,
                                    f"answer is not JSON: {response.text[:EXCERPT_CHARS]!r}") from None
        if not isinstance(data, dict):
            raise OllamaServerError(self.base_url + path, model, response.status_code,
                                    f"expected a JSON object, got {_json_type(data)}")
        return data
