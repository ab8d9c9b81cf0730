"""Fixtures for the trainers: a small captioned dataset, tiny SD 1.5 / SDXL checkpoints, a job."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))  # the fake servers

from tiny_checkpoints import SD15, SDXL, write_checkpoint  # noqa: E402

from anime_pipeline.training.base import TrainingJob  # noqa: E402
from anime_pipeline.training.dataset import TrainingDataset  # noqa: E402
from anime_pipeline.training.lora_keys import BaseModel  # noqa: E402
from anime_pipeline.config.schema import TrainerSettings  # noqa: E402

SD_SCRIPTS = Path(__file__).resolve().parent / "sd_scripts"
CAPTIONS = ["mio, 1girl, courier, default outfit, neutral expression, standing",
            "mio, 1girl, courier, default outfit, smiling expression, standing",
            "mio, 1girl, courier, raincoat, neutral expression, running",
            "mio, 1girl, courier, raincoat, smiling expression, waving"]


def write_dataset(folder: Path, captions: list[str] = CAPTIONS, size: tuple[int, int] = (64, 96)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, caption in enumerate(captions):
        image = np.full((size[1], size[0], 3), (40 * index, 120, 200 - 30 * index), np.uint8)
        Image.fromarray(image).save(folder / f"mio-{index:04d}.png")
        (folder / f"mio-{index:04d}.txt").write_text(caption + "\n")
    return folder


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


def make_job(dataset: TrainingDataset, base: BaseModel, **settings) -> TrainingJob:
    defaults = {"epochs": 3, "repeats": 2, "rank": 4, "seed": 7}
    return TrainingJob("mio", dataset, base, TrainerSettings(**{**defaults, **settings}))
