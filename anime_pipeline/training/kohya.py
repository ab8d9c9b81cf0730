"""trainer: kohya — kohya-ss/sd-scripts `train_network.py` (`sdxl_train_network.py` for SDXL) as a
subprocess of the configured checkout and Python.

The dataset is exported as an image folder with `.txt` captions and a dataset TOML; every epoch
is saved (`--save_every_n_epochs 1`: `<name>-000001.safetensors` ... and `<name>.safetensors` for
the last) and samples the validation prompts (`--sample_prompts`). Progress is read from the
console (kohya_log.py). The process runs in its own session, so cancelling or a timeout ends the
whole group (accelerate and the training process it starts, dataloader workers), SIGTERM first,
SIGKILL after a grace period.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from anime_pipeline.storage import write_text
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
    ValidationPrompt,
    steps_per_epoch,
)
from anime_pipeline.training.environment import KohyaInstall
from anime_pipeline.training.errors import (
    MalformedTrainerOutput,
    TrainerConfigError,
    TrainerUnavailable,
    TrainingCancelled,
    TrainingFailed,
    TrainingTimeout,
)
from anime_pipeline.training.kohya_log import KohyaLog, StepReport
from anime_pipeline.training.safetensors_io import read_header

KOHYA_ALPHA = 1.0  # --network_alpha's default
TERMINATE_GRACE_S = 15.0
_READ_CHUNK = 1 << 16


def dataset_toml(image_dir: Path, job: TrainingJob, resolution: int) -> str:
    """kohya's dataset config (docs/config_README-en.md): one subset, captions in `.txt`, the
    trigger word (first caption token, the slug) kept in place when captions are shuffled."""
    settings = job.settings
    lines = [
        "[general]", "shuffle_caption = true", 'caption_extension = ".txt"', "keep_tokens = 1", "",
        "[[datasets]]", f"resolution = {resolution}", f"batch_size = {settings.batch_size}", "enable_bucket = true",
        f"min_bucket_reso = {resolution // 2}", f"max_bucket_reso = {resolution * 2}", "bucket_reso_steps = 64",
        "bucket_no_upscale = true", "",
        "  [[datasets.subsets]]", f"  image_dir = {_toml_string(str(image_dir))}",
        f"  num_repeats = {settings.repeats}", f"  class_tokens = {_toml_string(job.character)}",
    ]
    return "\n".join(lines) + "\n"


def _toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters (DEL too) escaped."""
    escaped = "".join(f"\\{ch}" if ch in '"\\' else ch if ch == "\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F)
                      else f"\\u{ord(ch):04X}" for ch in text)
    return f'"{escaped}"'


def sample_prompts(prompts: Sequence[ValidationPrompt]) -> str:
    """The `--sample_prompts` .txt format: one prompt a line, options after ` --`."""
    return "".join(f"{_one_line(p.prompt)} --n {_one_line(p.negative)} --w {p.width} --h {p.height} --d {p.seed} "
                   f"--l {p.cfg:g} --s {p.steps}\n" for p in prompts)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace(" --", " -").strip()


def kohya_command(install: KohyaInstall, job: TrainingJob, dataset_config: Path, output_dir: Path,
                  prompts_file: Path | None) -> list[str]:
    """The argv, flags as train_network.py declares them (protocols.md §4, protocols-more.md §4)."""
    settings = job.settings
    sdxl = job.base.architecture == "sdxl"
    script = install.script(sdxl)
    launcher = ([str(install.python), "-m", "accelerate.commands.launch", "--num_cpu_threads_per_process", "1"]
                if install.launcher == "accelerate" else [str(install.python)])
    args = [
        f"--pretrained_model_name_or_path={Path(job.base.path or '').absolute()}", f"--dataset_config={dataset_config}",
        f"--output_dir={output_dir}", f"--output_name={job.character}", "--save_model_as=safetensors",
        "--network_module=networks.lora", f"--network_dim={settings.rank}",
        f"--network_alpha={settings.alpha if settings.alpha is not None else KOHYA_ALPHA:g}",
        f"--learning_rate={settings.learning_rate:g}", f"--optimizer_type={settings.optimizer}",
        "--lr_scheduler=constant", f"--max_train_epochs={settings.epochs}", "--save_every_n_epochs=1",
        f"--mixed_precision={settings.mixed_precision}", "--gradient_checkpointing", "--caption_extension=.txt",
        f"--seed={settings.seed}", "--sdpa",
    ]
    if not settings.train_text_encoder:
        args.append("--network_train_unet_only")
    if sdxl and settings.mixed_precision == "fp16":
        args.append("--no_half_vae")  # the SDXL VAE overflows in fp16
    if prompts_file is not None:
        args += ["--sample_every_n_epochs=1", f"--sample_prompts={prompts_file}", "--sample_sampler=euler_a"]
    return [*launcher, str(script), *args]


