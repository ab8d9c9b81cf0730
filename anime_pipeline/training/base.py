"""What every LoRA trainer takes and gives: the Trainer protocol and its typed values.

    trainer = KohyaTrainer(install)                  # or ComfyUITrainer(url, ...)
    outcome = trainer.train(job, work_dir, progress=log_it, cancel=token)
    outcome.epochs        # one LoRA file per epoch, in work_dir
    outcome.loss          # the loss history as the trainer reported it

A trainer writes only under `work_dir`; turning the outcome into the stored artifact (metadata,
the chosen epoch, plot, key check) is `artifact.write_lora_artifact`. `progress` may be called from
another thread (kohya's output readers); if it raises, the training stops and fails.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from anime_pipeline.config.schema import TrainerSettings
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.errors import TrainingCancelled
from anime_pipeline.training.lora_keys import BaseModel


@dataclass(frozen=True)
class ValidationPrompt:
    """One fixed render used to judge an epoch (and, for kohya, sampled during training)."""

    prompt: str
    negative: str
    seed: int
    width: int
    height: int
    steps: int = 28
    cfg: float = 7.0
    variation: tuple[str, str, str] = ("", "", "")  # outfit, expression, pose


@dataclass(frozen=True)
class TrainingJob:
    character: str  # slug: the LoRA's file stem
    dataset: TrainingDataset
    base: BaseModel
    settings: TrainerSettings
    sample_prompts: tuple[ValidationPrompt, ...] = ()


@dataclass(frozen=True)
class TrainingProgress:
    epoch: int
    epochs: int
    step: int  # steps done in the whole run
    total_steps: int | None
    loss: float | None = None  # as the trainer reports it (kohya: avr_loss)

    @property
    def percent(self) -> float | None:
        return 100.0 * self.step / self.total_steps if self.total_steps else None


ProgressSink = Callable[[TrainingProgress], None]


@dataclass(frozen=True)
class TrainerInfo:
    backend: str  # "comfyui" | "kohya"
    label: str  # e.g. "ComfyUI 0.8.0 TrainLoraNode at http://gpu-0:8188"
    device: str  # e.g. "cuda:0 NVIDIA RTX 4090 : cudaMallocAsync", "cuda:1"
    version: str = ""


@dataclass(frozen=True)
class EpochCheckpoint:
    epoch: int
    steps: int  # cumulative optimisation steps at the end of this epoch
    path: Path  # the file as the trainer wrote it, under work_dir
    server_lora_name: str | None = None  # ComfyUI: LoraLoader's name for it on the training server
    samples: tuple[Path, ...] = ()  # kohya: sample images rendered with this epoch


@dataclass(frozen=True)
class LossPoint:
    step: int
    epoch: int
    loss: float


@dataclass(frozen=True)
class TrainingTimings:
    """Seconds; `trainer_s` is the trainer's own work (server execution, the process running),
    the rest is ours."""

    prepare_s: float = 0.0  # dataset export / upload, graph or command building
    trainer_s: float = 0.0
    wait_s: float = 0.0  # queueing, polling, reading progress
    collect_s: float = 0.0  # downloads, finding and checking the epoch files
    total_s: float = 0.0

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.trainer_s


@dataclass(frozen=True)
class TrainingOutcome:
    trainer: TrainerInfo
    epochs: tuple[EpochCheckpoint, ...]
    loss: tuple[LossPoint, ...]
    loss_kind: str  # what the numbers are, e.g. "avr_loss (kohya's moving average of step losses)"
    timings: TrainingTimings
    settings_used: dict[str, str] = field(default_factory=dict)  # what the trainer ran with, as strings
    command: tuple[str, ...] = ()  # kohya's argv; the graphs' hashes for ComfyUI
    log_tail: tuple[str, ...] = ()

    def epoch(self, number: int) -> EpochCheckpoint:
        for checkpoint in self.epochs:
            if checkpoint.epoch == number:
                return checkpoint
        raise KeyError(f"training produced no epoch {number} (epochs: {[e.epoch for e in self.epochs]})")


class CancelToken:
    """Cancel a training from any thread: callbacks registered by the trainer (kill the process
    group, interrupt the prompt) run at once."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` on cancel (now, if already cancelled); returns the way to unregister it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def raise_if_cancelled(self, what: str) -> None:
        if self.cancelled:
            raise TrainingCancelled(f"{what}: cancelled")


class Trainer(Protocol):
    @property
    def info(self) -> TrainerInfo: ...

    def train(self, job: TrainingJob, work_dir: Path, progress: ProgressSink | None = None,
              cancel: CancelToken | None = None) -> TrainingOutcome: ...


def steps_per_epoch(images: int, settings: TrainerSettings) -> int:
    """kohya's epoch: every image `repeats` times, in batches."""
    return -(-images * settings.repeats // settings.batch_size)
