"""The studio's guards: who may write, from which page, and which files a URL may reach.

- Writing actions need the token when ANIME_PIPELINE_STUDIO_TOKEN is set (sent as
  `Authorization: Bearer …`, or once through the sign-in form, which marks the session);
  listening on anything but loopback without a token is refused.
- Browser writes carry a per-session CSRF token and must come from the studio's own origin.
- Requests must name the studio by a loopback host when it listens on loopback (a page on
  another site whose name resolves to 127.0.0.1 cannot read or write through it).
- File URLs resolve inside the storage root only: no '..', no absolute paths, no hidden
  temporary files, no symbolic link that leads out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

TOKEN_ENV = "ANIME_PIPELINE_STUDIO_TOKEN"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SERVED_SUFFIXES = {".png", ".jpg", ".jpeg", ".mp4", ".m4a", ".json", ".srt"}


class StudioError(Exception):
    """A studio setting or request that cannot be honoured; the message says why and what to do."""


class PathRefused(Exception):
    """A file URL that would leave the storage root, or name something the studio never serves."""


class Secret:
    """A token that never shows itself: not in repr, str, logs or exception messages."""

    def __init__(self, value: str):
        if len(value) < 16:
            raise StudioError(f"{TOKEN_ENV} is too short: use at least 16 random characters")
        self._value = value.encode()

    def matches(self, offered: str) -> bool:
        return hmac.compare_digest(self._value, offered.encode())

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def token_from_env(env: dict[str, str]) -> Secret | None:
    value = env.get(TOKEN_ENV, "").strip()
    return Secret(value) if value else None


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def check_bind(host: str, token: Secret | None) -> None:
    if not is_loopback(host) and token is None:
        raise StudioError(
            f"refusing to listen on {host}: anyone who can reach it could approve or reject images. "
            f"Set {TOKEN_ENV} to a long random string (writing actions then require it), "
            "or listen on 127.0.0.1 (the default)")


def _host_name(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


@dataclass
class Guard:
    """Session cookies, CSRF tokens and the token check for one running studio.

    Sessions are stateless: the CSRF token and the signed-in mark are HMACs of the session id
    under a key that lives as long as the process (a restarted studio asks to reload the page).
    """

    token: Secret | None
    loopback_only: bool
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def _sign(self, purpose: str, session: str) -> str:
        return hmac.new(self.key, f"{purpose}|{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_token(self, session: str) -> str:
        return self._sign("csrf", session)

    def signed_in_mark(self, session: str) -> str:
        return self._sign("auth", session)

    def host_allowed(self, host_header: str) -> bool:
        return not self.loopback_only or is_loopback(_host_name(host_header))

    def same_origin(self, host_header: str, scheme: str, origin: str | None, fetch_site: str | None,
                    referer: str | None) -> bool:
        own = f"{scheme}://{host_header}".lower()
        if origin:
            return origin.lower() == own
        if fetch_site:
            return fetch_site == "same-origin"
        if referer:
            parts = urlsplit(referer)
            return f"{parts.scheme}://{parts.netloc}".lower() == own
        return False

    def csrf_ok(self, session: str | None, offered: str | None) -> bool:
        return bool(session and offered) and hmac.compare_digest(self.csrf_token(session), offered)

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        return self.token is not None and scheme.lower() == "bearer" and self.token.matches(value.strip())

    def session_signed_in(self, session: str | None, mark: str | None) -> bool:
        if self.token is None:
            return True
        return bool(session and mark) and hmac.compare_digest(self.signed_in_mark(session), mark)


def resolve_under(root: Path, relative: str) -> Path:
    """The file `relative` (a URL path, '/'-separated) names under `root`, or PathRefused."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        raise PathRefused(f"refused path {relative!r}")
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        # dot segments climb out; hidden names are the atomic writers' half-written temporaries
        raise PathRefused(f"refused path {relative!r}")
    if Path(parts[-1]).suffix.lower() not in SERVED_SUFFIXES:
        raise PathRefused(f"refused path {relative!r}: not a served file type")
    base = root.resolve()
    try:
        real = base.joinpath(*parts).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, RuntimeError):  # RuntimeError: a symlink loop
        raise PathRefused(f"no file {relative!r}") from None
    if not real.is_relative_to(base) or not real.is_file():
        raise PathRefused(f"refused path {relative!r}")
    return real
