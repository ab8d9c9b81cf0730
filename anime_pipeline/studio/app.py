"""The studio web app: review queues, players, files — server-rendered pages over storage and the decision log.

Nothing here talks to Dagster: pages read the show files, the storage root and the decision log,
so the studio works while no Dagster process runs, and its decisions are the same log entries
`anime-pipeline review` writes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anime_pipeline.config import ConfigError, Project
from anime_pipeline.config.loader import show_files
from anime_pipeline.media.subtitles import format_webvtt
from anime_pipeline.paths import StoragePaths
from anime_pipeline.studio.manifests import RecordError, load_record
from anime_pipeline.studio.models import STATUSES, ReplenishmentSource, ReplenishmentView
from anime_pipeline.studio.queue import DecisionRejected, build_queue, parse_decision, record_decision
from anime_pipeline.studio.security import Guard, PathRefused, Secret, is_loopback, resolve_under
from anime_pipeline.studio.subtitles import placed_cues
from anime_pipeline.studio.urls import KEY_PART, studio_path

# Lax, not Strict: a link from the Dagster UI (another site when it has another host name) must not
# start a new session and lose the sign-in; writes are guarded by CSRF tokens and the origin check.
SESSION_COOKIE = "ap_studio_session"
AUTH_COOKIE = "ap_studio_auth"
CSRF_HEADER = "x-csrf-token"
MAX_BODY = 64 * 1024
VIEWS = (*STATUSES, "all")
STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass(frozen=True)
class StudioConfig:
    storage_root: Path
    configs_dir: Path
    host: str = "127.0.0.1"
    token: Secret | None = None
    replenishment: ReplenishmentSource | None = None  # the replenishment sensor's state per character


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ProjectSource:
    """The show files, loaded again when one of them changes (the studio runs for days)."""

    def __init__(self, configs_dir: Path):
        self.configs_dir = configs_dir
        self._stamp: tuple | None = None
        self._project: Project | None = None
        self._lock = threading.Lock()

    def get(self) -> Project:
        files = show_files(self.configs_dir)
        stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        with self._lock:
            if stamp != self._stamp or self._project is None:
                self._project = Project.load(self.configs_dir)
                self._stamp = stamp
            return self._project


class HostGuard:
    """ASGI middleware: refuses requests for a host the studio does not answer to, adds security headers."""

    def __init__(self, app: ASGIApp, guard: Guard):
        self.app, self.guard = app, guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        if not self.guard.host_allowed(host):
            refusal = PlainTextResponse("this studio answers to 127.0.0.1 or localhost only", status_code=421)
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _clock(epoch_seconds: float) -> str:
    """An instant the replenishment guards give (epoch seconds) as UTC ISO time."""
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat(timespec="seconds")


def _file_url(relative: str) -> str:
    return "/files/" + quote(relative)


def _templates() -> Environment:
    env = Environment(loader=PackageLoader("anime_pipeline.studio", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["file_url"] = _file_url
    env.filters["clock"] = _clock
    env.globals["page"] = studio_path
    return env


def _slugs(request: Request, *names: str) -> str:
    values = [request.path_params[n] for n in names]
    if not all(KEY_PART.match(v) for v in values):
        raise HttpError(404, f"no such page: {request.url.path}")
    return "/".join(values)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HttpError(413, f"request body over {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HttpError(413, f"request body over {MAX_BODY} bytes")
    return bytes(body)


async def _read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the sign-in forms), first value per field."""
    fields = parse_qs((await _read_body(request)).decode("utf-8", "replace"))
    return {name: values[0] for name, values in fields.items()}


