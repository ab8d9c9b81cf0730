"""What ComfyUI answers, as typed values, and what a run returns.

Each from_json reads an answer of the recorded protocol (reference/protocols.md §1) and raises
ComfyUIBadResponse naming the route and the field when the server sent something else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anime_pipeline.services.comfyui.errors import ComfyUIBadResponse
from anime_pipeline.services.http import BadJSON, as_object, field

_NUMBER = (int, float)
FILE_TYPES = ("output", "temp", "input")


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn the field checks' BadJSON into ComfyUIBadResponse for `what` (e.g. "GET /queue")."""
    try:
        yield
    except BadJSON as exc:
        raise ComfyUIBadResponse(what, str(exc)) from None


@dataclass(frozen=True)
class Device:
    name: str
    type: str
    index: int | None
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class SystemStats:
    comfyui_version: str
    python_version: str
    pytorch_version: str
    os: str
    ram_total: int
    ram_free: int
    devices: tuple[Device, ...]

    @classmethod
    def from_json(cls, data: Any, what: str = "GET /system_stats") -> SystemStats:
        with reading(what):
            root = as_object(data, "the answer")
            system = field(root, "system", dict, default={})
            devices = tuple(_device(as_object(d, f"devices[{i}]"), f"devices[{i}]")
                            for i, d in enumerate(field(root, "devices", list, default=[])))

            def text(key: str, default: str = "") -> str:
                return field(system, key, str, "system", default)

            def amount(key: str) -> int:
                return int(field(system, key, _NUMBER, "system", 0))

            return cls(comfyui_version=text("comfyui_version", "unknown"), python_version=text("python_version"),
                       pytorch_version=text("pytorch_version"), os=text("os"), ram_total=amount("ram_total"),
                       ram_free=amount("ram_free"), devices=devices)


def _device(data: dict[str, Any], where: str) -> Device:
    return Device(name=field(data, "name", str, where, ""), type=field(data, "type", str, where, ""),
                  index=field(data, "index", int, where, None),
                  vram_total=int(field(data, "vram_total", _NUMBER, where, 0)),
                  vram_free=int(field(data, "vram_free", _NUMBER, where, 0)))


@dataclass(frozen=True)
class QueueState:
    running: tuple[str, ...]
    pending: tuple[str, ...]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending

    @classmethod
    def from_json(cls, data: Any, what: str = "GET /queue") -> QueueState:
        with reading(what):
            root = as_object(data, "the answer")
            return cls(running=_prompt_ids(root, "queue_running"), pending=_prompt_ids(root, "queue_pending"))


def _prompt_ids(root: dict[str, Any], key: str) -> tuple[str, ...]:
    """The prompt ids of /queue items, [number, prompt_id, prompt, extra_data, outputs]."""
    ids = []
    for index, item in enumerate(field(root, key, list, default=[])):
        where = f"{key}[{index}]"
        if not isinstance(item, list) or len(item) < 2 or not isinstance(item[1], str):
            raise BadJSON(f"{where} is not a [number, prompt_id, ...] item")
        ids.append(item[1])
    return tuple(ids)


@dataclass(frozen=True)
class UploadedImage:
    name: str
    subfolder: str
    type: str

    @property
    def input_ref(self) -> str:
        """The value LoadImage's `image` input expects, e.g. "proto/test_in.png"."""
        return f"{self.subfolder}/{self.name}" if self.subfolder else self.name

    @classmethod
    def from_json(cls, data: Any, what: str = "POST /upload/image") -> UploadedImage:
        with reading(what):
            root = as_object(data, "the answer")
            return cls(name=field(root, "name", str), subfolder=field(root, "subfolder", str, default=""),
                       type=field(root, "type", str, default="input"))


@dataclass(frozen=True)
class OutputFile:
    node_id: str
    filename: Any  # as the server sent it; checked before it becomes a path
    subfolder: Any
    type: str


