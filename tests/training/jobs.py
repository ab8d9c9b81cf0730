"""Trainer test inputs: a small captioned dataset and a training job over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anime_pipeline.config.schema import TrainerSettings
from anime_pipeline.training.base import TrainingJob
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.lora_keys import BaseModel

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


def make_job(dataset: TrainingDataset, base: BaseModel, **settings) -> TrainingJob:
    defaults = {"epochs": 3, "repeats": 2, "rank": 4, "seed": 7}
    return TrainingJob("mio", dataset, base, TrainerSettings(**{**defaults, **settings}))
