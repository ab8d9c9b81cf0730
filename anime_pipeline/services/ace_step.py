"""Client for the ACE-Step 1.5 API server: release a task, poll it, download the audio
(protocols-more.md §2.1).

Every answer is an envelope `{"data", "code", "error", "timestamp", "extra"}`; HTTP errors are
FastAPI's `{"detail": ...}`. A task's status is 0 (queued or running), 1 (succeeded) or 2
(failed); its `result` is a JSON *string* holding a list of entries with the file's URL path.
One `total_timeout` bounds the whole generation; each request also has its own (services/http.py:
connect to last byte, with a size cap). Every failure is an `AceStepError`; the API key travels in
the Authorization header only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from anime_pipeline.services import ServiceError
from anime_pipeline.services.audio_bytes import sniff_audio
from anime_pipeline.services.http import (BadJSON, ConnectionFailed, Deadline, DeadlineExceeded, HTTPTransport,
                                          Response, Timeout, TransportError, decode_json, excerpt)

MIN_DURATION, MAX_DURATION = 10.0, 600.0
MAX_AUDIO_BYTES = 256 * 2**20  # 10 min of 48 kHz stereo WAV is 110 MiB
MAX_JSON_BYTES = 4 * 2**20
QUEUED, SUCCEEDED, FAILED = 0, 1, 2


class AceStepError(ServiceError):
    """Anything that kept ACE-Step from delivering a track."""


class AceStepUnavailable(AceStepError):
    pass


class AceStepTimeout(AceStepError):
    pass


class AceStepUnauthorized(AceStepError):
    pass


class AceStepBusy(AceStepError):
    """HTTP 429: the server's queue is full."""


class AceStepRejected(AceStepError):
    pass


class AceStepServerError(AceStepError):
    pass


class AceStepTaskFailed(AceStepError):
    pass


class AceStepProtocolError(AceStepError):
    """An answer that does not have the documented shape."""


@dataclass(frozen=True)
class MusicTask:
    prompt: str
    duration: float  # seconds; clamped by the caller to the server's 10-600 s
    seed: int
    audio_format: str = "wav"
    inference_steps: int = 8
    bpm: int | None = None

    def body(self) -> dict[str, Any]:
        if not MIN_DURATION <= self.duration <= MAX_DURATION:
            raise ValueError(f"ACE-Step generates {MIN_DURATION:g}-{MAX_DURATION:g} s, not {self.duration:g} s")
        body: dict[str, Any] = {
            "prompt": self.prompt, "lyrics": "", "audio_duration": round(self.duration, 2),
            "use_random_seed": False, "seed": self.seed, "batch_size": 1, "audio_format": self.audio_format,
            "inference_steps": self.inference_steps, "task_type": "text2music", "thinking": False,
        }
        if self.bpm is not None:
            body["bpm"] = self.bpm
        return body


@dataclass(frozen=True)
class TaskState:
    task_id: str
    status: int
    progress_text: str
    entries: tuple[dict[str, Any], ...]  # the parsed `result` list


@dataclass(frozen=True)
class GeneratedTrack:
    data: bytes
    format: str  # from the magic bytes
    task_id: str
    seed: str  # the server's `seed_value` ("123" or "123,456" for a batch)
    metas: dict[str, Any]


def envelope_data(answer: Response, what: str, url: str) -> Any:
    try:
        payload = decode_json(answer.body)
    except BadJSON:
        raise AceStepProtocolError(f"ACE-Step {url}: {what} answered non-JSON: {excerpt(answer.body, 120)}") from None
    if not isinstance(payload, dict) or "data" not in payload:
        raise AceStepProtocolError(f"ACE-Step {url}: {what} answered without the data envelope: "
                                   f"{excerpt(answer.body, 120)}")
    if payload.get("error"):
        raise AceStepRejected(f"ACE-Step {url}: {what} failed: {payload['error']}")
    return payload["data"]


def _detail(answer: Response) -> str:
    try:
        payload = decode_json(answer.body)
    except BadJSON:
        return excerpt(answer.body.strip()) if answer.body.strip() else "no error text"
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, list):  # pydantic validation: [{loc, msg}]
        fields = [d for d in detail if isinstance(d, dict)]
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}" for d in fields)
    return str(detail) if detail else answer.excerpt()


