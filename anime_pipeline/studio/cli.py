"""`anime-pipeline studio`: the review queue and the players in the browser, next to the Dagster UI."""

from __future__ import annotations

import argparse
import sys

from anime_pipeline.settings import Settings, environment
from anime_pipeline.studio.models import ReplenishmentSource
from anime_pipeline.studio.security import TOKEN_ENV, StudioError, token_from_env
from anime_pipeline.studio.urls import DEFAULT_PORT


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser("studio", help="review candidates and play shots, scenes and episodes in the browser")
    parser.add_argument("--host", default="127.0.0.1",
                        help=f"interface to listen on (default 127.0.0.1; any other needs {TOKEN_ENV})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0 picks a free one")
    return parser


def run(args: argparse.Namespace, settings: Settings, replenishment: ReplenishmentSource | None = None) -> int:
    from anime_pipeline.studio.app import StudioConfig  # the web stack loads only for this command
    from anime_pipeline.studio.server import serve

    try:
        config = StudioConfig(settings.storage_root, settings.configs_dir, args.host, token_from_env(environment()),
                              replenishment)
        serve(config, args.port)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