class KohyaTrainer:
    def __init__(self, install: KohyaInstall, log: Callable[[str], None] | None = None) -> None:
        # kohya runs in its checkout, so every path it is given must be absolute (not resolved:
        # a virtualenv's python is a symlink that must stay one)
        self.install = dataclasses.replace(install, sd_scripts=install.sd_scripts.absolute(),
                                           python=install.python.absolute())
        self._log = log or (lambda message: None)

    @property
    def info(self) -> TrainerInfo:
        revision = _git_revision(self.install.sd_scripts)
        device = "cpu" if self.install.gpu == "cpu" else f"cuda:{self.install.gpu}"
        label = f"kohya-ss/sd-scripts{f' @{revision}' if revision else ''} at {self.install.sd_scripts}"
        return TrainerInfo("kohya", label, device, revision)

    def train(self, job: TrainingJob, work_dir: Path, progress: ProgressSink | None = None,
              cancel: CancelToken | None = None) -> TrainingOutcome:
        cancel = cancel or CancelToken()
        started = time.monotonic()
        self._check(job)
        work_dir = Path(work_dir).absolute()
        output_dir = work_dir / "output"
        image_dir = job.dataset.export(work_dir / "dataset" / "images")
        resolution = job.settings.resolution or (1024 if job.base.architecture == "sdxl" else 512)
        config = write_text(work_dir / "dataset" / "dataset.toml", dataset_toml(image_dir, job, resolution))
        prompts = (write_text(work_dir / "sample_prompts.txt", sample_prompts(job.sample_prompts))
                   if job.sample_prompts else None)
        argv = kohya_command(self.install, job, config, output_dir, prompts)
        per_epoch = steps_per_epoch(len(job.dataset.items), job.settings)
        console = KohyaLog(on_step=_progress(progress, job.settings.epochs, per_epoch))
        prepared = time.monotonic()
        returncode, stopped = self._run(argv, console, cancel)
        ran = time.monotonic()
        if console.failure is not None:
            raise TrainingFailed(f"kohya training of {job.character} was stopped: the progress callback raised "
                                 f"{console.failure!r}") from console.failure
        if stopped == "cancelled":
            raise TrainingCancelled(f"kohya training of {job.character} was cancelled (process group stopped)")
        if stopped == "timeout":
            raise TrainingTimeout(f"kohya training of {job.character} ran past {self.install.timeout_s:g}s; "
                                  "the process group was stopped")
        script = self.install.script(job.base.architecture == "sdxl").name
        if returncode != 0:
            raise TrainingFailed(f"kohya {script} exited with status {returncode}", list(console.tail))
        if console.total_steps:  # kohya's own count: its epochs are batches per epoch / accumulation
            per_epoch = max(1, console.total_steps // job.settings.epochs)
        epochs = _collect(job, output_dir, per_epoch)
        losses = tuple(LossPoint(step, min(job.settings.epochs, (step - 1) // per_epoch + 1), loss)
                       for step, loss in sorted(console.losses.items()))
        done = time.monotonic()
        settings_used = {"steps_per_epoch": str(per_epoch), "alpha": f"{job.settings.alpha or KOHYA_ALPHA:g}",
                         "resolution": str(resolution), "script": script}
        return TrainingOutcome(
            self.info, epochs, losses, "avr_loss (kohya's moving average of the step losses, as its progress bar drew it)",
            TrainingTimings(prepared - started, ran - prepared, 0.0, done - ran, done - started),
            settings_used, tuple(argv), tuple(console.tail))

    def _check(self, job: TrainingJob) -> None:
        script = self.install.script(job.base.architecture == "sdxl")
        if not script.is_file():
            raise TrainerUnavailable(f"kohya: {script} does not exist; ANIME_PIPELINE_KOHYA_DIR must be an "
                                     "sd-scripts checkout")
        if not self.install.python.is_file():
            raise TrainerUnavailable(f"kohya: the Python {self.install.python} does not exist "
                                     "(ANIME_PIPELINE_KOHYA_PYTHON)")
        if job.base.path is None or not job.base.path.is_file():
            raise TrainerConfigError(f"kohya trains from a local checkpoint file; {job.base.name} has none "
                                     f"({job.base.source}); put it in ANIME_PIPELINE_BASE_MODELS")

    def _run(self, argv: list[str], console: KohyaLog, cancel: CancelToken) -> tuple[int, str | None]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.install.gpu != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = self.install.gpu
        cancel.raise_if_cancelled("kohya training")
        self._log(f"kohya: {' '.join(argv)}")
        process = subprocess.Popen(argv, cwd=self.install.sd_scripts, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        readers = [threading.Thread(target=_pump, args=(stream, name, console), daemon=True,
                                    name=f"kohya-{name}")
                   for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))]
        for reader in readers:
            reader.start()
        stopped: list[str] = []

        def stop(reason: str) -> None:
            stopped.append(reason)
            threading.Thread(target=_stop_group, args=(process,), daemon=True, name="kohya-stop").start()

        console.on_failure = lambda: stop("progress callback failed")
        unregister = cancel.on_cancel(lambda: stop("cancelled"))
        try:
            try:
                returncode = process.wait(timeout=self.install.timeout_s)
            except subprocess.TimeoutExpired:
                stop("timeout")
                returncode = process.wait()
        finally:
            unregister()
            _kill_group(process.pid)  # whatever the training process left running
            process.wait()  # reaped, also when the step itself was interrupted
            for reader in readers:
                reader.join(timeout=10)
        return returncode, (stopped[0] if stopped else None)


def _pump(stream: IO[bytes] | None, name: str, console: KohyaLog) -> None:
    assert stream is not None
    with stream:
        while chunk := os.read(stream.fileno(), _READ_CHUNK):
            console.feed(name, chunk)
    console.close(name)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL if it has not ended after the grace period."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _progress(sink: ProgressSink | None, epochs: int, per_epoch: int) -> Callable[[StepReport], None]:
    def report(step: StepReport) -> None:
        if sink is not None:
            per = max(1, step.total // epochs) if step.total >= epochs else per_epoch
            sink(TrainingProgress(min(epochs, (step.step - 1) // per + 1), epochs, step.step, step.total,
                                  step.avr_loss))
    return report


def _collect(job: TrainingJob, output_dir: Path, per_epoch: int) -> tuple[EpochCheckpoint, ...]:
    """Every epoch's file, as kohya names them, each checked against what was asked."""
    name, epochs = job.character, job.settings.epochs
    samples = sorted((output_dir / "sample").glob(f"{name}_e*.png")) if (output_dir / "sample").is_dir() else []
    found = []
    for epoch in range(1, epochs + 1):
        path = output_dir / (f"{name}-{epoch:06d}.safetensors" if epoch < epochs else f"{name}.safetensors")
        if not path.is_file():
            present = sorted(p.name for p in output_dir.glob("*.safetensors")) if output_dir.is_dir() else []
            raise MalformedTrainerOutput(f"kohya finished but wrote no {path.name} for epoch {epoch} "
                                         f"(in {output_dir}: {', '.join(present) or 'nothing'})")
        metadata = read_header(path).metadata
        _check_metadata(path, metadata, job, epoch)
        steps = int(metadata["ss_steps"]) if metadata.get("ss_steps", "").isdigit() else epoch * per_epoch
        mine = tuple(p for p in samples if p.name.startswith(f"{name}_e{epoch:06d}_"))
        found.append(EpochCheckpoint(epoch, steps, path, None, mine))
    return tuple(found)


def _check_metadata(path: Path, metadata: dict[str, str], job: TrainingJob, epoch: int) -> None:
    """kohya records what it trained with in ss_*: it must be what we asked for."""
    settings = job.settings
    wanted = {"ss_network_dim": float(settings.rank), "ss_network_alpha": settings.alpha or KOHYA_ALPHA,
              "ss_learning_rate": settings.learning_rate, "ss_seed": float(settings.seed), "ss_epoch": float(epoch)}
    for key, value in wanted.items():
        if key not in metadata:
            continue  # older sd-scripts do not write every field
        try:
            recorded = float(metadata[key])
        except ValueError:
            recorded = float("nan")
        if abs(recorded - value) > 1e-9 * max(1.0, abs(value)):
            raise MalformedTrainerOutput(f"{path.name}: kohya recorded {key}={metadata[key]!r}, but {value:g} was "
                                         "asked for")


def _git_revision(folder: Path) -> str:
    """The checkout's commit, read from .git without running git."""
    head = folder / ".git" / "HEAD"
    try:
        text = head.read_text().strip()
        if text.startswith("ref: "):
            text = (folder / ".git" / text[5:]).read_text().strip()
    except OSError:
        return ""
    return text[:10] if re.fullmatch(r"[0-9a-f]{40}", text) else ""