class Studio:
    def __init__(self, config: StudioConfig):
        self.config = config
        self.paths = StoragePaths(config.storage_root)
        self.projects = ProjectSource(config.configs_dir)
        self.guard = Guard(config.token, loopback_only=is_loopback(config.host))
        self.templates = _templates()

    # --- pages -----------------------------------------------------------------------------------

    def _session(self, request: Request) -> tuple[str, bool]:
        existing = request.cookies.get(SESSION_COOKIE)
        return (existing, False) if existing else (self.guard.new_session(), True)

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        session, new = self._session(request)
        signed_in = self.guard.session_signed_in(session, request.cookies.get(AUTH_COOKIE))
        html = self.templates.get_template(template).render(
            csrf=self.guard.csrf_token(session), token_required=self.guard.token is not None, signed_in=signed_in,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""), **context)
        response = HTMLResponse(html, status_code=status)
        if new:
            response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax")
        return response

    def project(self) -> Project:
        try:
            return self.projects.get()
        except ConfigError as exc:
            raise HttpError(500, exc.render()) from None

    async def index(self, request: Request) -> Response:
        project = await run_in_threadpool(self.project)
        counts = await run_in_threadpool(self._counts, project)
        return self.render(request, "index.html", title="studio", project=project, counts=counts)

    def _counts(self, project: Project) -> dict[str, dict[str, int]]:
        out = {}
        for key, ref in project.characters.items():
            queue = build_queue(ref, self.paths)
            out[key] = {status: queue.count(status) for status in STATUSES} | {"target": queue.target}
        return out

    async def character(self, request: Request) -> Response:
        key = _slugs(request, "show", "character")
        view = request.query_params.get("view", "pending")
        if view not in VIEWS:
            raise HttpError(400, f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
        ref = self._character_ref(await run_in_threadpool(self.project), key)
        queue = await run_in_threadpool(build_queue, ref, self.paths)
        state, state_error = await run_in_threadpool(self._replenishment, key)
        return self.render(request, "character.html", title=f"review {ref.character.name}", ref=ref, queue=queue,
                           view=view, views=VIEWS, cards=queue.showing(view), replenishment=state,
                           replenishment_error=state_error, configured=self.config.replenishment is not None)

    def _character_ref(self, project: Project, key: str):
        if key not in project.characters:
            raise HttpError(404, f"no character {key!r} in {self.config.configs_dir}")
        return project.characters[key]

    def _replenishment(self, key: str) -> tuple[ReplenishmentView | None, str]:
        if self.config.replenishment is None:
            return None, ""
        try:
            return self.config.replenishment(key), ""
        except Exception as exc:  # the review queue must stay usable when the sensor's state cannot be read
            return None, f"{type(exc).__name__}: {exc}"

    async def player(self, request: Request, kind: str) -> Response:
        names = {"shot": ("show", "episode", "scene", "shot"), "scene": ("show", "episode", "scene"),
                 "episode": ("show", "episode")}[kind]
        key = _slugs(request, *names)
        project = await run_in_threadpool(self.project)
        refs = {"shot": project.shots, "scene": project.scenes, "episode": project.episodes}[kind]
        if key not in refs:
            raise HttpError(404, f"no {kind} {key!r} in {self.config.configs_dir}")
        ref = refs[key]
        try:
            record = await run_in_threadpool(load_record, kind, key, self.paths, ref.config.quality)
        except RecordError as exc:
            raise HttpError(500, str(exc)) from None
        return self.render(request, f"{kind}.html", title=f"{kind} {key}", ref=ref, record=record, key=key)

    async def subtitles(self, request: Request, kind: str) -> Response:
        names = ("show", "episode", "scene") if kind == "scene" else ("show", "episode")
        key = _slugs(request, *names)
        project = await run_in_threadpool(self.project)
        refs = project.scenes if kind == "scene" else project.episodes
        if key not in refs:
            raise HttpError(404, f"no {kind} {key!r}")
        text = await run_in_threadpool(self._webvtt, kind, key, refs[key])
        return Response(text, media_type="text/vtt; charset=utf-8", headers={"cache-control": "no-cache"})

    def _webvtt(self, kind: str, key: str, ref) -> str:
        if kind == "scene":
            files = [(self.paths.scene(key) / "scene.srt", 0.0)]
        else:
            record = load_record("episode", key, self.paths, ref.config.quality)
            if record is None:
                raise HttpError(404, f"episode {key} has not been assembled yet")
            files = [(self.paths.scene(c.key) / "scene.srt", c.start) for c in record.chapters]
        try:
            return format_webvtt(placed_cues(files))
        except ValueError as exc:
            raise HttpError(500, str(exc)) from None

    async def file(self, request: Request) -> Response:
        try:
            path = resolve_under(self.paths.root, request.path_params["path"])
        except PathRefused:
            raise HttpError(404, "no such file") from None
        return FileResponse(path, headers={"cache-control": "no-cache"})

    # --- writing ---------------------------------------------------------------------------------

    def _same_origin(self, request: Request) -> bool:
        headers = request.headers
        return self.guard.same_origin(headers.get("host", ""), request.url.scheme, headers.get("origin"),
                                      headers.get("sec-fetch-site"), headers.get("referer"))

    def authorize_write(self, request: Request, offered_csrf: str | None) -> None:
        """Token holders (Authorization: Bearer) may write from anywhere; browsers from the studio's own
        pages only, with the session's CSRF token, and signed in when a token is configured."""
        if request.headers.get("authorization"):
            if self.guard.bearer_ok(request.headers["authorization"]):
                return
            raise HttpError(401, "the Authorization header does not carry the studio token")
        if not self._same_origin(request):
            raise HttpError(403, "refused: writing requests must come from the studio's own pages")
        session = request.cookies.get(SESSION_COOKIE)
        if not self.guard.csrf_ok(session, offered_csrf):
            raise HttpError(403, "refused: missing or stale CSRF token (reload the page)")
        if not self.guard.session_signed_in(session, request.cookies.get(AUTH_COOKIE)):
            raise HttpError(401, "sign in with the studio token first (/login)")

    async def decide(self, request: Request) -> Response:
        key = _slugs(request, "show", "character")
        self.authorize_write(request, request.headers.get(CSRF_HEADER))
        body = await _read_body(request)
        try:
            payload = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise HttpError(400, "body: not valid JSON") from None
        ref = self._character_ref(await run_in_threadpool(self.project), key)
        try:
            decision = parse_decision(payload)
            entries = await run_in_threadpool(record_decision, ref, self.paths, decision)
        except DecisionRejected as exc:
            raise HttpError(400, str(exc)) from None
        return JSONResponse({"recorded": [e.model_dump() for e in entries]})

    async def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", title="sign in", next=_safe_next(request.query_params.get("next")),
                           failed=False)

    async def login(self, request: Request) -> Response:
        form = await _read_form(request)
        self.authorize_form(request, form)
        target = _safe_next(form.get("next"))
        if self.guard.token is None or not self.guard.token.matches(form.get("token", "")):
            return self.render(request, "login.html", status=401, title="sign in", next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(AUTH_COOKIE, self.guard.signed_in_mark(request.cookies[SESSION_COOKIE]), httponly=True,
                            samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        self.authorize_form(request, await _read_form(request))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(AUTH_COOKIE)
        return response

    def authorize_form(self, request: Request, form: dict[str, str]) -> None:
        """Sign-in and sign-out forms: same origin and the session's CSRF token (no sign-in needed)."""
        if not self._same_origin(request) or not self.guard.csrf_ok(request.cookies.get(SESSION_COOKIE), form.get("csrf")):
            raise HttpError(403, "refused: the form must be sent from the studio's own page (reload it)")

    # --- errors ----------------------------------------------------------------------------------

    async def on_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return self.render(request, "error.html", status=exc.status, title="error", message=str(exc))


def _safe_next(target: str | None) -> str:
    """Only a path on this studio: never an absolute or protocol-relative URL (an open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def create_app(config: StudioConfig) -> Starlette:
    studio = Studio(config)
    routes = [
        Route("/", studio.index),
        Route("/characters/{show}/{character}", studio.character),
        Route("/api/decisions/{show}/{character}", studio.decide, methods=["POST"]),
        Route("/shots/{show}/{episode}/{scene}/{shot}", partial(studio.player, kind="shot")),
        Route("/scenes/{show}/{episode}/{scene}", partial(studio.player, kind="scene")),
        Route("/episodes/{show}/{episode}", partial(studio.player, kind="episode")),
        Route("/subtitles/scenes/{show}/{episode}/{scene}.vtt", partial(studio.subtitles, kind="scene")),
        Route("/subtitles/episodes/{show}/{episode}.vtt", partial(studio.subtitles, kind="episode")),
        Route("/files/{path:path}", studio.file),
        Route("/login", studio.login_page),
        Route("/login", studio.login, methods=["POST"]),
        Route("/logout", studio.logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HttpError: studio.on_error})
    app.add_middleware(HostGuard, guard=studio.guard)
    return app
