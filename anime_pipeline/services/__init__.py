"""Clients for the external services the pipeline drives: ComfyUI, Ollama, Echo Brain.

Each client has one root error type (ComfyUIError, OllamaError, EchoBrainError), all three derived
from ServiceError, which redacts credentials from its message and string attributes when they are
set: no error of these clients can carry a password or token into a log, a manifest or the Dagster
event log, whatever text its raiser put in it.
"""

from __future__ import annotations

import re

REDACTED = "REDACTED"
# query parameters that carry secrets: ?token=, ?api_key=, ?access_token=, ?X-Emby-Token=, ?sig=, ...
_SENSITIVE_PARAM = re.compile(r"token|key|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
# a URL runs to the next whitespace or the next scheme: two URLs glued together are redacted separately
_URL_IN_TEXT = re.compile(rf"{_SCHEME}(?:(?!{_SCHEME})\S)*")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#]*)=([^&;#]*)")


def redact_url(url: str) -> str:
    """The URL without user:password@ and with secret query values replaced, for logs, metadata and
    manifests (credentials never land there). Never raises, whatever the text."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    authority = authority.rpartition("@")[2]
    tail = _QUERY_PAIR.sub(_redact_pair, tail) if "?" in tail else tail
    return f"{scheme}{sep}{authority}{tail}"


def _redact_pair(match: re.Match[str]) -> str:
    separator, name, value = match.groups()
    return f"{separator}{name}={REDACTED if _SENSITIVE_PARAM.search(name) and value else value}"


def redact_text(text: str) -> str:
    """`text` with every URL in it redacted (see redact_url)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


class ServiceError(RuntimeError):
    """The common root of the service clients' error families; redacts at the source.

    Message arguments and every string attribute are redacted as they are set, so neither str(),
    repr(), a traceback nor an attribute read by a caller can show a credential."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(arg) if isinstance(arg, str) else arg for arg in args))

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, redact_text(value) if isinstance(value, str) else value)
