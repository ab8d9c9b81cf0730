"""Run the studio: check where it may listen, bind, serve with uvicorn until stopped."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from anime_pipeline.studio.app import StudioConfig, create_app
from anime_pipeline.studio.security import StudioError, check_bind


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise StudioError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port or --host") from None
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    return sock


def serve(config: StudioConfig, port: int, announce: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. `announce` gets the URL once the port accepts connections
    (port 0 picks a free one); the token is never part of what is announced or logged."""
    check_bind(config.host, config.token)
    sock = _bind(config.host, port)
    shown_host = f"[{config.host.strip('[]')}]" if ":" in config.host else config.host
    url = f"http://{shown_host}:{sock.getsockname()[1]}"
    # proxy_headers off: a forwarded scheme or host must not change what counts as the studio's own origin.
    server = uvicorn.Server(uvicorn.Config(create_app(config), lifespan="off", proxy_headers=False,
                                           server_header=False, timeout_graceful_shutdown=5, log_level="info"))
    writes = "token required for writing actions" if config.token else "no token: writing open to this machine"
    (announce or (lambda line: print(line, flush=True)))(f"studio on {url} ({writes}); storage {config.storage_root}")
    server.run(sockets=[sock])
