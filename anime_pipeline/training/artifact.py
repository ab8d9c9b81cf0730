"""The stored LoRA: every epoch's file, the chosen one as `<character>.safetensors`, the loss history
(data and plot), the captions as trained and the epoch scores, written as one folder swap.

    reports = check_epoch_keys(outcome, job.base)              # before any validation render
    selection = pick_best_epoch(outcome.epochs, prompts, score, backend)
    artifact = write_lora_artifact(outcome, job, selection, paths.adapter(key))

Every file carries `__metadata__` naming the trainer, the base checkpoint and its hash, the
dataset hash, rank, alpha, learning rate, steps and seed (`ap_*`), plus kohya's `ss_*` fields:
kohya's own where kohya trained it, the same-meaning ones filled in for ComfyUI's files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from anime_pipeline.imaging import save_png
from anime_pipeline.storage import sha256_file, staged_dir, write_json
from anime_pipeline.training.base import EpochCheckpoint, LossPoint, TrainingJob, TrainingOutcome
from anime_pipeline.training.errors import LoraFileError
from anime_pipeline.training.lora_keys import BaseModel, KeyReport, require_lora_keys
from anime_pipeline.training.safetensors_io import read_header, verify_loadable, write_with_metadata
from anime_pipeline.training.selection import EpochSelection

LOSS_FILE, PLOT_FILE, CAPTIONS_FILE, SELECTION_FILE = "loss.json", "loss.png", "captions.json", "selection.json"
EPOCHS_DIR = "epochs"


@dataclass(frozen=True)
class StoredEpoch:
    epoch: int
    steps: int
    path: Path
    sha256: str
    identity: float | None  # mean over the validation renders


@dataclass(frozen=True)
class LoraArtifact:
    character: str
    path: Path  # <character>.safetensors: the chosen epoch
    sha256: str
    chosen_epoch: int
    epochs: tuple[StoredEpoch, ...]
    metadata: dict[str, str]
    key_report: KeyReport
    loss_file: Path
    plot_file: Path
    captions_file: Path
    selection_file: Path

    @property
    def served_name(self) -> str:
        """The file name for rendering servers: a new LoRA is a new name, so only this character's
        shot graphs change when it is retrained."""
        return f"{self.character}-{self.sha256[:12]}.safetensors"


def check_epoch_keys(outcome: TrainingOutcome, base: BaseModel) -> tuple[KeyReport, ...]:
    """Every epoch's keys against the base model; LoraKeyMismatch naming the dropped keys."""
    return tuple(require_lora_keys(checkpoint.path, base) for checkpoint in outcome.epochs)


def lora_metadata(outcome: TrainingOutcome, job: TrainingJob, checkpoint: EpochCheckpoint,
                  written: dict[str, str], dataset_sha256: str) -> dict[str, str]:
    settings = job.settings
    alpha = outcome.settings_used.get("alpha", f"{settings.alpha:g}" if settings.alpha else "")
    ours = {
        "ap_character": job.character, "ap_trainer": outcome.trainer.backend, "ap_trainer_label": outcome.trainer.label,
        "ap_trainer_version": outcome.trainer.version, "ap_device": outcome.trainer.device,
        "ap_base_checkpoint": job.base.name,
        "ap_base_checkpoint_sha256": job.base.sha256 or f"unknown ({job.base.source or 'no local copy'})",
        "ap_dataset_sha256": dataset_sha256, "ap_images": str(len(job.dataset.items)),
        "ap_rank": str(settings.rank), "ap_alpha": alpha, "ap_learning_rate": f"{settings.learning_rate:g}",
        "ap_steps": str(checkpoint.steps), "ap_epoch": str(checkpoint.epoch), "ap_epochs": str(settings.epochs),
        "ap_seed": str(settings.seed), "ap_optimizer": settings.optimizer, "ap_repeats": str(settings.repeats),
        "ap_batch_size": str(settings.batch_size), "ap_mixed_precision": settings.mixed_precision,
    }
    kohya_fields = {  # the ss_* fields that mean the same for any trainer; kohya's own are kept
        "ss_network_dim": str(settings.rank), "ss_network_alpha": alpha, "ss_learning_rate": f"{settings.learning_rate:g}",
        "ss_steps": str(checkpoint.steps), "ss_epoch": str(checkpoint.epoch), "ss_seed": str(settings.seed),
        "ss_sd_model_name": job.base.name, "ss_output_name": job.character,
        "ss_num_train_images": str(len(job.dataset.items) * settings.repeats), "ss_optimizer": settings.optimizer,
    }
    return {**kohya_fields, **written, **ours}