@dataclass(frozen=True)
class HistoryEntry:
    prompt_id: str
    status: str  # "success" or "error"
    completed: bool
    outputs: dict[str, dict[str, Any]]
    messages: tuple[tuple[str, dict[str, Any]], ...]

    @classmethod
    def from_json(cls, prompt_id: str, data: Any, what: str = "GET /history") -> HistoryEntry:
        with reading(what):
            entry = as_object(data, f"entry {prompt_id!r}")
            status = field(entry, "status", dict, default={})
            outputs = field(entry, "outputs", dict, default={})
            for node_id, ui in outputs.items():
                as_object(ui, f"outputs[{node_id!r}]")
            messages = []
            for index, message in enumerate(field(status, "messages", list, "status", [])):
                if not (isinstance(message, list) and len(message) == 2 and isinstance(message[0], str)
                        and isinstance(message[1], dict)):
                    raise BadJSON(f"status.messages[{index}] is not an [event name, {{...}}] pair")
                messages.append((message[0], message[1]))
            return cls(prompt_id=prompt_id, status=field(status, "status_str", str, "status", ""),
                       completed=field(status, "completed", bool, "status", False), outputs=outputs,
                       messages=tuple(messages))

    def message(self, kind: str) -> dict[str, Any] | None:
        return next((data for name, data in self.messages if name == kind), None)

    def files(self, what: str = "GET /history") -> list[OutputFile]:
        """Every file the output nodes reported, under any key (images, gifs, audio, ...)."""
        files = []
        with reading(what):
            for node_id, ui in self.outputs.items():
                for key, value in ui.items():
                    items = value if isinstance(value, list) else []  # "animated": [true], text outputs, ...
                    for index, item in enumerate(items):
                        if isinstance(item, Mapping) and "filename" in item:
                            files.append(_output_file(node_id, item, f"outputs[{node_id!r}].{key}[{index}]"))
        return files

    def server_seconds(self) -> float | None:
        """Execution time from the server's own timestamps (milliseconds), when it sent both."""
        start, end = self.message("execution_start"), self.message("execution_success")
        stamps = [message.get("timestamp") for message in (start, end) if message]
        if len(stamps) == 2 and all(isinstance(s, _NUMBER) and not isinstance(s, bool) for s in stamps):
            return max(0.0, (stamps[1] - stamps[0]) / 1000)
        return None


def _output_file(node_id: str, item: Mapping[str, Any], where: str) -> OutputFile:
    kind = field(item, "type", str, where, "output")
    if kind not in FILE_TYPES:
        raise BadJSON(f"{where}.type is {kind[:40]!r}, not one of {', '.join(FILE_TYPES)}")
    return OutputFile(node_id, item.get("filename"), item.get("subfolder", ""), kind)


@dataclass(frozen=True)
class ProgressEvent:
    node: str
    value: int | float
    max: int | float
    percent: float

    @classmethod
    def from_event(cls, data: Mapping[str, Any]) -> ProgressEvent:
        with reading("WebSocket /ws 'progress' event"):
            value, maximum = field(data, "value", _NUMBER, default=0), field(data, "max", _NUMBER, default=0)
            return cls(node=str(data.get("node")), value=value, max=maximum,
                       percent=100.0 * value / maximum if maximum else 0.0)


@dataclass(frozen=True)
class Timings:
    submit_s: float  # run() called -> prompt accepted (validation, first-run server info, POST)
    queue_s: float  # accepted -> done, less execute_s: waiting in the queue (and for the news)
    execute_s: float  # execution, as timed by the server
    download_s: float  # done -> every file on disk
    total_s: float


@dataclass(frozen=True)
class RunResult:
    prompt_id: str
    outputs: list[Path]
    node_outputs: dict[str, dict[str, Any]]  # history "outputs", raw
    timings: Timings
    server: SystemStats
    submissions: int  # 2 when the prompt was resubmitted after a server restart

