"""The production dagster.yaml against the real PostgreSQL server: a fresh database per run, dropped after."""

from __future__ import annotations

import os
import shutil
import uuid

import dagster as dg
import pytest

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.definitions import build_definitions, characters_job_name
from anime_pipeline.settings import Settings
from tests.worlds import REPO, empty_store

psycopg2 = pytest.importorskip("psycopg2")
REFERENCE, EMBEDDING = asset_key("character_reference", "lantern-post/mio"), asset_key("character_embedding", "lantern-post/mio")
PG = {"host": os.environ.get("ANIME_PIPELINE_TEST_PG_HOST", "127.0.0.1"), "port": 5432, "user": "postgres"}


@pytest.fixture
def database():
    name = f"anime_pipeline_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(dbname="postgres", **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable on {PG['host']}:5432 ({exc}); .ci/run starts it")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_production_instance_on_postgres(database, tmp_path, configs_dir, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    for key, value in {"HOST": PG["host"], "PORT": "5432", "USER": "postgres", "DATABASE": database}.items():
        monkeypatch.setenv(f"PG{key}", value)
    storage = tmp_path / "storage"
    settings = Settings(configs_dir, storage, storage / "library", "cpu", "cpu", models=empty_store(tmp_path))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = build_definitions(settings).resolve_job_def(characters_job_name("lantern-post")).execute_in_process(
            instance=instance, asset_selection=[REFERENCE, EMBEDDING])
        assert result.success
        run_id = result.run_id
    # A fresh instance reads everything back from PostgreSQL.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(run_id).is_success
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=EMBEDDING), limit=1).records
        assert records and records[0].asset_materialization.metadata["dimensions"].value == 512
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(EMBEDDING, "references_agree")])
        evaluation = next(iter(checks.values())).event.dagster_event.event_specific_data
        assert evaluation.passed and evaluation.metadata["threshold"].value == 0.70
