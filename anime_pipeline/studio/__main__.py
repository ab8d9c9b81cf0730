"""`python -m anime_pipeline.studio [--host H] [--port P]`: the same server as `anime-pipeline studio`."""

from __future__ import annotations

import argparse
import sys

from anime_pipeline.settings import Settings
from anime_pipeline.studio.cli import add_parser, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m anime_pipeline.studio")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["studio", *(sys.argv[1:] if argv is None else argv)])
    return run(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
