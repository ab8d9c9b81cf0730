"""An in-process fake Echo Brain (SPEC §8): the known endpoints and fields, plus extra keys a real
server may add, which the client must keep."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from aiohttp import web

from tests.services.fake_ollama import BackgroundServer, Received
from tests.services.hostile import Hostile, middleware

HEALTH = "/api/echo/health"
PLAN = "/api/echo/anime/scene/plan"
REFINE = "/api/echo/anime/prompt/refine"
LEARN = "/api/echo/anime/feedback/learn"

DEFAULT_ANSWERS: dict[str, dict[str, Any]] = {
    HEALTH: {"status": "healthy", "uptime_s": 5123, "version": "2.4.0"},
    PLAN: {
        "shot_list": [
            {"shot_number": 1, "camera_angle": "wide establishing", "duration": 4.0, "transition": "fade"},
            {"shot_number": 2, "camera_angle": "medium close-up", "duration": 2.5, "focus": "mio"},
        ],
        "overall_mood": "hushed, hopeful",
        "lighting_suggestions": ["lantern glow", "deep blue shadows"],
        "confidence": 0.82,
        "memory_ids": ["m-101", "m-207"],
    },
    REFINE: {
        "refined_prompt": "1girl, courier, lantern-lit street, moonlight, soft bloom",
        "style_additions": ["moonlight", "soft bloom"],
        "negative_additions": ["overexposed"],
        "model_used": "echo-director-7b",
    },
    LEARN: {
        "patterns": [{"pattern": "night shots score low on clarity", "support": 4}],
        "recommendations": ["raise steps for night scenes"],
        "stored": True,
    },
}


class FakeEchoBrain:
    """Knobs: `answers[path]` (the JSON each endpoint returns; edit to drop or change fields),
    `status` (every endpoint answers with it, e.g. 500 for a broken server), `delay` (seconds,
    for timeouts), `hostile[path]` (a hostile.py mode instead), `requests` (everything received)."""

    def __init__(self) -> None:
        self.answers = copy.deepcopy(DEFAULT_ANSWERS)
        self.status = 200
        self.delay = 0.0
        self.requests: list[Received] = []
        self.hostile: dict[str, Hostile] = {}
        app = web.Application(middlewares=[middleware(self.hostile)])
        app.router.add_get(HEALTH, self._handle)
        for path in (PLAN, REFINE, LEARN):
            app.router.add_post(path, self._handle)
        self._server = BackgroundServer(app)
        self.url = ""

    def __enter__(self) -> FakeEchoBrain:
        self.url = self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.requests.append(Received(request.method, request.path, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"detail": "Internal Server Error"}, status=self.status)
        return web.json_response(self.answers[request.path])
