"""The production dagster.yaml keeps Dagster's own files (compute logs, local artifacts) out of the artifact
storage root, whatever DAGSTER_HOME is."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from anime_pipeline.settings import Settings
from tests.deploy.services import PG, REPO, database


@dg.op
def hello(context: dg.OpExecutionContext) -> None:
    print("a line of compute log")  # captured by the compute log manager
    context.log.info("hello")


@dg.job
def hello_job():
    hello()


@pytest.mark.parametrize("home_is", ["repository", "storage root"])
def test_dagster_files_never_land_under_the_storage_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         home_is: str):
    monkeypatch.chdir(tmp_path)  # the folder the deployment's processes start in
    monkeypatch.delenv("ANIME_PIPELINE_STORAGE", raising=False)
    storage = Settings.from_env().storage_root
    home = tmp_path if home_is == "repository" else storage
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    with database() as name:
        for key, value in {"PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"],
                           "PGDATABASE": name}.items():
            monkeypatch.setenv(key, value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            logs = Path(instance.compute_log_manager.inst_data.config_dict["base_dir"]).absolute()
            artifacts = Path(instance.root_directory).absolute()
            assert hello_job.execute_in_process(instance=instance).success
    for path in (logs, artifacts):
        assert not path.is_relative_to(storage), f"{path} is under the storage root {storage}"
    assert logs.is_dir()  # the run's compute logs are there, not in the storage root
    left = sorted(p.name for p in storage.iterdir()) if storage.exists() else []
    assert left == (["dagster.yaml"] if home == storage else [])
