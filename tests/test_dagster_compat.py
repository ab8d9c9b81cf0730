"""Contract of the sensor switch in dagster_compat: what it stores is what Dagster's own CLI (and so the
daemon and the UI, which load the same workspace.yaml) reads, and it reads what they store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from anime_pipeline import dagster_compat
from anime_pipeline.sensors.dataset_replenishment import SENSOR_NAME

REPO = Path(__file__).resolve().parents[1]


def _dagster(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dagster", "sensor", *args, "-w", "workspace.yaml"], cwd=REPO,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_sensor_switch_and_cursor_are_the_ones_dagster_reads_and_writes(world, instance, monkeypatch):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(world.configs))
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(world.storage))
    assert os.environ["DAGSTER_HOME"] == str(world.home)  # the instance fixture's home, for the CLI too
    assert not dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
    assert dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=True)  # never switched: the default
    assert dagster_compat.sensor_cursor(instance, SENSOR_NAME) is None

    assert dagster_compat.set_sensor_running(instance, SENSOR_NAME, True, REPO / "workspace.yaml")
    assert dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
    assert f"Sensor: {SENSOR_NAME} [RUNNING]" in _dagster("list")
    _dagster("cursor", SENSOR_NAME, "--set", '{"characters": {}}')
    assert dagster_compat.sensor_cursor(instance, SENSOR_NAME) == '{"characters": {}}'

    assert not dagster_compat.set_sensor_running(instance, SENSOR_NAME, False, REPO / "workspace.yaml")
    assert not dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=True)
