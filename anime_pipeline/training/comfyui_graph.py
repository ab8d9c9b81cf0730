"""The LoRA training graph, built for the nodes a ComfyUI server's /object_info offers.

Two lines of ComfyUI's native training exist (protocols-more.md §5, the recorded catalogues):

* dataset nodes (0.4 and later, recorded on 0.8.0): `LoadImageTextDataSetFromFolder` (images and
  captions as lists) → `MakeTrainingDataset` (VAE + CLIP) → `TrainLoraNode` (+ `bucket_mode`) →
  `SaveLoRA`;
* 0.3.6x: `LoadImageTextSetFromFolderNode` (CLIP-encoded captions) → `VAEEncode` → `TrainLoraNode`
  → `SaveLoRANode`.

Output slots are found by type, not by number (the newest TrainLoraNode dropped its MODEL
output), required inputs this code does not know are given the server's declared default (and
reported), and the loss map and the step count come back through `PreviewAny`, whose text lands
in the history (SaveLoRA reports nothing there). `workflows/train_lora*.json` are these graphs as
built for the two recorded catalogues (tests/render/test_workflows.py checks that they are).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anime_pipeline.training.errors import TrainerUnavailable

NONE_LORA = "[None]"  # TrainLoraNode.existing_lora for a new LoRA


@dataclass(frozen=True)
class TrainingLine:
    name: str
    loader: str
    encoder: str
    saver: str


LINES = (
    TrainingLine("dataset nodes (ComfyUI >= 0.4)", "LoadImageTextDataSetFromFolder", "MakeTrainingDataset", "SaveLoRA"),
    TrainingLine("ComfyUI 0.3.6x", "LoadImageTextSetFromFolderNode", "VAEEncode", "SaveLoRANode"),
)


@dataclass(frozen=True)
class TrainingValues:
    checkpoint: str
    folder: str  # a folder directly under the server's input/
    steps: int
    learning_rate: float
    rank: int
    seed: int
    prefix: str  # SaveLoRA prefix, e.g. loras/anime_pipeline/mio-e001
    batch_size: int = 1
    optimizer: str = "AdamW"
    training_dtype: str = "bf16"
    lora_dtype: str = "bf16"
    existing_lora: str = NONE_LORA
    loss_function: str = "MSE"
    algorithm: str = "LoRA"
    grad_accumulation_steps: int = 1
    gradient_checkpointing: bool = True


@dataclass(frozen=True)
class TrainingGraph:
    graph: dict[str, Any]
    line: TrainingLine
    trainer_node: str
    save_node: str
    loss_node: str
    steps_node: str
    defaults_used: dict[str, Any] = field(default_factory=dict)  # TrainLoraNode inputs we left to the server


def training_line(catalogue: Mapping[str, Any]) -> TrainingLine:
    """The training line this server offers, or TrainerUnavailable naming what is missing."""
    for line in LINES:
        if all(cls in catalogue for cls in ("TrainLoraNode", "PreviewAny", line.loader, line.encoder, line.saver)):
            return line
    wanted = "; ".join(f"{line.name}: TrainLoraNode, {line.loader}, {line.encoder}, {line.saver}" for line in LINES)
    missing = sorted({c for line in LINES for c in ("TrainLoraNode", "PreviewAny", line.loader, line.saver)}
                     - set(catalogue))
    raise TrainerUnavailable(f"the server offers no LoRA training graph ({wanted}; PreviewAny); it lacks "
                             f"{', '.join(missing)}")


def build_training_graph(catalogue: Mapping[str, Any], values: TrainingValues) -> TrainingGraph:
    line = training_line(catalogue)
    graph: dict[str, Any] = {"1": _node("CheckpointLoaderSimple", ckpt_name=values.checkpoint)}
    model, clip, vae = (_slot(catalogue, graph, "1", kind) for kind in ("MODEL", "CLIP", "VAE"))
    if line.encoder == "MakeTrainingDataset":
        graph["2"] = _node(line.loader, folder=values.folder)
        graph["3"] = _node(line.encoder, images=_slot(catalogue, graph, "2", "IMAGE"), vae=vae, clip=clip,
                           texts=_slot(catalogue, graph, "2", "STRING"))
        positive = _slot(catalogue, graph, "3", "CONDITIONING")
    else:
        graph["2"] = _node(line.loader, folder=values.folder, clip=clip,
                           **_declared(catalogue, line.loader, {"resize_method": "None", "width": -1, "height": -1}))
        graph["3"] = _node(line.encoder, pixels=_slot(catalogue, graph, "2", "IMAGE"), vae=vae)
        positive = _slot(catalogue, graph, "2", "CONDITIONING")
    inputs, defaults = _trainer_inputs(catalogue, values)
    graph["4"] = _node("TrainLoraNode", model=model, latents=_slot(catalogue, graph, "3", "LATENT"),
                       positive=positive, **inputs)
    steps = _slot(catalogue, graph, "4", "INT")
    graph["5"] = _node(line.saver, lora=_slot(catalogue, graph, "4", "LORA_MODEL"), prefix=values.prefix, steps=steps)
    graph["6"] = _node("PreviewAny", source=_slot(catalogue, graph, "4", "LOSS_MAP"))
    graph["7"] = _node("PreviewAny", source=steps)
    return TrainingGraph(graph, line, "4", "5", "6", "7", defaults)


def _node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def _slot(catalogue: Mapping[str, Any], graph: Mapping[str, Any], node_id: str, kind: str) -> list[Any]:
    """The link to node_id's one output of type `kind`."""
    class_type = graph[node_id]["class_type"]
    outputs = list(catalogue[class_type].get("output", []))
    found = [index for index, output in enumerate(outputs) if output == kind]
    if len(found) != 1:
        raise TrainerUnavailable(f"{class_type} on this server has outputs {outputs}; the training graph needs "
                                 f"exactly one {kind} output")
    return [node_id, found[0]]


