"""An in-process ACE-Step 1.5 API server (protocols-more.md §2.1): the `{"data","code","error",
"timestamp","extra"}` envelope, FastAPI `{"detail"}` errors, Bearer auth, a task queue whose
entries go queued → running → succeeded (or failed) as they are polled, a `result` that is a
JSON string, and `/v1/audio?path=` serving only files from its own temporary folder. The audio
is a real WAV of the requested length, a chord whose root follows the seed."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from aiohttp import web

from tests.services.fake_ollama import Served
from tests.services.fake_speech import wav_bytes

RATE = 48_000


def chord(seconds: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    root = 110 * 2 ** ((seed % 12) / 12)
    tone = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1, 1.25, 1.5)) / 3
    return (0.3 * 32767 * tone).astype("<i2")


def envelope(data: Any, error: str | None = None) -> web.Response:
    return web.json_response({"data": data, "code": 200, "error": error, "timestamp": int(time.time() * 1000),
                              "extra": None})


@dataclass
class Task:
    body: dict[str, Any]
    polls: int = 0
    file: Path | None = None


@dataclass
class FakeAceStep(Served):
    """Knobs: `api_key`; `queued_polls` / `running_polls` (how many polls a task spends in each
    state); `fail_with` (the task ends in status 2 with this error); `queue_full` (release answers
    429); `wrong_audio` (the finished file holds these bytes instead of a WAV); `reject_detail`
    (release answers 422 with this FastAPI detail)."""

    api_key: str | None = None
    queued_polls: int = 1
    running_polls: int = 2
    fail_with: str | None = None
    queue_full: bool = False
    wrong_audio: bytes | None = None
    reject_detail: Any = None
    tasks: dict[str, Task] = field(default_factory=dict)
    polls: int = 0

    def __post_init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-acestep-")
        self.folder = Path(self._tmp.name)
        app = web.Application()
        app.router.add_post("/release_task", self._release)
        app.router.add_post("/query_result", self._query)
        app.router.add_get("/v1/audio", self._audio)
        app.router.add_get("/health", self._health)
        self.serve(app)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._tmp.cleanup()

    @property
    def released(self) -> list[dict[str, Any]]:
        return [task.body for task in self.tasks.values()]

    def _denied(self, request: web.Request) -> web.Response | None:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Invalid API key"}, status=401)
        return None

    async def _health(self, request: web.Request) -> web.Response:
        return envelope({"status": "ok", "service": "ACE-Step API", "version": "1.0"})

    async def _release(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        if request.content_type != "application/json":
            return web.json_response({"detail": f"Unsupported Content-Type: {request.content_type}"}, status=415)
        if self.queue_full:
            return web.json_response({"detail": "Server busy: queue is full"}, status=429)
        body = await request.json()
        if self.reject_detail is not None:
            return web.json_response({"detail": self.reject_detail}, status=422)
        duration = body.get("audio_duration", body.get("duration"))
        if not isinstance(duration, int | float) or not 10 <= duration <= 600:
            return web.json_response({"detail": [{"loc": ["body", "audio_duration"],
                                                  "msg": "Input should be between 10 and 600"}]}, status=422)
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = Task(body)
        return envelope({"task_id": task_id, "status": "queued", "queue_position": len(self.tasks)})

    async def _query(self, request: web.Request) -> web.Response:
        if denied := self._denied(request):
            return denied
        self.polls += 1
        ids = (await request.json()).get("task_id_list", [])
        ids = json.loads(ids) if isinstance(ids, str) else ids
        return envelope([self._state(task_id) for task_id in ids])

    def _state(self, task_id: str) -> dict[str, Any]:
        task = self.tasks.get(task_id)
        if task is None:
            return {"task_id": task_id, "status": 0, "result": "[]", "progress_text": ""}
        task.polls += 1
        if task.polls <= self.queued_polls:
            return {"task_id": task_id, "status": 0, "result": "[]", "progress_text": "queued"}
        if task.polls <= self.queued_polls + self.running_polls:
            progress = (task.polls - self.queued_polls) / (self.running_polls + 1)
            entry = {"progress": progress, "stage": "diffusion", "status": 0}
            return {"task_id": task_id, "status": 0, "result": json.dumps([entry]), "progress_text": "running"}
        if self.fail_with:
            entry = {"status": 2, "stage": "failed", "error": self.fail_with}
            return {"task_id": task_id, "status": 2, "result": json.dumps([entry]), "progress_text": self.fail_with}
        return {"task_id": task_id, "status": 1, "result": json.dumps([self._finished(task_id, task)]),
                "progress_text": "succeeded"}

    def _finished(self, task_id: str, task: Task) -> dict[str, Any]:
        seed = int(task.body.get("seed", 0))
        if task.file is None:
            task.file = self.folder / f"{task_id}.wav"
            data = self.wrong_audio if self.wrong_audio is not None else \
                wav_bytes(chord(float(task.body["audio_duration"]), seed), RATE)
            task.file.write_bytes(data)
        return {"file": f"/v1/audio?path={quote(str(task.file))}", "status": 1, "prompt": task.body.get("prompt"),
                "lyrics": "", "metas": {"bpm": 90, "duration": task.body["audio_duration"], "genres": "ambient",
                                        "keyscale": "C Major", "timesignature": "4"},
                "seed_value": str(seed), "progress": 1.0, "stage": "succeeded"}

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        path = Path(request.query.get("path", "")).resolve()
        if not path.is_relative_to(self.folder.resolve()):
            return web.json_response({"detail": "Access denied"}, status=403)
        if not path.is_file():
            return web.json_response({"detail": "File not found"}, status=404)
        return web.Response(body=path.read_bytes(), content_type="audio/wav")
