"""Clients for the external services the pipeline drives: ComfyUI, Ollama, Echo Brain."""

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL without user:password@, for logs, metadata and manifests (credentials never land there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