def _declared(catalogue: Mapping[str, Any], class_type: str, wanted: Mapping[str, Any]) -> dict[str, Any]:
    spec = catalogue[class_type].get("input", {})
    declared = {**spec.get("required", {}), **spec.get("optional", {})}
    return {name: value for name, value in wanted.items() if name in declared}


def _trainer_inputs(catalogue: Mapping[str, Any], values: TrainingValues) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our values for the TrainLoraNode inputs the server declares; its defaults for the others."""
    ours: dict[str, Any] = {
        "batch_size": values.batch_size, "grad_accumulation_steps": values.grad_accumulation_steps,
        "steps": values.steps, "learning_rate": values.learning_rate, "rank": values.rank,
        "optimizer": values.optimizer, "loss_function": values.loss_function, "seed": values.seed,
        "training_dtype": values.training_dtype, "lora_dtype": values.lora_dtype, "algorithm": values.algorithm,
        "gradient_checkpointing": values.gradient_checkpointing, "existing_lora": values.existing_lora,
        "bucket_mode": False,  # our dataset has one size; buckets need a ResolutionBucket node upstream
    }
    spec = catalogue["TrainLoraNode"].get("input", {})
    required, optional = spec.get("required", {}), spec.get("optional", {})
    links = {"model", "latents", "positive"}
    if values.existing_lora != NONE_LORA and "existing_lora" not in {**required, **optional}:
        raise TrainerUnavailable("TrainLoraNode on this server has no existing_lora input, so training cannot "
                                 "continue from the previous epoch; train with epochs: 1")
    inputs = {name: value for name, value in ours.items() if name in required or name in optional}
    defaults: dict[str, Any] = {}
    for name, config in required.items():
        if name in links or name in inputs:
            continue
        options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
        if "default" not in options:
            raise TrainerUnavailable(f"TrainLoraNode on this server requires input {name!r}, which this pipeline "
                                     "does not set and for which the server declares no default")
        inputs[name] = defaults[name] = options["default"]
    return inputs, defaults
