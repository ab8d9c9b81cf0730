"""trainer: comfyui — a character LoRA from ComfyUI's native training nodes.

Through ComfyUIClient's public methods only: the dataset (images + `<name>.txt` captions) is
uploaded into one folder under the server's input/, then each epoch is one prompt: TrainLoraNode
trains an epoch's steps, continuing from the previous epoch's file (`existing_lora`, which the
server lists because ComfyUI registers output/loras as a LoRA folder), SaveLoRA writes
`output/loras/anime_pipeline/<character>-<run>-eNNN_<steps>_steps_00001_.safetensors`, and
PreviewAny puts the loss map and the step count into the history. Progress comes from the
WebSocket (TrainLoraNode drives a ProgressBar since 0.4); each epoch's file is fetched through
/view into the work folder. Cancelling interrupts the running prompt.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anime_pipeline.services import redact_url
from anime_pipeline.services.comfyui import (
    ComfyUIClient,
    ComfyUIError,
    ComfyUITimeout,
    ComfyUIUnavailable,
    Interrupted,
    OutputFile,
    ProgressEvent,
    PromptRejected,
    RunResult,
    WorkflowValidationError,
)
from anime_pipeline.render.workflows import graph_sha256
from anime_pipeline.training.base import (
    CancelToken,
    EpochCheckpoint,
    LossPoint,
    ProgressSink,
    TrainerInfo,
    TrainingJob,
    TrainingOutcome,
    TrainingProgress,
    TrainingTimings,
    steps_per_epoch,
)
from anime_pipeline.training.availability import LORA_SUBFOLDER
from anime_pipeline.training.comfyui_graph import NONE_LORA, TrainingGraph, TrainingValues, build_training_graph
from anime_pipeline.training.errors import (
    MalformedTrainerOutput,
    TrainerConfigError,
    TrainerUnavailable,
    TrainingCancelled,
    TrainingError,
    TrainingFailed,
    TrainingTimeout,
)

_DTYPES = {"bf16": "bf16", "no": "fp32"}  # mixed_precision -> TrainLoraNode's training/lora dtype
COMFYUI_ALPHA = 1.0  # TrainLoraNode creates every adapter with alpha 1.0


@dataclass(frozen=True)
class SavedLora:
    """Where SaveLoRA put an epoch: the /view address and LoraLoader's name for it."""

    subfolder: str
    filename: str

    @property
    def lora_name(self) -> str:
        return f"{self.subfolder.removeprefix('loras/')}/{self.filename}"


def saved_lora(prefix: str, steps: int) -> SavedLora:
    """SaveLoRA's file for a prefix and step count: `<prefix>_<steps>_steps_<counter:05>_.safetensors`;
    the counter is 1 because every prefix we use is new."""
    subfolder, _, base = prefix.rpartition("/")
    return SavedLora(subfolder, f"{base}_{steps}_steps_00001_.safetensors")


