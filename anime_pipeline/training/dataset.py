"""The training set as trainers take it: images with a caption each, hashed as a whole.

`TrainingDataset.from_folder` reads the approved dataset as `approved_dataset` writes it
(`<id>.png` next to `<id>.txt`); `export` lays it out again for a trainer (kohya's image_dir,
the folder uploaded to ComfyUI's input/), so the captions a LoRA was trained on are exactly the
ones recorded with it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from anime_pipeline.storage import sha256_file, write_text
from anime_pipeline.training.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # what both trainers load
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class TrainingImage:
    image: Path
    caption: str

    @property
    def name(self) -> str:
        return self.image.stem


@dataclass(frozen=True)
class TrainingDataset:
    items: tuple[TrainingImage, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise DatasetError("(empty)", "no images: approve images before training")
        seen: set[str] = set()
        for item in self.items:
            if not SAFE_NAME.match(item.image.name):
                raise DatasetError(item.image, "file names must be letters, digits, '.', '_' or '-' (they are "
                                               "uploaded and passed to trainers as they are)")
            if item.image.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(item.image, f"not an image type the trainers load ({', '.join(IMAGE_SUFFIXES)})")
            if item.name in seen:
                raise DatasetError(item.image, f"two images share the name {item.name!r}; captions are matched by it")
            if not item.caption.strip() or "\n" in item.caption.strip():
                raise DatasetError(item.image, "the caption must be one non-empty line")
            seen.add(item.name)

    @classmethod
    def from_folder(cls, folder: Path | str) -> TrainingDataset:
        """Every image in `folder` with its `<stem>.txt` caption, sorted by name."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(folder, "not a folder")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        missing = [p.name for p in images if not p.with_suffix(".txt").is_file()]
        if missing:
            raise DatasetError(folder, f"no caption file (<name>.txt) for {', '.join(missing)}")
        return cls(tuple(TrainingImage(p, p.with_suffix(".txt").read_text(encoding="utf-8").strip()) for p in images))

    @property
    def captions(self) -> dict[str, str]:
        return {item.image.name: item.caption for item in self.items}

    def sha256(self) -> str:
        """Of every image's bytes and caption, by name: the same set trains the same LoRA."""
        digest = hashlib.sha256()
        for item in sorted(self.items, key=lambda i: i.image.name):
            digest.update(f"{item.image.name}\0{sha256_file(item.image)}\0{item.caption}\n".encode())
        return digest.hexdigest()

    def export(self, folder: Path | str) -> Path:
        """Copy the images into `folder` with a `<stem>.txt` caption each (what both trainers read)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for item in self.items:
            shutil.copyfile(item.image, folder / item.image.name)
            write_text(folder / f"{item.name}.txt", item.caption)
        return folder
