"""How long a fresh interpreter takes to import the code location (what every run worker, Celery task process
and code server pays before its first step), median of N runs.

    .venv/bin/python benchmarks/import_time.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def once() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import anime_pipeline.definitions"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    base = statistics.median(_bare() for _ in range(args.runs))
    times = [once() for _ in range(args.runs)]
    print(f"import anime_pipeline.definitions: median {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs); bare interpreter {base:.2f} s")


def _bare() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
