"""Demo wall time: the sample show end to end on the embedded defaults, in fresh folders, N times.

    .venv/bin/python benchmarks/demo_walltime.py --repeat 3

Prints the median wall time of the whole demo (sync + every run) and the median seconds per asset
(summed over its partitions, from Dagster's step stats).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import dagster as dg

from anime_pipeline.config import Project
from anime_pipeline.definitions import build_definitions
from anime_pipeline.paths import StoragePaths
from anime_pipeline.runner import Runner, plan_for
from anime_pipeline.sensors.sync import sync_instance
from anime_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def one_run() -> tuple[float, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        configs = root / "project_configs"
        shutil.copytree(REPO / "project_configs", configs)
        storage = root / "storage"
        settings = Settings(configs, storage, storage / "library", "cpu", "cpu")
        (root / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            start = time.perf_counter()
            sync_instance(instance, configs)
            project = Project.load(configs)
            runner = Runner(build_definitions(settings), instance, StoragePaths(storage), report=lambda _: None)
            if not runner.run_plan(plan_for(project), project, approve_as="demo"):
                raise SystemExit("the demo failed; run `anime-pipeline demo` to see why")
            wall = time.perf_counter() - start
            per_asset: dict[str, float] = defaultdict(float)
            for outcome in runner.outcomes:
                for stats in instance.get_run_step_stats(outcome.run_id):
                    if stats.end_time and stats.start_time:
                        per_asset[stats.step_key] += stats.end_time - stats.start_time
            return wall, dict(per_asset)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    walls, assets = [], defaultdict(list)
    for i in range(args.repeat):
        wall, per_asset = one_run()
        walls.append(wall)
        for name, seconds in per_asset.items():
            assets[name].append(seconds)
        print(f"run {i + 1}: {wall:.1f} s")
    print(f"median wall time: {statistics.median(walls):.1f} s over {args.repeat} runs")
    for name, values in sorted(assets.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {name:<22} {statistics.median(values):6.1f} s")


if __name__ == "__main__":
    main()
