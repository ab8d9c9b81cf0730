"""Making a LoRA available to the rendering server and checking LoraLoader lists it before queueing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from anime_pipeline.render.workflows import Lora, bind, load_template
from anime_pipeline.services.comfyui import ComfyUIClient
from anime_pipeline.training.availability import (
    SharedLoraFolder,
    listed_loras,
    make_lora_available,
    require_lora_available,
    upload_lora,
)
from anime_pipeline.training.errors import LoraFileError, LoraNotOnServer, TrainingError
from tests.services.fake_comfyui_training import FakeTrainingComfyUI

DATA = Path(__file__).resolve().parents[1] / "data" / "comfyui"


@pytest.fixture
def lora_file(tmp_path: Path) -> Path:
    path = tmp_path / "mio.safetensors"
    save_file({"lora_unet_x.lora_down.weight": np.ones((4, 8), np.float32)}, str(path), {"ap_trainer": "kohya"})
    return path


def test_both_combo_encodings_are_read():
    assert listed_loras(json.loads((DATA / "0.8.0" / "object_info.json").read_text()))[:2] == [
        "anime_pipeline/character_2_steps_00001_.safetensors", "tiny_kohya.safetensors"]
    assert listed_loras(json.loads((DATA / "object_info.json").read_text())) == []
    assert listed_loras({"LoraLoader": {"input": {"required": {"lora_name": ["COMBO", {"options": ["a"]}]}}}}) == ["a"]


def test_an_uploaded_lora_is_listed_and_a_shot_graph_with_it_renders(lora_file: Path):
    with FakeTrainingComfyUI() as fake, ComfyUIClient(fake.url, poll_interval=0.05) as client:
        with pytest.raises(LoraNotOnServer):  # asked before it is there: the catalogue is now cached
            require_lora_available(client, "anime_pipeline/mio-abc.safetensors")
        name = upload_lora(client, lora_file, "mio-abc.safetensors")
        assert name == "anime_pipeline/mio-abc.safetensors"
        assert fake.files[("output", "loras/anime_pipeline", "mio-abc.safetensors")] == lora_file.read_bytes()
        require_lora_available(client, name)  # found after asking the server again
        graph = bind(load_template("txt2img_sd15"), loras=[Lora(name, 0.8)], positive="mio, portrait", seed=3)
        loader = next(n for n in graph.values() if n["class_type"] == "LoraLoader")
        assert (loader["inputs"]["lora_name"], loader["inputs"]["strength_model"]) == (name, 0.8)
        result = client.run(graph, lora_file.parent / "render")  # the server accepts it: the file is there
        assert len(result.outputs) == 1


def test_a_shared_folder_copy_is_what_the_server_lists(lora_file: Path, tmp_path: Path):
    shared = SharedLoraFolder(tmp_path / "nfs-loras")
    shared.path.mkdir()
    with FakeTrainingComfyUI(models_loras=shared.path) as fake, ComfyUIClient(fake.url) as client:
        name = make_lora_available(client, lora_file, "mio-abc.safetensors", shared)
        assert name == "anime_pipeline/mio-abc.safetensors"
        placed = shared.path / "anime_pipeline" / "mio-abc.safetensors"
        assert placed.read_bytes() == lora_file.read_bytes()
        stamp = placed.stat().st_mtime_ns
        assert shared.place(lora_file, "mio-abc.safetensors") == name and placed.stat().st_mtime_ns == stamp
        assert fake.files == {}  # nothing went over HTTP


def test_a_folder_the_server_does_not_list_is_caught_naming_server_and_file(lora_file: Path, tmp_path: Path):
    elsewhere = SharedLoraFolder(tmp_path / "not-mounted-there")
    elsewhere.path.mkdir()
    with FakeTrainingComfyUI(models_loras=tmp_path / "server-loras") as fake:
        url = fake.url.replace("http://", "http://render:s3cret@")
        with ComfyUIClient(url) as client, pytest.raises(LoraNotOnServer) as caught:
            make_lora_available(client, lora_file, "mio-abc.safetensors", elsewhere)
    message = str(caught.value)
    assert fake.url in message and "'anime_pipeline/mio-abc.safetensors'" in message and "s3cret" not in message
    assert isinstance(caught.value, TrainingError)


def test_refusals_before_sending(lora_file: Path, tmp_path: Path):
    with FakeTrainingComfyUI() as fake, ComfyUIClient(fake.url) as client:
        with pytest.raises(LoraFileError, match="over the server's upload limit of 10 bytes"):
            upload_lora(client, lora_file, "mio.safetensors", max_bytes=10)
        assert fake.files == {}
    with pytest.raises(LoraFileError, match="does not exist or is not mounted"):
        SharedLoraFolder(tmp_path / "absent").place(lora_file, "x.safetensors")
