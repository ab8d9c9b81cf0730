"""The stored LoRA artifact: stamped epochs, the chosen one, loss data and plot, captions, scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

from anime_pipeline.storage import sha256_file
from anime_pipeline.training import artifact as artifact_module
from anime_pipeline.training.artifact import loss_fell, write_lora_artifact
from anime_pipeline.training.base import LossPoint, ValidationPrompt
from anime_pipeline.training.comfyui_trainer import ComfyUITrainer
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.environment import KohyaInstall
from anime_pipeline.training.errors import LoraKeyMismatch
from anime_pipeline.training.kohya import KohyaTrainer
from anime_pipeline.training.lora_keys import BaseModel
from anime_pipeline.training.safetensors_io import verify_loadable
from anime_pipeline.training.selection import pick_best_epoch
from tests.services.fake_comfyui_training import FakeTrainingComfyUI
from tests.training.jobs import SD_SCRIPTS, make_job

INSTALL = KohyaInstall(SD_SCRIPTS, Path(sys.executable), "python", "cpu")
PROMPTS = (ValidationPrompt("mio, portrait", "lowres", 1, 64, 96), ValidationPrompt("mio, smiling", "lowres", 2, 64, 96))
IDENTITY = {1: [0.6, 0.62], 2: [0.81, 0.79], 3: [0.75, 0.77]}


def scorer(epoch, prompts):
    return IDENTITY[epoch.epoch]


def test_the_chosen_epoch_is_stored_with_every_epoch_and_the_record(dataset: TrainingDataset, sd15: BaseModel,
                                                                   tmp_path: Path):
    job = make_job(dataset, sd15)
    outcome = KohyaTrainer(INSTALL).train(job, tmp_path / "work")
    selection = pick_best_epoch(outcome.epochs, PROMPTS, scorer, "palette signature (test)")
    artifact = write_lora_artifact(outcome, job, selection, tmp_path / "lora")
    out = tmp_path / "lora"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "captions.json", "epochs/mio-e001.safetensors", "epochs/mio-e002.safetensors", "epochs/mio-e003.safetensors",
        "loss.json", "loss.png", "mio.safetensors", "selection.json"]
    assert artifact.chosen_epoch == 2 and artifact.path == out / "mio.safetensors"
    chosen, trained = load_file(str(artifact.path)), load_file(str(outcome.epoch(2).path))
    assert chosen.keys() == trained.keys() and all(np.array_equal(chosen[k], trained[k]) for k in chosen)
    keys, metadata = verify_loadable(artifact.path)
    assert metadata == artifact.metadata and artifact.sha256 == sha256_file(artifact.path)
    assert {k: metadata[k] for k in ("ap_trainer", "ap_base_checkpoint", "ap_rank", "ap_alpha", "ap_learning_rate",
                                     "ap_steps", "ap_epoch", "ap_seed", "ap_images")} == {
        "ap_trainer": "kohya", "ap_base_checkpoint": "v1-5-pruned-emaonly-fp16.safetensors", "ap_rank": "4",
        "ap_alpha": "1", "ap_learning_rate": "0.0001", "ap_steps": "16", "ap_epoch": "2", "ap_seed": "7", "ap_images": "4"}
    assert metadata["ap_base_checkpoint_sha256"] == sha256_file(sd15.path)
    assert metadata["ap_dataset_sha256"] == dataset.sha256()
    assert metadata["ss_network_module"] == "networks.lora" and metadata["ss_steps"] == "16"  # kohya's own kept
    assert "highest mean identity" in metadata["ap_chosen_by"]
    assert [e.identity for e in artifact.epochs] == [pytest.approx(0.61), pytest.approx(0.8), pytest.approx(0.76)]
    assert verify_loadable(artifact.epochs[0].path)[1]["ap_epoch"] == "1"
    loss = json.loads(artifact.loss_file.read_text())
    assert len(loss["points"]) == 24 and set(loss["epoch_mean"]) == {"1", "2", "3"} and loss["kind"].startswith("avr_loss")
    assert json.loads(artifact.captions_file.read_text())["captions"] == dataset.captions
    record = json.loads(artifact.selection_file.read_text())
    assert record["chosen_epoch"] == 2 and [e["scores"] for e in record["epochs"]] == list(IDENTITY.values())
    plot = np.asarray(Image.open(artifact.plot_file))
    assert plot.shape == (360, 720, 3) and ((plot[..., 2] > 150) & (plot[..., 0] < 80)).sum() > 100  # the curve
    assert artifact.served_name == f"mio-{artifact.sha256[:12]}.safetensors"


def test_a_comfyui_lora_gets_the_kohya_fields_that_apply(sd15_checkpoint: Path, dataset: TrainingDataset,
                                                        sd15: BaseModel, tmp_path: Path):
    job = make_job(dataset, sd15, epochs=1)
    with FakeTrainingComfyUI(checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        outcome = ComfyUITrainer(fake.url, poll_interval=0.05).train(job, tmp_path / "work")
    selection = pick_best_epoch(outcome.epochs, PROMPTS, lambda e, p: [0.7, 0.7], "x")
    metadata = write_lora_artifact(outcome, job, selection, tmp_path / "lora").metadata
    assert (metadata["ss_network_dim"], metadata["ss_network_alpha"], metadata["ss_steps"]) == ("4", "1", "8")
    assert metadata["ap_trainer"] == "comfyui" and metadata["ap_trainer_version"] == "0.8.0"
    assert "ss_network_module" not in metadata  # not a kohya network module


def test_mismatched_keys_fail_before_anything_is_replaced(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    job = make_job(dataset, sd15, epochs=2)
    good = KohyaTrainer(INSTALL).train(job, tmp_path / "good")
    write_lora_artifact(good, job, pick_best_epoch(good.epochs, PROMPTS, lambda e, p: [0.7, 0.7], "x"), tmp_path / "lora")
    before = {p: p.read_bytes() for p in (tmp_path / "lora").rglob("*") if p.is_file()}
    monkeypatch.setenv("FAKE_KOHYA_BAD_KEYS", "1")
    bad = KohyaTrainer(INSTALL).train(job, tmp_path / "bad")
    with pytest.raises(LoraKeyMismatch) as caught:
        write_lora_artifact(bad, job, pick_best_epoch(bad.epochs, PROMPTS, lambda e, p: [0.7, 0.7], "x"), tmp_path / "lora")
    assert "lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight" in caught.value.dropped
    assert {p: p.read_bytes() for p in (tmp_path / "lora").rglob("*") if p.is_file()} == before
    # a failure while the new folder is being written leaves the old one too, and no staging folder
    monkeypatch.setattr(artifact_module, "plot_loss", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_lora_artifact(good, job, pick_best_epoch(good.epochs, PROMPTS, lambda e, p: [0.7, 0.7], "x"), tmp_path / "lora")
    assert {p: p.read_bytes() for p in (tmp_path / "lora").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["approved", "bad", "good", "lora"]


@pytest.mark.parametrize("losses, fell", [
    ([(1, 0.2), (1, 0.18), (2, 0.1), (2, 0.12)], True),
    ([(1, 0.1), (1, 0.12), (2, 0.2), (2, 0.18)], False),
    ([(1, 0.2), (1, 0.1)], True),
])
def test_loss_fell_compares_first_and_last_epoch(losses, fell):
    points = [LossPoint(step, epoch, loss) for step, (epoch, loss) in enumerate(losses, 1)]
    assert loss_fell(points)[0] is fell
    assert loss_fell([])[0] is False
