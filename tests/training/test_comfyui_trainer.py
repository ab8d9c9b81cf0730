"""trainer: comfyui against the fake server with 0.8.0's (and 0.3.64's) training nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.training.artifact import check_epoch_keys
from anime_pipeline.training.base import CancelToken, TrainingProgress
from anime_pipeline.training.comfyui_trainer import ComfyUITrainer, saved_lora
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.errors import (
    LoraKeyMismatch,
    MalformedTrainerOutput,
    TrainerConfigError,
    TrainerUnavailable,
    TrainingCancelled,
    TrainingError,
    TrainingFailed,
)
from anime_pipeline.training.lora_keys import BaseModel
from anime_pipeline.training.safetensors_io import read_header
from tests.services.fake_comfyui_training import FakeTrainingComfyUI
from tests.training.jobs import CAPTIONS, make_job


@pytest.fixture(params=["0.8.0", "0.3.64"])
def server(request: pytest.FixtureRequest, sd15_checkpoint: Path):
    with FakeTrainingComfyUI(line=request.param, checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        yield fake


def trainer(fake: FakeTrainingComfyUI) -> ComfyUITrainer:
    return ComfyUITrainer(fake.url, gpu="0", poll_interval=0.05)


def test_every_epoch_continues_the_last_and_comes_back_through_view(server, dataset: TrainingDataset,
                                                                      sd15: BaseModel, tmp_path: Path):
    events: list[TrainingProgress] = []
    outcome = trainer(server).train(make_job(dataset, sd15), tmp_path / "work", progress=events.append)
    assert [(e.epoch, e.steps) for e in outcome.epochs] == [(1, 8), (2, 16), (3, 24)]  # 4 images × 2 repeats
    names = [e.server_lora_name for e in outcome.epochs]
    assert all(n.startswith("anime_pipeline/mio-") and n.endswith(f"_{s}_steps_00001_.safetensors")
               for n, s in zip(names, (8, 16, 24)))
    assert [run["existing_lora"] for run in server.trained] == ["[None]", *names[:2]]
    assert [run["seed"] for run in server.trained] == [7, 8, 9]  # every epoch draws new noise
    assert server.trained[0]["captions"] == CAPTIONS  # uploaded with the images, matched by name
    for checkpoint in outcome.epochs:  # byte-identical to what the server saved
        saved = saved_lora(f"loras/{checkpoint.server_lora_name.rsplit('_', 4)[0]}", checkpoint.steps)
        assert checkpoint.path.read_bytes() == server.files[("output", saved.subfolder, saved.filename)]
    assert all(key.startswith("diffusion_model.") for key in read_header(outcome.epochs[-1].path).tensors)
    assert check_epoch_keys(outcome, sd15)[-1].ok
    assert [p.step for p in outcome.loss] == list(range(1, 25)) and [p.epoch for p in outcome.loss][::8] == [1, 2, 3]
    assert outcome.loss[-1].loss < outcome.loss[0].loss
    assert [e.step for e in events] == list(range(1, 25)) and events[-1].total_steps == 24
    assert [e.epoch for e in events][::8] == [1, 2, 3]
    assert outcome.trainer.version == server.system_stats["system"]["comfyui_version"]
    assert outcome.trainer.device == "cpu" and outcome.trainer.backend == "comfyui"
    assert outcome.timings.trainer_s > 0 and outcome.timings.overhead_s > 0
    assert outcome.settings_used["alpha"] == "1" and outcome.settings_used["steps_per_epoch"] == "8"


def test_cancel_interrupts_the_training_prompt(sd15_checkpoint: Path, dataset: TrainingDataset, sd15: BaseModel,
                                               tmp_path: Path):
    token = CancelToken()
    with FakeTrainingComfyUI(train_step_time=0.2, checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        def on_progress(event: TrainingProgress) -> None:
            if event.step == 2:
                token.cancel()  # from inside the run, as a Dagster run termination would

        with pytest.raises(TrainingCancelled, match="cancelled"):
            trainer(fake).train(make_job(dataset, sd15), tmp_path, progress=on_progress, cancel=token)
        assert fake.interrupts and fake.trained == []  # interrupted mid-epoch: nothing was saved
        assert fake.prompt_posts == 1


def test_a_failing_training_node_is_a_training_failure(sd15_checkpoint: Path, dataset: TrainingDataset,
                                                       sd15: BaseModel, tmp_path: Path):
    with FakeTrainingComfyUI(fail_node="4", fail_exception_type="torch.OutOfMemoryError",
                             fail_message="CUDA out of memory. Tried to allocate 2.00 GiB",
                             checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        with pytest.raises(TrainingFailed, match=r"node 4 \(TrainLoraNode\).*CUDA out of memory"):
            trainer(fake).train(make_job(dataset, sd15), tmp_path)


@pytest.mark.parametrize("text", ["not json", '{"loss": []}', '{"loss": [0.1, "x"]}', "[1, 2]"])
def test_a_malformed_loss_map_is_a_typed_error(sd15_checkpoint: Path, dataset: TrainingDataset, sd15: BaseModel,
                                               tmp_path: Path, text: str):
    with FakeTrainingComfyUI(loss_text=text, checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        with pytest.raises(MalformedTrainerOutput, match="PreviewAny node 6"):
            trainer(fake).train(make_job(dataset, sd15, epochs=1), tmp_path)


@pytest.mark.parametrize("settings, message", [
    ({"alpha": 8.0}, "training.alpha: ComfyUI's TrainLoraNode always uses alpha 1"),
    ({"mixed_precision": "fp16"}, "training.mixed_precision"),
])
def test_settings_comfyui_cannot_honour_are_refused_before_anything_is_sent(
        dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path, settings: dict, message: str):
    with FakeTrainingComfyUI() as fake:
        with pytest.raises(TrainerConfigError, match=message):
            trainer(fake).train(make_job(dataset, sd15, **settings), tmp_path)
        assert fake.prompt_posts == 0 and fake.inputs == {}


def test_a_checkpoint_the_server_lacks_and_an_optimizer_it_lacks_are_config_errors(
        dataset: TrainingDataset, sd15: BaseModel, sd15_checkpoint: Path, tmp_path: Path):
    with FakeTrainingComfyUI(line="0.3.64") as fake:  # the 0.3.64 recording lists no checkpoints
        with pytest.raises(TrainerConfigError, match="ckpt_name.*v1-5-pruned-emaonly-fp16.safetensors"):
            trainer(fake).train(make_job(dataset, sd15), tmp_path)
    with FakeTrainingComfyUI(checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        with pytest.raises(TrainerConfigError, match="optimizer.*'Lion'"):
            trainer(fake).train(make_job(dataset, sd15, optimizer="Lion"), tmp_path)


def test_a_server_without_training_nodes_is_unavailable(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    with FakeTrainingComfyUI() as fake:
        del fake.catalogue["TrainLoraNode"]
        with pytest.raises(TrainerUnavailable, match="offers no LoRA training graph.*TrainLoraNode"):
            trainer(fake).train(make_job(dataset, sd15), tmp_path)


def test_keys_the_model_lacks_are_caught_before_the_lora_is_used(sd15_checkpoint: Path, dataset: TrainingDataset,
                                                                  sd15: BaseModel, tmp_path: Path):
    with FakeTrainingComfyUI(lora_keys="mismatch", checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        outcome = trainer(fake).train(make_job(dataset, sd15, epochs=1), tmp_path)
    with pytest.raises(LoraKeyMismatch) as caught:
        check_epoch_keys(outcome, sd15)
    assert set(caught.value.dropped) == {"diffusion_model.input_blocks.99.1.proj_in.lora_down.weight",
                                         "diffusion_model.input_blocks.99.1.proj_in.lora_up.weight"}
    assert isinstance(caught.value, TrainingError)


def test_a_catalogue_cached_before_the_training_nodes_were_installed_is_read_again(
        sd15_checkpoint: Path, dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    from anime_pipeline.services.comfyui import client as comfyui_client

    with FakeTrainingComfyUI(checkpoints={sd15_checkpoint.name: sd15_checkpoint}) as fake:
        # what this process read from the same URL before the server restarted with the training pack
        comfyui_client._CATALOGUES[fake.url] = {"CheckpointLoaderSimple": {}, "KSampler": {}}
        try:
            outcome = trainer(fake).train(make_job(dataset, sd15, epochs=1), tmp_path / "work")
        finally:
            comfyui_client._CATALOGUES.pop(fake.url, None)
    assert len(outcome.epochs) == 1
