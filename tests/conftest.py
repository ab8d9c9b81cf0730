"""Shared fixtures: the sample show, isolated storage and Dagster homes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_OVERRIDES = {"concurrency": {"pools": {"default_limit": 1}}}
SAMPLE = REPO / "project_configs" / "lantern_post.yaml"


@pytest.fixture
def sample_text() -> str:
    return SAMPLE.read_text()


@pytest.fixture
def configs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project_configs"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    return folder


def add_lenient_show(configs_dir: Path, slug: str = "second-show") -> str:
    """A copy of the sample show under another slug whose phases open at 50 % (mio passes, hoshi
    waits for a human: exactly half of its characters pass)."""
    import yaml

    data = yaml.safe_load(SAMPLE.read_text())
    data["show"]["slug"] = slug
    data.setdefault("quality", {})["phase_pass_rate"] = 0.5
    (configs_dir / f"{slug.replace('-', '_')}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return slug


@pytest.fixture
def settings(tmp_path: Path, configs_dir: Path):
    from anime_pipeline.settings import Settings

    storage = tmp_path / "storage"
    return Settings(configs_dir=configs_dir, storage_root=storage, library_root=storage / "library",
                    renderer_gpu="cpu", reviewer_gpu="cpu", models=empty_store(tmp_path))


def empty_store(tmp_path: Path):
    """A model store with no weights: every metric runs its weight-free fallback."""
    from anime_pipeline.metrics.models import ModelStore

    return ModelStore(root=tmp_path / "models", torch_home=tmp_path / "models" / "torch")


@pytest.fixture
def weight_free(tmp_path: Path):
    """The metric suite as a machine without model weights runs it."""
    from anime_pipeline.metrics.suite import MetricSuite

    return MetricSuite(empty_store(tmp_path))


@pytest.fixture
def instance(tmp_path: Path):
    import dagster as dg

    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home), overrides=EMBEDDED_OVERRIDES) as inst:
        yield inst
