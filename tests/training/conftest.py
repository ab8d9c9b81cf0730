"""Fixtures for the trainers: a small captioned dataset, tiny SD 1.5 / SDXL checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.lora_keys import BaseModel
from tests.training.jobs import write_dataset
from tests.training.tiny_checkpoints import SD15, SDXL, write_checkpoint


@pytest.fixture
def dataset(tmp_path: Path) -> TrainingDataset:
    return TrainingDataset.from_folder(write_dataset(tmp_path / "approved"))


@pytest.fixture(scope="session")
def sd15_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("models") / "v1-5-pruned-emaonly-fp16.safetensors", SD15)


@pytest.fixture(scope="session")
def sdxl_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("models") / "animagine-xl-3.1.safetensors", SDXL)


@pytest.fixture
def sd15(sd15_checkpoint: Path) -> BaseModel:
    return BaseModel.from_checkpoint(sd15_checkpoint)
