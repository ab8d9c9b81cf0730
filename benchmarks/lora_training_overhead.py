"""Our overhead per LoRA training run, excluding the trainer's own time, against the test doubles.

    .venv/bin/python benchmarks/lora_training_overhead.py [--repeat 3]

One run = train (12 approved 512×768 images, 3 epochs × 24 steps, rank 4) → key check → best
epoch by identity (4 validation prompts per epoch; each "render + identity" is a fixed 50 ms
sleep, the renderer's and identity backend's own time) → artifact (stamped epochs, chosen file,
loss data and plot, captions, scores).

* comfyui: FakeTrainingComfyUI (0.8.0 catalogue, tiny SD 1.5 checkpoint); the trainer's own time
  is the server's execution time of each epoch's prompt (its history timestamps). Ours: dataset
  export + upload, validation and submission, queueing and WebSocket following, the /view
  downloads. The epochs are already on that server for the validation renders.
* kohya: the train_network.py stand-in; the trainer's own time is the process's wall time (start
  to exit). Ours: dataset export, TOML and prompts, reading the console, collecting and checking
  the files; each epoch is uploaded to a rendering server (a fake ComfyUI) for its validation
  renders, which counts as ours.

overhead = total wall time − trainer's own time − the renders' fixed time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "services"), str(ROOT / "tests" / "training")]

from fake_comfyui_training import FakeTrainingComfyUI  # noqa: E402
from tiny_checkpoints import SD15, write_checkpoint  # noqa: E402

from anime_pipeline.config.schema import TrainerSettings  # noqa: E402
from anime_pipeline.services.comfyui import ComfyUIClient  # noqa: E402
from anime_pipeline.training.artifact import check_epoch_keys, write_lora_artifact  # noqa: E402
from anime_pipeline.training.availability import upload_lora  # noqa: E402
from anime_pipeline.training.base import TrainingJob, ValidationPrompt  # noqa: E402
from anime_pipeline.training.comfyui_trainer import ComfyUITrainer  # noqa: E402
from anime_pipeline.training.dataset import TrainingDataset  # noqa: E402
from anime_pipeline.training.environment import KohyaInstall  # noqa: E402
from anime_pipeline.training.kohya import KohyaTrainer  # noqa: E402
from anime_pipeline.training.lora_keys import BaseModel  # noqa: E402
from anime_pipeline.training.selection import pick_best_epoch  # noqa: E402

IMAGES, RENDER_S = 12, 0.05
PROMPTS = tuple(ValidationPrompt(f"mio, portrait, variation {i}", "lowres", 100 + i, 512, 768) for i in range(4))


@dataclass
class Run:
    total_s: float
    trainer_s: float
    renders_s: float
    train_overhead_s: float
    prepare_s: float
    wait_s: float
    collect_s: float
    keys_s: float
    selection_overhead_s: float
    artifact_s: float

    @property
    def overhead_s(self) -> float:
        return self.total_s - self.trainer_s - self.renders_s


def dataset(folder: Path) -> TrainingDataset:
    folder.mkdir(parents=True)
    y, x = np.mgrid[0:768, 0:512]
    for i in range(IMAGES):
        image = np.stack([(x + 20 * i) % 256, (y // 3) % 256, np.full_like(x, 40 + 15 * i)], axis=-1).astype(np.uint8)
        image[200:500, 150 + i * 10:350 + i * 10] = (200, 120, 90)  # a figure
        Image.fromarray(image).save(folder / f"mio-{i:04d}.png", compress_level=1)
        (folder / f"mio-{i:04d}.txt").write_text(f"mio, 1girl, courier, pose {i}")
    return TrainingDataset.from_folder(folder)


def one_run(backend: str, work: Path, job: TrainingJob, trainer, renderer_url: str | None) -> Run:
    started = time.monotonic()
    outcome = trainer.train(job, work / "train")
    trained = time.monotonic()
    check_epoch_keys(outcome, job.base)
    checked = time.monotonic()
    client = ComfyUIClient(renderer_url) if renderer_url else None

    def score(epoch, prompts):
        if client is not None:  # a kohya epoch must reach the rendering server first
            upload_lora(client, epoch.path, f"mio-{work.name}-e{epoch.epoch:03d}.safetensors")
        time.sleep(RENDER_S * len(prompts))
        return [0.7 + 0.01 * epoch.epoch] * len(prompts)

    selection = pick_best_epoch(outcome.epochs, PROMPTS, score, "fixed (benchmark)")
    selected = time.monotonic()
    write_lora_artifact(outcome, job, selection, work / "lora")
    done = time.monotonic()
    if client is not None:
        client.close()
    renders = RENDER_S * len(PROMPTS) * len(outcome.epochs)
    timings = outcome.timings
    return Run(done - started, timings.trainer_s, renders, timings.overhead_s, timings.prepare_s, timings.wait_s,
               timings.collect_s, checked - trained, selection.total_s - renders, done - selected)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[Run]] = {"comfyui": [], "kohya": []}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        checkpoint = write_checkpoint(root / "v1-5-pruned-emaonly-fp16.safetensors", SD15)
        base = BaseModel.from_checkpoint(checkpoint)
        job = TrainingJob("mio", dataset(root / "approved"), base,
                          TrainerSettings(rank=4, epochs=3, repeats=2, seed=7, learning_rate=1e-4))
        with FakeTrainingComfyUI(checkpoints={checkpoint.name: checkpoint}) as fake:
            ComfyUITrainer(fake.url, poll_interval=0.05).train(job, root / "warm")  # imports, first catalogue fetch
            for i in range(args.repeat):
                results["comfyui"].append(one_run("comfyui", root / f"c{i}", job,
                                                  ComfyUITrainer(fake.url, poll_interval=0.05), None))
            kohya = KohyaTrainer(KohyaInstall(ROOT / "tests" / "training" / "sd_scripts", Path(sys.executable),
                                              "python", "cpu"))
            for i in range(args.repeat):
                results["kohya"].append(one_run("kohya", root / f"k{i}", job, kohya, fake.url))
    for backend, runs in results.items():
        med = {name: statistics.median(getattr(r, name) for r in runs) for name in (
            "total_s", "trainer_s", "renders_s", "overhead_s", "train_overhead_s", "prepare_s", "wait_s", "collect_s",
            "keys_s", "selection_overhead_s", "artifact_s")}
        print(f"{backend}: overhead median {med['overhead_s'] * 1000:.0f} ms of {med['total_s']:.2f} s total "
              f"(trainer {med['trainer_s']:.2f} s, renders {med['renders_s']:.2f} s); "
              f"train-side {med['train_overhead_s'] * 1000:.0f} ms (prepare {med['prepare_s'] * 1000:.0f}, wait "
              f"{med['wait_s'] * 1000:.0f}, collect {med['collect_s'] * 1000:.0f}), key check {med['keys_s'] * 1000:.0f} ms, "
              f"selection {med['selection_overhead_s'] * 1000:.0f} ms, artifact {med['artifact_s'] * 1000:.0f} ms; "
              f"runs: {', '.join(f'{r.overhead_s * 1000:.0f}' for r in runs)} ms")


if __name__ == "__main__":
    main()
