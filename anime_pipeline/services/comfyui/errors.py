"""Everything the ComfyUI client raises: ComfyUIError and its subclasses.

Messages quote at most a short excerpt of what the server sent, and ServiceError redacts any
credentials in them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anime_pipeline.services import ServiceError
from anime_pipeline.services.comfyui.graph import ValidationProblem, node_key
from anime_pipeline.services.http import excerpt

_MAX_NODE_ERROR_LINES = 40


class ComfyUIError(ServiceError):
    """Root of everything the ComfyUI client raises."""


class ComfyUIUnavailable(ComfyUIError):
    """No answer through the whole reconnect window (the server is down, restarting, or behind a
    proxy that answers 502/503/504)."""

    def __init__(self, url: str, attempts: int, cause: object, window: float | None = None) -> None:
        within = f" within the {window:g} s reconnect window" if window is not None else ""
        super().__init__(f"ComfyUI is unavailable at {url} (tried {attempts} time(s){within}): {cause}")
        self.url = url
        self.attempts = attempts


class ComfyUIRequestTimeout(ComfyUIError):
    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what}: ComfyUI sent no complete answer within {seconds:g} s")
        self.what = what
        self.seconds = seconds


class ComfyUIBadResponse(ComfyUIError):
    """An answer or an event that is not what the protocol says: wrong types, not JSON, an HTML page."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what}: malformed answer from ComfyUI: {problem}")
        self.what = what
        self.problem = problem


class ComfyUIResponseTooLarge(ComfyUIBadResponse):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what, f"larger than the {limit}-byte cap for this route")
        self.limit = limit


class WorkflowValidationError(ComfyUIError):
    def __init__(self, problems: list[ValidationProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"workflow is not valid for this ComfyUI server ({len(problems)} problem(s)):\n{lines}")


class PromptRejected(ComfyUIError):
    """POST /prompt refused the workflow (HTTP 400), or accepted only some of its outputs."""

    def __init__(self, prompt_id: str, error: Mapping[str, Any], node_errors: Mapping[str, Any]) -> None:
        self.prompt_id = prompt_id
        self.error = dict(error)
        self.node_errors = dict(node_errors)
        headline = _short(error.get("message") or error.get("type") or "rejected")
        if error.get("details"):
            headline += f" ({_short(error['details'])})"
        lines = [f"  {line}" for line in describe_node_errors(node_errors)]
        super().__init__("\n".join([f"ComfyUI rejected prompt {prompt_id}: {headline}", *lines]))


class ExecutionFailed(ComfyUIError):
    def __init__(self, node_id: str, node_type: str, exception_type: str, exception_message: str, *,
                 prompt_id: str = "", traceback: list[str] | None = None) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.prompt_id = prompt_id
        self.traceback = traceback or []
        super().__init__(f"prompt {prompt_id} failed in node {node_id} ({node_type}): "
                         f"{exception_type}: {exception_message.strip()}")

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> ExecutionFailed:
        """From an execution_error event or history message; every field is the server's, any type."""
        trace = data.get("traceback")
        return cls(_short(data.get("node_id")), _short(data.get("node_type")), _short(data.get("exception_type")),
                   _short(data.get("exception_message"), 2000), prompt_id=_short(data.get("prompt_id", "")),
                   traceback=[str(line) for line in trace[:200]] if isinstance(trace, list) else [])


class Interrupted(ComfyUIError):
    def __init__(self, prompt_id: str, reason: str) -> None:
        self.prompt_id = prompt_id
        super().__init__(f"prompt {prompt_id} was interrupted: {reason}")


class ComfyUITimeout(ComfyUIError):
    def __init__(self, prompt_id: str, timeout: float) -> None:
        self.prompt_id = prompt_id
        self.timeout = timeout
        super().__init__(f"prompt {prompt_id} did not finish within {timeout:g}s; it was interrupted "
                         "and removed from the queue")


class UnsafeOutputPath(ComfyUIError):
    def __init__(self, node_id: str, subfolder: str, filename: str, reason: str) -> None:
        self.node_id, self.subfolder, self.filename = node_id, subfolder, filename
        super().__init__(f"refusing output of node {_short(node_id, 80)}: subfolder={_quoted(subfolder)} "
                         f"filename={_quoted(filename)}: {reason}")


class PromptLost(ComfyUIError):
    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        super().__init__(f"prompt {prompt_id} vanished from the server again after being resubmitted "
                         "(in neither /queue nor /history): the server keeps restarting mid-run")


def describe_node_errors(node_errors: Mapping[str, Any]) -> list[str]:
    """One line per error of a /prompt 400 answer, whatever the shape the server gave them."""
    lines = []
    for node_id, info in sorted(node_errors.items(), key=lambda item: node_key(item[0])):
        info = info if isinstance(info, Mapping) else {}
        errors = info.get("errors")
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, Mapping):
                continue
            extra = error.get("extra_info")
            input_name = extra.get("input_name") if isinstance(extra, Mapping) else None
            where = f"node {_short(node_id, 40)} ({_short(info.get('class_type', '?'), 80)})"
            where += f" input '{_short(input_name, 80)}'" if input_name else ""
            text = _short(error.get("message", ""))
            if error.get("details") and error.get("details") != input_name:
                text += f": {_short(error['details'])}"
            lines.append(f"{where}: {text} [{_short(error.get('type', '?'), 80)}]")
    if len(lines) > _MAX_NODE_ERROR_LINES:
        lines[_MAX_NODE_ERROR_LINES:] = [f"... and {len(lines) - _MAX_NODE_ERROR_LINES} more"]
    return lines


def _quoted(value: Any) -> str:
    """repr() of a server-sent value, shortened."""
    return excerpt(value) if isinstance(value, str) else _short(repr(value))


def _short(value: Any, limit: int = 300) -> str:
    """A server-sent value for a message: its text when short and printable, else an excerpt."""
    text = value if isinstance(value, str) else str(value)
    printable = text.isprintable() or all(c.isprintable() or c in "\n\t" for c in text)
    return text if len(text) <= limit and printable else excerpt(text, limit)