def parse_state(item: Any, url: str) -> TaskState:
    if not isinstance(item, dict) or item.get("status") not in (QUEUED, SUCCEEDED, FAILED):
        raise AceStepProtocolError(f"ACE-Step {url}: a query_result entry has no status 0/1/2: {str(item)[:120]!r}")
    raw = item.get("result") or "[]"
    try:
        entries = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise AceStepProtocolError(f"ACE-Step {url}: task {item.get('task_id')} has a result that is not JSON: "
                                   f"{str(raw)[:120]!r}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AceStepProtocolError(f"ACE-Step {url}: task {item.get('task_id')} result is not a list of objects")
    return TaskState(str(item.get("task_id")), item["status"], str(item.get("progress_text") or ""), tuple(entries))


class AceStepClient:
    """`poll_interval`: the longest wait between two checks of a task; the first comes after `first_poll` and the
    waits double up to it, so a short track is fetched within a fraction of a second, a long one polled gently."""

    def __init__(self, url: str, api_key: str | None = None, request_timeout: float = 30.0,
                 total_timeout: float = 1800.0, poll_interval: float = 3.0, max_bytes: int = MAX_AUDIO_BYTES,
                 first_poll: float = 0.25) -> None:
        self._http = HTTPTransport(url, Timeout(total=request_timeout))
        self.request_timeout, self.total_timeout = request_timeout, total_timeout
        self.poll_interval, self.max_bytes = poll_interval, max_bytes
        self.first_poll = min(first_poll, poll_interval)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def url(self) -> str:
        return self._http.url

    def generate(self, task: MusicTask) -> GeneratedTrack:
        deadline = Deadline(self.total_timeout)
        task_id = self.release(task, deadline)
        wait = self.first_poll
        while True:
            state = self.query(task_id, deadline)
            if state.status == SUCCEEDED:
                return self._fetch(state, deadline)
            if state.status == FAILED:
                reason = next((e.get("error") for e in state.entries if e.get("error")), None)
                raise AceStepTaskFailed(f"ACE-Step {self.url}: task {task_id} failed: "
                                        f"{reason or state.progress_text or 'no reason given'}")
            if deadline.remaining() <= wait:
                raise AceStepTimeout(f"ACE-Step {self.url}: task {task_id} not finished within "
                                     f"{self.total_timeout:g} s ({state.progress_text or 'queued'})")
            deadline.sleep(wait)
            wait = min(wait * 2, self.poll_interval)

    def release(self, task: MusicTask, deadline: Deadline | None = None) -> str:
        data = envelope_data(self._json("POST", "/release_task", deadline, json_body=task.body()), "release_task",
                             self.url)
        if not isinstance(data, dict) or not isinstance(data.get("task_id"), str) or not data["task_id"]:
            raise AceStepProtocolError(f"ACE-Step {self.url}: release_task gave no task_id: {str(data)[:120]!r}")
        return data["task_id"]

    def query(self, task_id: str, deadline: Deadline | None = None) -> TaskState:
        reply = self._json("POST", "/query_result", deadline, json_body={"task_id_list": [task_id]})
        data = envelope_data(reply, "query_result", self.url)
        if not isinstance(data, list) or not data:
            raise AceStepProtocolError(f"ACE-Step {self.url}: query_result gave no entry for task {task_id}")
        return parse_state(data[0], self.url)

    def _fetch(self, state: TaskState, deadline: Deadline) -> GeneratedTrack:
        entry = next((e for e in state.entries if isinstance(e.get("file"), str) and e["file"]), None)
        if entry is None:
            raise AceStepProtocolError(f"ACE-Step {self.url}: task {state.task_id} succeeded without a file")
        answer = self._send("GET", "/v1/audio", deadline, self.max_bytes, params=_audio_params(entry["file"], self.url))
        if answer.status != 200:
            raise self._status_error(answer, f"downloading {entry['file']}")
        kind = sniff_audio(answer.body)
        if kind is None:
            labelled = answer.headers.get("content-type", "").split(";")[0].strip() or "unlabelled"
            raise AceStepProtocolError(f"ACE-Step {self.url}: {entry['file']} is not audio "
                                       f"({labelled}, {len(answer.body)} bytes)")
        metas = entry.get("metas") if isinstance(entry.get("metas"), dict) else {}
        return GeneratedTrack(answer.body, kind, state.task_id, str(entry.get("seed_value", "")), metas)

    def _json(self, method: str, path: str, deadline: Deadline | None, json_body: Any) -> Response:
        answer = self._send(method, path, deadline, MAX_JSON_BYTES, json=json_body)
        if answer.status != 200:
            raise self._status_error(answer, path.lstrip("/"))
        return answer

    def _send(self, method: str, path: str, deadline: Deadline | None, limit: int, **kwargs: Any) -> Response:
        seconds = self.request_timeout if deadline is None else min(self.request_timeout, deadline.remaining())
        try:
            return self._http.request(method, path, timeout=Timeout(total=max(seconds, 0.001)), limit=limit,
                                      headers=self._headers, **kwargs)
        except DeadlineExceeded:
            raise AceStepTimeout(f"ACE-Step {self.url}: no answer to {method} {path} within {seconds:.3g} s") from None
        except ConnectionFailed as exc:
            raise AceStepUnavailable(f"ACE-Step server {self.url} is unreachable ({exc.reason}); start it with "
                                     "`acestep-api` or point the music backend at the right host:port") from None
        except TransportError as exc:  # too large, or not HTTP
            raise AceStepProtocolError(f"ACE-Step {self.url}: {method} {path}: {exc.reason}") from None

    def _status_error(self, answer: Response, what: str) -> AceStepError:
        text = f"ACE-Step {self.url}: {what} answered HTTP {answer.status}: {_detail(answer)}"
        if answer.status in (401, 403):
            return AceStepUnauthorized(text + " (check ACESTEP_API_KEY)")
        if answer.status == 429:
            return AceStepBusy(text)
        if 400 <= answer.status < 500:
            return AceStepRejected(text)
        return AceStepServerError(text)


def _audio_params(file_ref: str, url: str) -> dict[str, str]:
    """`/v1/audio?path=...` from a result entry, as the server wrote it."""
    parts = urlsplit(file_ref)
    paths = parse_qs(parts.query).get("path")
    if parts.path.rstrip("/") != "/v1/audio" or not paths:
        raise AceStepProtocolError(f"ACE-Step {url}: unexpected file reference {file_ref[:120]!r}")
    return {"path": paths[0]}
