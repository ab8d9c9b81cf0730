"""Our overhead per `character_lora` materialization with a real trainer, through Dagster, against the
test doubles: what the wiring adds around the trainer and the renders.

    .venv/bin/python benchmarks/character_lora_step.py [--repeat 3]

The sample show's characters are produced once on the embedded defaults; then mio's character_lora
is materialized `--repeat` times (force: true) with `trainer: comfyui` (the fake ComfyUI with the
0.3.64 training nodes, which also renders) and with `trainer: kohya` (the train_network.py
stand-in, validation renders on the fake ComfyUI with a shared LoRA folder): 6 approved images,
2 epochs, 2 validation prompts per epoch, rank 4, the tiny SD 1.5 checkpoint.

step = the asset step's wall time (Dagster's STEP_START to STEP_SUCCESS); trainer = the trainer's
own time (ComfyUI: the server's execution time of each epoch's prompt; kohya: the process's wall
time); renders = the server's execution time of the validation renders (its history timestamps).
overhead = step − trainer − renders: dataset export and upload, queueing and following, downloads,
the key check, the GPU leases, each epoch's LoRA made available and checked listed, the reference
upload, identity, the artifact and the manifest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "production")]

from conftest import World, write_show  # noqa: E402
from lora_world import MIO, lora_world  # noqa: E402

from anime_pipeline.production.character_lora import LoraManifest  # noqa: E402

ASSET = f"{MIO}/character_lora"


def characters(root: Path) -> World:
    made = World(root)
    write_show(made.configs)
    with made.instance() as instance:
        assert made.run(instance, characters_only=True).ok
    return made


def step_seconds(instance, run_id: str) -> float:
    events = {e.dagster_event.event_type_value: e.timestamp for e in instance.all_logs(run_id)
              if e.dagster_event is not None and e.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS")}
    return events["STEP_SUCCESS"] - events["STEP_START"]


def render_seconds(fake, seen: set[str]) -> float:
    """The server's execution time of the prompts it ran since `seen`, those without training nodes."""
    total = 0.0
    for prompt_id, entry in fake.history.items():
        if prompt_id in seen:
            continue
        seen.add(prompt_id)
        graph = entry["prompt"][2]
        if any(node["class_type"] == "TrainLoraNode" for node in graph.values()):
            continue
        stamps = {kind: data["timestamp"] / 1000 for kind, data in entry["status"]["messages"]
                  if kind in ("execution_start", "execution_success")}
        total += stamps["execution_success"] - stamps["execution_start"]
    return total


def measure(world: World, root: Path, trainer: str, repeat: int) -> list[dict[str, float]]:
    runs = []
    with lora_world(world, root, trainer, favourite=r"-e001[-_]", shared=trainer == "kohya") as lw, \
            world.instance() as instance:
        kohya = trainer == "kohya"
        seen: set[str] = set()
        assert lw.materialize(instance, [ASSET], kohya=kohya).success  # warm: imports, first catalogue fetch
        render_seconds(lw.fake, seen)
        for _ in range(repeat):
            result = lw.materialize(instance, [ASSET], kohya=kohya, force=True)
            assert result.success
            timings = LoraManifest.require(lw.paths.adapter(MIO), MIO).timings
            step, renders = step_seconds(instance, result.run_id), render_seconds(lw.fake, seen)
            runs.append({"step": step, "trainer": timings["trainer"], "renders": renders,
                         "overhead": step - timings["trainer"] - renders,
                         "training_side": timings["training"] - timings["trainer"],
                         "validation_side": timings["validation"] - renders})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        produced = characters(root / "characters")
        for trainer in ("comfyui", "kohya"):
            world = produced.copy_to(root / f"world-{trainer}")
            (root / trainer).mkdir()
            runs = measure(world, root / trainer, trainer, args.repeat)
            median = {name: statistics.median(r[name] for r in runs) for name in runs[0]}
            each = ", ".join(f"{r['overhead'] * 1000:.0f}" for r in runs)
            print(f"{trainer}: overhead median {median['overhead'] * 1000:.0f} ms of a {median['step']:.2f} s step "
                  f"(trainer {median['trainer']:.2f} s, renders {median['renders']:.2f} s); training side "
                  f"{median['training_side'] * 1000:.0f} ms, validation side {median['validation_side'] * 1000:.0f} ms; "
                  f"runs: {each} ms")


if __name__ == "__main__":
    main()