def write_lora_artifact(outcome: TrainingOutcome, job: TrainingJob, selection: EpochSelection,
                        out_dir: Path | str) -> LoraArtifact:
    """Check, stamp and store every epoch and the chosen one; the folder is replaced as a whole."""
    out_dir = Path(out_dir)
    headers = {c.epoch: read_header(c.path) for c in outcome.epochs}
    reports = {c.epoch: require_lora_keys(c.path, job.base, headers[c.epoch]) for c in outcome.epochs}
    chosen = selection.chosen.epoch
    dataset_sha256 = job.dataset.sha256()
    name = f"{job.character}.safetensors"
    with staged_dir(out_dir) as staging:
        stamped: dict[int, tuple[Path, dict[str, str]]] = {}
        for checkpoint in outcome.epochs:
            header = headers[checkpoint.epoch]
            metadata = lora_metadata(outcome, job, checkpoint, header.metadata, dataset_sha256)
            target = staging / EPOCHS_DIR / f"{job.character}-e{checkpoint.epoch:03d}.safetensors"
            stamped[checkpoint.epoch] = (write_with_metadata(checkpoint.path, target, metadata, header), metadata)
        final = write_with_metadata(selection.chosen.path, staging / name,
                                    {**stamped[chosen][1], "ap_chosen_by": selection.rule}, headers[chosen])
        final_metadata = _verify(final, headers[chosen].tensors)
        epochs = tuple(StoredEpoch(c.epoch, c.steps, out_dir / EPOCHS_DIR / stamped[c.epoch][0].name,
                                   sha256_file(stamped[c.epoch][0]), selection.score(c.epoch).mean)
                       for c in outcome.epochs)
        write_json(staging / LOSS_FILE, _loss_json(outcome))
        save_png(staging / PLOT_FILE, plot_loss(outcome.loss, outcome.loss_kind, job.character))
        write_json(staging / CAPTIONS_FILE, {"dataset_sha256": dataset_sha256, "captions": job.dataset.captions})
        write_json(staging / SELECTION_FILE, _selection_json(selection))
        digest = sha256_file(final)
    return LoraArtifact(job.character, out_dir / name, digest, chosen, epochs, final_metadata, reports[chosen],
                        out_dir / LOSS_FILE, out_dir / PLOT_FILE, out_dir / CAPTIONS_FILE, out_dir / SELECTION_FILE)


def _verify(final: Path, trained: Mapping[str, object]) -> dict[str, str]:
    """The stored file loads with the safetensors library and holds exactly the trained tensors;
    its metadata as the library reads it."""
    keys, metadata = verify_loadable(final)
    if sorted(keys) != sorted(trained) or "ap_trainer" not in metadata:
        raise LoraFileError(final, "the stored copy does not hold the trained tensors and our metadata")
    return metadata


def _loss_json(outcome: TrainingOutcome) -> dict:
    by_epoch: dict[int, list[float]] = {}
    for point in outcome.loss:
        by_epoch.setdefault(point.epoch, []).append(point.loss)
    return {"kind": outcome.loss_kind, "trainer": outcome.trainer.backend,
            "points": [{"step": p.step, "epoch": p.epoch, "loss": p.loss} for p in outcome.loss],
            "epoch_mean": {str(e): sum(v) / len(v) for e, v in sorted(by_epoch.items())}}


def _selection_json(selection: EpochSelection) -> dict:
    return {"rule": selection.rule, "identity_backend": selection.identity_backend,
            "chosen_epoch": selection.chosen.epoch,
            "epochs": [{"epoch": s.epoch, "steps": s.steps, "scores": list(s.scores), "mean": s.mean,
                        "min": s.minimum} for s in selection.scores],
            "prompts": [{"prompt": p.prompt, "seed": p.seed, "width": p.width, "height": p.height,
                         "variation": list(p.variation)} for p in selection.prompts]}


def loss_fell(points: Sequence[LossPoint]) -> tuple[bool, float, float]:
    """Did training lower the loss? The last epoch's mean against the first's (single step
    losses are noisy), or the last point against the first within a single epoch."""
    if not points:
        return False, float("nan"), float("nan")
    first, last = points[0].epoch, points[-1].epoch
    if first == last:
        return points[-1].loss < points[0].loss, points[0].loss, points[-1].loss
    start = float(np.mean([p.loss for p in points if p.epoch == first]))
    end = float(np.mean([p.loss for p in points if p.epoch == last]))
    return end < start, start, end


def plot_loss(points: Sequence[LossPoint], kind: str, title: str, size: tuple[int, int] = (720, 360)) -> np.ndarray:
    """The loss curve over steps with epoch boundaries, as an RGB image."""
    width, height = size
    left, right, top, bottom = 64, 16, 28, 36
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), f"{title}: {kind}"[:110], fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    if points:
        steps = [p.step for p in points]
        losses = [p.loss for p in points]
        low, high = min(losses), max(losses)
        span_x, span_y = max(1, max(steps) - min(steps)), (high - low) or 1.0

        def xy(step: int, loss: float) -> tuple[float, float]:
            return (left + (step - min(steps)) / span_x * (width - left - right),
                    height - bottom - (loss - low) / span_y * (height - top - bottom))

        for previous, point in zip(points, points[1:]):
            if point.epoch != previous.epoch:
                x = xy(point.step, low)[0]
                draw.line([(x, top), (x, height - bottom)], fill=(200, 200, 200))
        draw.line([xy(p.step, p.loss) for p in points] if len(points) > 1 else [xy(steps[0], losses[0])] * 2,
                  fill=(30, 80, 200), width=2)
        draw.text((4, top), f"{high:.4g}", fill="black")
        draw.text((4, height - bottom - 10), f"{low:.4g}", fill="black")
        draw.text((left, height - bottom + 8), f"step {min(steps)}", fill="black")
        draw.text((width - right - 90, height - bottom + 8), f"step {max(steps)}", fill="black")
    return np.asarray(image)
