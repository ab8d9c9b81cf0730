"""The training dataset: images with one caption each, as approved_dataset writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.training.dataset import TrainingDataset, TrainingImage
from anime_pipeline.training.errors import DatasetError
from tests.training.jobs import CAPTIONS, write_dataset


def test_reads_images_and_captions_sorted(tmp_path: Path):
    dataset = TrainingDataset.from_folder(write_dataset(tmp_path / "d"))
    assert [i.name for i in dataset.items] == ["mio-0000", "mio-0001", "mio-0002", "mio-0003"]
    assert [i.caption for i in dataset.items] == CAPTIONS  # the trailing newline is not part of it


def test_a_missing_caption_names_the_image(tmp_path: Path):
    folder = write_dataset(tmp_path / "d")
    (folder / "mio-0002.txt").unlink()
    with pytest.raises(DatasetError, match=r"no caption file \(<name>.txt\) for mio-0002.png"):
        TrainingDataset.from_folder(folder)


@pytest.mark.parametrize("name, caption, reason", [
    ("my image.png", "mio", "file names must be letters"),
    ("a.gif", "mio", "not an image type"),
    ("a.png", "  ", "one non-empty line"),
    ("a.png", "mio\nsecond line", "one non-empty line"),
])
def test_unusable_items_are_refused_naming_the_file(tmp_path: Path, name: str, caption: str, reason: str):
    with pytest.raises(DatasetError, match=reason) as caught:
        TrainingDataset((TrainingImage(tmp_path / name, caption),))
    assert name in str(caught.value)


def test_empty_and_duplicate_names_are_refused(tmp_path: Path):
    with pytest.raises(DatasetError, match="approve images before training"):
        TrainingDataset(())
    with pytest.raises(DatasetError, match="share the name 'a'"):
        TrainingDataset((TrainingImage(tmp_path / "a.png", "x"), TrainingImage(tmp_path / "a.jpg", "y")))


def test_hash_follows_pixels_and_captions(tmp_path: Path):
    folder = write_dataset(tmp_path / "d")
    first = TrainingDataset.from_folder(folder).sha256()
    assert TrainingDataset.from_folder(folder).sha256() == first
    (folder / "mio-0001.txt").write_text("mio, other caption")
    second = TrainingDataset.from_folder(folder).sha256()
    (folder / "mio-0001.png").write_bytes((folder / "mio-0000.png").read_bytes())
    assert len({first, second, TrainingDataset.from_folder(folder).sha256()}) == 3


def test_export_lays_out_images_with_captions(tmp_path: Path, dataset: TrainingDataset):
    out = dataset.export(tmp_path / "export")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"mio-{i:04d}.png" for i in range(4)] + [f"mio-{i:04d}.txt" for i in range(4)])
    assert TrainingDataset.from_folder(out).sha256() == dataset.sha256()
