"""Tick time of the dataset_replenishment sensor over a project of many characters.

    .venv/bin/python benchmarks/replenish_tick.py --characters 50 --ticks 15

Renders the sample show's characters once (reference, anchor, dataset in learner-steered batches), then
makes N characters of the show (Mio, Hoshi and N−2 copies of Mio, each given Mio's storage: candidates,
decision log, batch records, anchor). The instance holds a day of replenishment runs (three finished per
copy) and two in flight, so each tick reads what a busy day leaves behind. Each tick is timed
through `SensorDefinition.evaluate_tick`, its cursor carried to the next as the daemon does; the
median (wall and CPU time) is reported with the first (cold) tick apart, and the same for
`replenishment_state`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
from dagster._core.test_utils import create_run_for_test  # noqa: E402

from anime_pipeline.config import Project  # noqa: E402
from anime_pipeline.paths import StoragePaths  # noqa: E402
from anime_pipeline.resources import StorageResource  # noqa: E402
from anime_pipeline.sensors.dataset_replenishment import (JOB_NAME, REPLENISH_TAG, RUN_KEY_TAG,  # noqa: E402
                                                          build_replenishment_job, build_replenishment_sensor,
                                                          replenishment_state, run_key)
from tests.conftest import SAMPLE, World  # noqa: E402

SOURCE = "lantern-post/mio"


def many_characters(world: World, count: int) -> list[str]:
    """The sample show with `count` copies of Mio (and Hoshi kept), each given Mio's storage."""
    data = yaml.safe_load(SAMPLE.read_text())
    mio = next(c for c in data["characters"] if c["slug"] == "mio")
    data["characters"] += [{**mio, "slug": f"mio{i:02d}", "dataset_target": 40} for i in range(count - 2)]
    (world.configs / "lantern_post.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    paths = StoragePaths(world.storage)
    keys = []
    for i in range(count - 2):
        key = f"lantern-post/mio{i:02d}"
        shutil.copytree(paths.character(SOURCE), paths.character(key))
        keys.append(key)
    return keys


def busy_day(instance: dg.DagsterInstance, keys: list[str]) -> None:
    for key in keys:
        for n in range(1, 4):
            run = create_run_for_test(instance, job_name=JOB_NAME, status=dg.DagsterRunStatus.SUCCESS,
                                      tags={REPLENISH_TAG: key, RUN_KEY_TAG: run_key(key, n)})
            assert run.status == dg.DagsterRunStatus.SUCCESS
    for key in keys[:2]:
        create_run_for_test(instance, job_name=JOB_NAME, status=dg.DagsterRunStatus.STARTED,
                            tags={REPLENISH_TAG: key, RUN_KEY_TAG: run_key(key, 4)})


def timed(fn, repeat: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds per call: on a shared machine the CPU time is the steadier of the two."""
    times = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=50)
    parser.add_argument("--ticks", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp) / "world")
        world.configs.mkdir(parents=True)
        shutil.copy(SAMPLE, world.configs / SAMPLE.name)
        with world.instance() as instance:
            made = world.run(instance, characters_only=True)
            assert made.ok, "\n".join(made.lines)
            keys = many_characters(world, args.characters)
            busy_day(instance, keys)
            project = Project.load(world.configs)
            paths = StoragePaths(world.storage)
            sensor = build_replenishment_sensor(project, build_replenishment_job(project))
            resources = {"storage": StorageResource(root=str(world.storage), library_root=str(world.storage))}
            cursor: list[str | None] = [None]

            def tick() -> None:
                result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor[0],
                                                                      resources=resources))
                cursor[0] = result.cursor

            ticks = timed(tick, args.ticks + 1)
            states = timed(lambda: replenishment_state(instance, project, paths), args.ticks + 1)
            candidates = len(list(paths.candidates(SOURCE).glob("c*.json")))
    print(f"{len(project.characters)} characters, {candidates} candidates each, "
          f"{3 * len(keys) + 2} replenishment runs in the instance")
    for name, times in (("sensor tick (evaluate_tick)", ticks), ("replenishment_state", states)):
        wall, cpu = ([t[i] * 1000 for t in times[1:]] for i in (0, 1))
        print(f"{name}: median {statistics.median(wall):.0f} ms wall (min {min(wall):.0f}, max {max(wall):.0f}), "
              f"{statistics.median(cpu):.0f} ms CPU, of {len(wall)}; first {times[0][0] * 1000:.0f} ms wall")


if __name__ == "__main__":
    main()