class ComfyUITrainer:
    def __init__(self, url: str, gpu: str = "", run_timeout_s: float = 6 * 3600, request_timeout: float = 30.0,
                 poll_interval: float = 1.0, log: Callable[[str], None] | None = None) -> None:
        """`run_timeout_s` bounds each epoch's prompt (queue + training); `gpu` is the card the
        server runs on, as the deployment names it (the server reports its device itself)."""
        self.url = url
        self.gpu = gpu
        self.run_timeout_s = run_timeout_s
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self._log = log or (lambda message: None)
        self._device = f"gpu {gpu}" if gpu else "the ComfyUI server's device"
        self._version = ""

    @property
    def info(self) -> TrainerInfo:
        label = f"ComfyUI {self._version or '(version not yet read)'} TrainLoraNode at {redact_url(self.url)}"
        return TrainerInfo("comfyui", label, self._device, self._version)

    def train(self, job: TrainingJob, work_dir: Path, progress: ProgressSink | None = None,
              cancel: CancelToken | None = None) -> TrainingOutcome:
        cancel = cancel or CancelToken()
        dtype = _check_settings(job)
        started = time.monotonic()
        per_epoch = steps_per_epoch(len(job.dataset.items), job.settings)
        reporter = _Reporter(progress, job.settings.epochs, per_epoch)
        client = ComfyUIClient(self.url, timeout=self.request_timeout, poll_interval=self.poll_interval,
                               log=self._log, progress=reporter.on_event)
        unregister = cancel.on_cancel(client.cancel)
        try:
            with client:
                return self._train(client, job, Path(work_dir), reporter, cancel, dtype, started)
        except TrainingError:
            raise
        except ComfyUIError as exc:
            raise _translate(exc, cancel, redact_url(self.url)) from exc
        finally:
            unregister()

    def _train(self, client: ComfyUIClient, job: TrainingJob, work_dir: Path, reporter: _Reporter,
               cancel: CancelToken, dtype: str, started: float) -> TrainingOutcome:
        stats = client.system_stats()
        self._version = stats.comfyui_version
        self._device = stats.devices[0].name if stats.devices else self._device
        folder = upload_dataset(client, job, work_dir / "dataset")
        prepared = time.monotonic()
        run_id = uuid.uuid4().hex[:8]
        epochs: list[EpochCheckpoint] = []
        losses: list[LossPoint] = []
        graphs: list[str] = []
        timing = {"trainer": 0.0, "wait": 0.0, "collect": 0.0}
        defaults: dict[str, Any] = {}
        previous = NONE_LORA
        for epoch in range(1, job.settings.epochs + 1):
            cancel.raise_if_cancelled(f"training {job.character}")
            reporter.epoch = epoch
            values = _values(job, folder, dtype, reporter.per_epoch, epoch, previous,
                             f"loras/{LORA_SUBFOLDER}/{job.character}-{run_id}-e{epoch:03d}")
            try:
                built = build_training_graph(client.object_info(), values)
            except TrainerUnavailable:  # the process's cached catalogue may predate the training nodes
                built = build_training_graph(client.object_info(refresh=True), values)
            reporter.node = built.trainer_node
            defaults.update(built.defaults_used)
            result = client.run(built.graph, work_dir / "runs" / f"epoch-{epoch:03d}", timeout=self.run_timeout_s)
            graphs.append(graph_sha256(built.graph))
            timing["trainer"] += result.timings.execute_s
            timing["wait"] += result.timings.submit_s + result.timings.queue_s
            fetched = time.monotonic()
            checkpoint, epoch_losses = self._collect(client, job, built, result, epoch, work_dir)
            timing["collect"] += time.monotonic() - fetched
            epochs.append(checkpoint)
            losses += [LossPoint(checkpoint.steps - len(epoch_losses) + i + 1, epoch, value)
                       for i, value in enumerate(epoch_losses)]
            previous = checkpoint.server_lora_name or NONE_LORA
        total = time.monotonic() - started
        settings_used = {"steps_per_epoch": str(reporter.per_epoch), "alpha": f"{COMFYUI_ALPHA:g}",
                         "training_dtype": dtype, "dataset_folder": folder,
                         **{f"server_default.{k}": str(v) for k, v in defaults.items()}}
        return TrainingOutcome(
            self.info, tuple(epochs), tuple(losses), "per-step training loss (TrainLoraNode loss map)",
            TrainingTimings(prepared - started, timing["trainer"], timing["wait"], timing["collect"], total),
            settings_used, tuple(f"graph sha256 {h}" for h in graphs))

    def _collect(self, client: ComfyUIClient, job: TrainingJob, built: TrainingGraph, result: RunResult,
                 epoch: int, work_dir: Path) -> tuple[EpochCheckpoint, list[float]]:
        losses = parse_loss_map(result.node_outputs, built.loss_node)
        steps = parse_steps(result.node_outputs, built.steps_node)
        saved = saved_lora(built.graph[built.save_node]["inputs"]["prefix"], steps)
        target = work_dir / "epochs" / f"{job.character}-e{epoch:03d}.safetensors"
        try:
            client.download(OutputFile(built.save_node, saved.filename, saved.subfolder, "output"), target)
        except ComfyUIError as exc:
            raise MalformedTrainerOutput(f"epoch {epoch}: {built.line.saver} reported nothing and its file "
                                         f"output/{saved.subfolder}/{saved.filename} cannot be fetched: {exc}") from exc
        return EpochCheckpoint(epoch, steps, target, saved.lora_name), losses


class _Reporter:
    """Turns the client's ProgressEvents of TrainLoraNode into TrainingProgress for the caller."""

    def __init__(self, sink: ProgressSink | None, epochs: int, per_epoch: int) -> None:
        self.sink = sink
        self.epochs = epochs
        self.per_epoch = per_epoch
        self.epoch = 1
        self.node = ""  # TrainLoraNode's id in the epoch's graph

    def on_event(self, event: ProgressEvent) -> None:
        if self.sink is None or event.node != self.node or event.max <= 0:
            return
        done = (self.epoch - 1) * self.per_epoch + min(event.value, self.per_epoch)
        self.sink(TrainingProgress(self.epoch, self.epochs, done, self.epochs * self.per_epoch))


