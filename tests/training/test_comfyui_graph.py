"""The training graph built from what a server's /object_info offers."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from anime_pipeline.services.comfyui import check_workflow
from anime_pipeline.training.comfyui_graph import (
    LINES,
    TrainingValues,
    build_training_graph,
    training_line,
)
from anime_pipeline.training.errors import TrainerUnavailable

DATA = Path(__file__).resolve().parents[1] / "data" / "comfyui"
CATALOGUE_0364 = json.loads((DATA / "object_info.json").read_text())
CATALOGUE_080 = json.loads((DATA / "0.8.0" / "object_info.json").read_text())
VALUES = TrainingValues(checkpoint="v1-5-pruned-emaonly-fp16.safetensors", folder="dataset", steps=8,
                        learning_rate=1e-4, rank=4, seed=3, prefix="loras/anime_pipeline/mio-e001")


def newest(catalogue: dict[str, Any]) -> dict[str, Any]:
    """TrainLoraNode as protocols-more.md §5 reads the newest source: no MODEL output, new inputs."""
    catalogue = copy.deepcopy(catalogue)
    node = catalogue["TrainLoraNode"]
    node["output"], node["output_name"] = ["LORA_MODEL", "LOSS_MAP", "INT"], ["lora", "loss_map", "steps"]
    node["input"]["required"]["checkpoint_depth"] = ["INT", {"default": 1, "min": 1, "max": 5}]
    node["input"]["required"]["offloading"] = ["BOOLEAN", {"default": False}]
    return catalogue


def test_each_recorded_server_gets_its_own_line():
    assert training_line(CATALOGUE_080) == LINES[0] and training_line(CATALOGUE_0364) == LINES[1]
    modern, legacy = build_training_graph(CATALOGUE_080, VALUES), build_training_graph(CATALOGUE_0364, VALUES)
    assert [modern.graph[n]["class_type"] for n in "2345"] == [
        "LoadImageTextDataSetFromFolder", "MakeTrainingDataset", "TrainLoraNode", "SaveLoRA"]
    assert [legacy.graph[n]["class_type"] for n in "2345"] == [
        "LoadImageTextSetFromFolderNode", "VAEEncode", "TrainLoraNode", "SaveLoRANode"]
    assert modern.graph["4"]["inputs"]["bucket_mode"] is False and "bucket_mode" not in legacy.graph["4"]["inputs"]
    assert modern.defaults_used == legacy.defaults_used == {}


@pytest.mark.parametrize("catalogue", [CATALOGUE_080, CATALOGUE_0364], ids=["0.8.0", "0.3.64"])
def test_the_graph_validates_on_a_server_with_the_files(catalogue):
    catalogue = copy.deepcopy(catalogue)
    for class_type in ("CheckpointLoaderSimple", "LoadImageTextDataSetFromFolder", "LoadImageTextSetFromFolderNode"):
        if class_type in catalogue:
            name = "ckpt_name" if class_type == "CheckpointLoaderSimple" else "folder"
            config = catalogue[class_type]["input"]["required"][name]
            (config[1]["options"] if config[0] == "COMBO" else config[0]).append(getattr(
                VALUES, "checkpoint" if name == "ckpt_name" else "folder"))
    assert check_workflow(build_training_graph(catalogue, VALUES).graph, catalogue, {}) == []


def test_outputs_are_found_by_type_and_unknown_inputs_get_the_server_default():
    built = build_training_graph(newest(CATALOGUE_080), VALUES)
    assert built.graph["5"]["inputs"]["lora"] == ["4", 0] and built.graph["5"]["inputs"]["steps"] == ["4", 2]
    assert built.graph["6"]["inputs"]["source"] == ["4", 1] and built.graph["7"]["inputs"]["source"] == ["4", 2]
    assert built.defaults_used == {"checkpoint_depth": 1, "offloading": False}
    assert built.graph["4"]["inputs"]["checkpoint_depth"] == 1


def test_a_required_input_without_a_default_is_refused_by_name():
    catalogue = newest(CATALOGUE_080)
    catalogue["TrainLoraNode"]["input"]["required"]["mystery"] = ["INT", {"min": 0}]
    with pytest.raises(TrainerUnavailable, match="requires input 'mystery'.*no default"):
        build_training_graph(catalogue, VALUES)


def test_continuing_needs_existing_lora_and_training_needs_the_nodes():
    catalogue = copy.deepcopy(CATALOGUE_080)
    del catalogue["TrainLoraNode"]["input"]["required"]["existing_lora"]
    continued = TrainingValues(**{**VALUES.__dict__, "existing_lora": "anime_pipeline/mio-e001_8_steps_00001_.safetensors"})
    with pytest.raises(TrainerUnavailable, match="no existing_lora input.*epochs: 1"):
        build_training_graph(catalogue, continued)
    bare = {k: v for k, v in CATALOGUE_080.items() if k not in ("TrainLoraNode", "SaveLoRA")}
    with pytest.raises(TrainerUnavailable, match="lacks .*SaveLoRA.*TrainLoraNode"):
        build_training_graph(bare, VALUES)
