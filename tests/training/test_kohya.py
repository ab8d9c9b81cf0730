"""trainer: kohya against the train_network.py stand-in (tests/training/sd_scripts), which speaks the real CLI."""

from __future__ import annotations

import _thread
import dataclasses
import os
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from anime_pipeline.training import kohya
from anime_pipeline.training.base import (
    CancelToken,
    TrainingJob,
    TrainingProgress,
    ValidationPrompt,
)
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.environment import KohyaInstall
from anime_pipeline.training.errors import (
    MalformedTrainerOutput,
    TrainerConfigError,
    TrainerUnavailable,
    TrainingCancelled,
    TrainingFailed,
    TrainingTimeout,
)
from anime_pipeline.training.kohya import (
    KohyaTrainer,
    dataset_toml,
    kohya_command,
    sample_prompts,
)
from anime_pipeline.training.lora_keys import BaseModel, check_lora_keys
from anime_pipeline.training.safetensors_io import read_header, write_with_metadata
from tests.training.jobs import SD_SCRIPTS, make_job

INSTALL = KohyaInstall(SD_SCRIPTS, Path(sys.executable), "python", "cpu")
PROMPTS = (ValidationPrompt("mio, portrait, smiling\nexpression", "lowres --bad", 5, 64, 96, 20, 6.5),)


def with_prompts(job: TrainingJob) -> TrainingJob:
    return dataclasses.replace(job, sample_prompts=PROMPTS)