def upload_dataset(client: ComfyUIClient, job: TrainingJob, staging: Path) -> str:
    """Upload images and captions into input/<folder>/ (one folder per dataset hash); the folder."""
    folder = f"anime_pipeline-{job.character}-{job.dataset.sha256()[:12]}"
    job.dataset.export(staging)
    for item in job.dataset.items:
        for path in (staging / item.image.name, staging / f"{item.name}.txt"):
            uploaded = client.upload_image(path, subfolder=folder, overwrite=True)
            if (uploaded.name, uploaded.subfolder) != (path.name, folder):
                raise MalformedTrainerOutput(f"uploading {path.name} to input/{folder}/ stored it as "
                                             f"{uploaded.subfolder}/{uploaded.name}; captions are matched by name")
    return folder


def parse_loss_map(outputs: Mapping[str, Any], node: str) -> list[float]:
    """The loss values PreviewAny printed for TrainLoraNode's loss map: {"loss": [...]}."""
    text = _preview_text(outputs, node, "the loss map")
    try:
        values = json.loads(text).get("loss")
    except (ValueError, AttributeError, RecursionError) as exc:
        raise MalformedTrainerOutput(f"PreviewAny node {node}: the loss map is not JSON of the form "
                                     f"{{\"loss\": [...]}}: {text[:200]!r}") from exc
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)):
        raise MalformedTrainerOutput(f"PreviewAny node {node}: the loss map holds no finite losses: {text[:200]!r}")
    return [float(v) for v in values]


def parse_steps(outputs: Mapping[str, Any], node: str) -> int:
    text = _preview_text(outputs, node, "the step count").strip()
    if not text.isdigit() or int(text) < 1:
        raise MalformedTrainerOutput(f"PreviewAny node {node}: the step count is not a positive integer: {text[:50]!r}")
    return int(text)


def _preview_text(outputs: Mapping[str, Any], node: str, what: str) -> str:
    texts = (outputs.get(node) or {}).get("text") if isinstance(outputs.get(node), Mapping) else None
    if not isinstance(texts, list) or len(texts) != 1 or not isinstance(texts[0], str):
        raise MalformedTrainerOutput(f"the history has no text from PreviewAny node {node} ({what}); got "
                                     f"{str(outputs.get(node))[:200]}")
    return texts[0]


def _check_settings(job: TrainingJob) -> str:
    settings = job.settings
    if settings.alpha is not None and settings.alpha != COMFYUI_ALPHA:
        raise TrainerConfigError(f"training.alpha: ComfyUI's TrainLoraNode always uses alpha {COMFYUI_ALPHA:g}; "
                                 f"unset it (got {settings.alpha:g}) or use trainer: kohya")
    if settings.mixed_precision not in _DTYPES:
        raise TrainerConfigError(f"training.mixed_precision: TrainLoraNode trains in bf16 or fp32 (bf16 or no), "
                                 f"not {settings.mixed_precision}")
    return _DTYPES[settings.mixed_precision]


def _values(job: TrainingJob, folder: str, dtype: str, per_epoch: int, epoch: int, previous: str,
            prefix: str) -> TrainingValues:
    settings = job.settings
    # each epoch's prompt draws its own noise: the same seed would repeat epoch 1's noise every epoch
    return TrainingValues(checkpoint=job.base.name, folder=folder, steps=per_epoch,
                          learning_rate=settings.learning_rate, rank=settings.rank, seed=settings.seed + epoch - 1,
                          prefix=prefix, batch_size=settings.batch_size, optimizer=settings.optimizer,
                          training_dtype=dtype, lora_dtype=dtype, existing_lora=previous)


def _translate(exc: ComfyUIError, cancel: CancelToken, server: str) -> TrainingError:
    if isinstance(exc, Interrupted) and cancel.cancelled:
        return TrainingCancelled(f"training on {server} was cancelled: {exc}")
    if isinstance(exc, ComfyUITimeout):
        return TrainingTimeout(f"training on {server}: {exc}")
    if isinstance(exc, (WorkflowValidationError, PromptRejected)):
        return TrainerConfigError(f"the training graph does not fit the ComfyUI server at {server}: {exc}")
    if isinstance(exc, ComfyUIUnavailable):
        return TrainerUnavailable(str(exc))
    return TrainingFailed(f"training on {server} failed: {exc}")
