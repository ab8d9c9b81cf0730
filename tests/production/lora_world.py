"""The sample show's produced characters switched to a real LoRA trainer, with the test doubles the
trainers and the renderer talk to: a ComfyUI server with the training nodes (it trains, and it
renders the validation portraits and the shots), the kohya `train_network.py` stand-in, a tiny
SD 1.5 checkpoint as the base model.

The server draws a still from the LoRAs its graph loads, as a trained LoRA would steer it: with a
LoRA named like `favourite` the picture is the character's face as her front reference panel shows
it, otherwise a flat grey. So the epoch identity chooses is known in advance, and it need not be the last one.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from PIL import Image

from anime_pipeline.definitions import build_definitions
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_reference import ReferenceManifest
from anime_pipeline.training.environment import KohyaInstall, TrainingEnvironment
from tests.services.fake_comfyui import provision
from tests.services.fake_comfyui_training import FakeTrainingComfyUI
from tests.training.tiny_checkpoints import SD15, write_checkpoint

TESTS = Path(__file__).resolve().parents[1]
CHECKPOINT = "v1-5-pruned-emaonly-fp16.safetensors"
SD_SCRIPTS = TESTS / "training" / "sd_scripts"
SHOW = "lantern-post"
MIO = f"{SHOW}/mio"
MIO_SHOT = f"{SHOW}/ep01/sc01/sh02"  # mio alone
HOSHI_SHOT = f"{SHOW}/ep01/sc01/sh03"  # hoshi alone
TRAINING = {"epochs": 2, "repeats": 1, "rank": 4, "seed": 3, "validation_prompts": 2}


@dataclass
class LoraAwareComfyUI(FakeTrainingComfyUI):
    """Renders a still as the character's reference face when the graph loads a LoRA matching
    `favourite` (a regex on LoraLoader's lora_name), flat grey otherwise."""

    favourite: str = r"$^"
    panel: bytes = b""
    rendered_loras: list[list[str]] = field(default_factory=list)  # per SaveImage, the LoRAs its graph loaded

    def _save_outputs(self, prompt: dict[str, Any], node_id: str) -> dict[str, Any]:
        ui = super()._save_outputs(prompt, node_id)
        if prompt[node_id]["class_type"] != "SaveImage":
            return ui
        loras = [n["inputs"]["lora_name"] for n in prompt.values() if n["class_type"] == "LoraLoader"]
        self.rendered_loras.append(loras)
        favoured = any(re.search(self.favourite, name) for name in loras)
        for entry in ui.get("images", []):
            self.files[("output", entry["subfolder"], entry["filename"])] = self.panel if favoured else _grey()
        return ui


def _face(paths: StoragePaths) -> bytes:
    """mio's face as her front reference panel shows it: what her anchor was measured on."""
    reference = ReferenceManifest.require(paths.reference(MIO), MIO)
    x0, y0, x1, y1 = reference.faces()["pose-front"]
    buffer = io.BytesIO()
    Image.open(paths.reference(MIO) / "pose-front.png").crop((x0, y0, x1, y1)).save(buffer, format="PNG")
    return buffer.getvalue()


def _grey() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 12), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class LoraWorld:
    """A copy of the produced characters world whose show trains LoRAs, and where things run."""

    world: Any  # conftest.World
    fake: LoraAwareComfyUI
    models: Path
    shared: Path | None = None  # the server's models/loras folder as this machine sees it, when shared

    @property
    def paths(self) -> StoragePaths:
        return StoragePaths(self.world.storage)

    def settings(self, kohya: bool = False):
        install = KohyaInstall(SD_SCRIPTS, Path(sys.executable), "python", "cpu") if kohya else None
        folders = (("0", self.shared),) if self.shared else ()
        return self.world.settings(comfyui_urls=(("0", self.fake.url),),
                                   training=TrainingEnvironment(install, None, self.models, folders))

    def materialize(self, instance: dg.DagsterInstance, keys: list[str], kohya: bool = False, force: bool = False):
        """One run of the show's assets `keys` ("<entity>/<artifact>"), as the UI launches it."""
        defs = build_definitions(self.settings(kohya))
        selection = [dg.AssetKey(key.split("/")) for key in keys]
        config = {"ops": {k.to_python_identifier(): {"config": {"force": True}} for k in selection}} if force else None
        return defs.resolve_job_def("lantern_post__episode_01").execute_in_process(
            instance=instance, asset_selection=selection, raise_on_error=False, run_config=config)


def switch_show(world, trainer: str) -> None:
    """The show trains LoRAs with `trainer` on the tiny checkpoint and renders through ComfyUI."""
    path = world.configs / "lantern_post.yaml"
    data = yaml.safe_load(path.read_text())
    data["show"]["style"]["checkpoint"] = CHECKPOINT
    data["backends"] = {"renderer": "comfyui", "trainer": trainer, "comfyui_workflows": {"still": "txt2img_sd15"}}
    data["training"] = TRAINING
    data["quality"] = {"max_attempts": 1}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@contextmanager
def lora_world(characters, tmp_path: Path, trainer: str, favourite: str, shared: bool = False,
               **knobs: Any) -> Iterator[LoraWorld]:
    models = tmp_path / "base_models"
    models.mkdir()
    checkpoint = write_checkpoint(models / CHECKPOINT, SD15)
    panel = _face(StoragePaths(characters.storage))
    folder = tmp_path / "server-loras" if shared else None
    if folder is not None:
        folder.mkdir()
    switch_show(characters, trainer)
    with LoraAwareComfyUI(line="0.3.64", checkpoints={CHECKPOINT: checkpoint}, models_loras=folder,
                          favourite=favourite, panel=panel, video_frames=6, video_size=(64, 36), **knobs) as fake:
        provision(fake)
        yield LoraWorld(characters, fake, models, folder)