def test_command_uses_the_documented_flags_and_accelerate(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    install = KohyaInstall(Path("/opt/sd-scripts"), Path("/opt/sd-scripts/venv/bin/python"))
    argv = kohya_command(install, make_job(dataset, sd15, alpha=8.0, train_text_encoder=False),
                         tmp_path / "d.toml", tmp_path / "out", tmp_path / "p.txt")
    assert argv[:6] == ["/opt/sd-scripts/venv/bin/python", "-m", "accelerate.commands.launch",
                        "--num_cpu_threads_per_process", "1", "/opt/sd-scripts/train_network.py"]
    assert {"--network_dim=4", "--network_alpha=8", "--max_train_epochs=3", "--save_every_n_epochs=1",
            "--output_name=mio", "--caption_extension=.txt", "--seed=7", "--network_train_unet_only",
            "--sample_every_n_epochs=1", f"--sample_prompts={tmp_path / 'p.txt'}"} <= set(argv)


def test_dataset_toml_and_sample_prompts_in_kohya_formats(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    odd = tmp_path / 'img "x" \\ 😀\x7f\tend'  # quotes, a backslash, non-BMP, DEL, a tab: all survive
    config = tomllib.loads(dataset_toml(odd, make_job(dataset, sd15), 512))
    assert config["general"] == {"shuffle_caption": True, "caption_extension": ".txt", "keep_tokens": 1}
    assert config["datasets"][0]["resolution"] == 512 and config["datasets"][0]["batch_size"] == 1
    assert config["datasets"][0]["subsets"] == [{"image_dir": str(odd), "num_repeats": 2,
                                                 "class_tokens": "mio"}]
    assert sample_prompts(PROMPTS) == "mio, portrait, smiling expression --n lowres -bad --w 64 --h 96 --d 5 --l 6.5 --s 20\n"


@pytest.mark.parametrize("sdxl", [False, True], ids=["sd15", "sdxl"])
def test_trains_every_epoch_with_samples_progress_and_kohya_keys(dataset: TrainingDataset, sd15_checkpoint: Path,
                                                                 sdxl_checkpoint: Path, tmp_path: Path, sdxl: bool):
    base = BaseModel.from_checkpoint(sdxl_checkpoint if sdxl else sd15_checkpoint)
    events: list[TrainingProgress] = []
    outcome = KohyaTrainer(INSTALL).train(with_prompts(make_job(dataset, base)), tmp_path, progress=events.append)
    assert [(e.epoch, e.steps, e.path.name) for e in outcome.epochs] == [
        (1, 8, "mio-000001.safetensors"), (2, 16, "mio-000002.safetensors"), (3, 24, "mio.safetensors")]
    assert all(len(e.samples) == 1 and e.samples[0].name.endswith("_5.png") for e in outcome.epochs)
    script = "sdxl_train_network.py" if sdxl else "train_network.py"
    assert outcome.command[1].endswith(script) and outcome.settings_used["script"] == script
    keys = read_header(outcome.epochs[-1].path).tensors
    families = {key.split("_text_model")[0] if "_text_model" in key else key.split("_")[0] + "_" + key.split("_")[1]
                for key in keys}
    assert families == ({"lora_unet", "lora_te1", "lora_te2"} if sdxl else {"lora_unet", "lora_te"})
    assert check_lora_keys(outcome.epochs[-1].path, base).ok
    assert [p.step for p in outcome.loss] == list(range(1, 25)) and outcome.loss[8].epoch == 2
    assert [e.step for e in events] == list(range(1, 25)) and events[-1].epoch == 3
    assert events[-1].loss == outcome.loss[-1].loss
    assert outcome.trainer.backend == "kohya" and outcome.trainer.device == "cpu"
    assert outcome.timings.trainer_s > 0 and outcome.loss_kind.startswith("avr_loss")


def test_relative_paths_are_made_absolute_for_the_checkout(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    install = KohyaInstall(Path(os.path.relpath(SD_SCRIPTS, tmp_path)), Path(sys.executable), "python", "cpu")
    relative_base = dataclasses.replace(sd15, path=Path(os.path.relpath(sd15.path, tmp_path)))
    outcome = KohyaTrainer(install).train(make_job(dataset, relative_base, epochs=1), Path("work"))
    assert outcome.epochs[0].path == tmp_path / "work" / "output" / "mio.safetensors"


def test_a_crash_is_a_failure_with_kohyas_last_lines(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_KOHYA_FAIL_AT_STEP", "11")
    with pytest.raises(TrainingFailed, match="train_network.py exited with status 1") as caught:
        KohyaTrainer(INSTALL).train(make_job(dataset, sd15), tmp_path)
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB" in caught.value.log_tail
    assert "epoch 2/3" in caught.value.log_tail


def test_a_flag_the_script_does_not_know_is_refused_by_it(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    real = kohya.kohya_command
    monkeypatch.setattr(kohya, "kohya_command", lambda *a: [*real(*a), "--network_dims=4"])
    with pytest.raises(TrainingFailed) as caught:
        KohyaTrainer(INSTALL).train(make_job(dataset, sd15), tmp_path)
    assert any("unrecognized arguments: --network_dims=4" in line for line in caught.value.log_tail)


def wait_for_step(step: int, token: CancelToken):
    reached = threading.Event()

    def progress(event: TrainingProgress) -> None:
        if event.step >= step:
            reached.set()
            token.cancel()

    return progress, reached


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["sigterm", "sigkill"])
def test_cancel_ends_the_whole_process_group(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, ignore_sigterm: bool):
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_KOHYA_STEP_SECONDS", "0.2")
    monkeypatch.setenv("FAKE_KOHYA_CHILD_PIDFILE", str(pidfile))
    if ignore_sigterm:
        monkeypatch.setenv("FAKE_KOHYA_IGNORE_SIGTERM", "1")
        monkeypatch.setattr(kohya, "TERMINATE_GRACE_S", 0.5)
    token = CancelToken()
    progress, reached = wait_for_step(2, token)
    with pytest.raises(TrainingCancelled, match="process group stopped"):
        KohyaTrainer(INSTALL).train(make_job(dataset, sd15), tmp_path / "w", progress=progress, cancel=token)
    assert reached.is_set()
    child = int(pidfile.read_text())
    assert not alive(child)  # the worker it started went with it
    assert not (tmp_path / "w" / "output" / "mio.safetensors").exists()


def test_a_failing_progress_callback_stops_the_run(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_KOHYA_STEP_SECONDS", "0.2")

    def progress(event: TrainingProgress) -> None:
        raise RuntimeError("the log is gone")

    with pytest.raises(TrainingFailed, match="progress callback raised RuntimeError") as caught:
        KohyaTrainer(INSTALL).train(make_job(dataset, sd15), tmp_path, progress=progress)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert not (tmp_path / "output" / "mio.safetensors").exists()  # stopped long before the end


def test_an_interrupt_of_the_step_kills_the_group_too(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    """A terminated Dagster run interrupts the step's thread (KeyboardInterrupt-like), without a cancel."""
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_KOHYA_STEP_SECONDS", "0.2")
    monkeypatch.setenv("FAKE_KOHYA_CHILD_PIDFILE", str(pidfile))

    def progress(event: TrainingProgress) -> None:
        if event.step == 2:
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        KohyaTrainer(INSTALL).train(make_job(dataset, sd15), tmp_path / "w", progress=progress)
    assert not alive(int(pidfile.read_text()))


def test_a_run_past_its_timeout_is_stopped(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_KOHYA_STEP_SECONDS", "5")
    install = dataclasses.replace(INSTALL, timeout_s=1.0)
    with pytest.raises(TrainingTimeout, match="ran past 1s"):
        KohyaTrainer(install).train(make_job(dataset, sd15), tmp_path)


def test_what_kohya_needs_is_checked_first(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    with pytest.raises(TrainerUnavailable, match="nowhere/train_network.py does not exist"):
        KohyaTrainer(dataclasses.replace(INSTALL, sd_scripts=tmp_path / "nowhere")).train(make_job(dataset, sd15), tmp_path)
    with pytest.raises(TrainerUnavailable, match="the Python .* does not exist"):
        KohyaTrainer(dataclasses.replace(INSTALL, python=tmp_path / "py")).train(make_job(dataset, sd15), tmp_path)
    names_only = dataclasses.replace(sd15, path=None, source="module list m.txt")
    with pytest.raises(TrainerConfigError, match="local checkpoint file.*module list m.txt"):
        KohyaTrainer(INSTALL).train(make_job(dataset, names_only), tmp_path)


def test_files_that_are_not_what_was_asked_are_refused(dataset: TrainingDataset, sd15: BaseModel, tmp_path: Path):
    job = make_job(dataset, sd15, epochs=2)
    outcome = KohyaTrainer(INSTALL).train(job, tmp_path)
    last = outcome.epochs[-1].path
    write_with_metadata(last, last, {**read_header(last).metadata, "ss_network_dim": "32"})
    with pytest.raises(MalformedTrainerOutput, match="mio.safetensors: kohya recorded ss_network_dim='32', but 4"):
        kohya._collect(job, tmp_path / "output", 8)
    last.unlink()
    with pytest.raises(MalformedTrainerOutput, match="wrote no mio.safetensors for epoch 2.*mio-000001.safetensors"):
        kohya._collect(job, tmp_path / "output", 8)
