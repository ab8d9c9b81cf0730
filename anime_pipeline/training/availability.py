"""Getting a LoRA onto the server that renders, and checking it is there before a graph is queued.

A ComfyUI server finds LoRAs in its models/loras folders, and since it registers output/loras as
one of them, a file uploaded there (`/upload/image` with type output) is listed too. So a LoRA
reaches a rendering server in one of two ways:

* a shared folder the server lists (an NFS mount as models/loras, or a path in its
  extra_model_paths.yaml), configured per server: the file is copied in atomically;
* an upload into the server's output/loras/anime_pipeline/ (no shared storage needed; ComfyUI's
  default upload limit is 100 MiB).

Either way the server must then list it under `LoraLoader.lora_name` in /object_info, or the
render would fail validation; `require_lora_available` says which server and which file.

A step asks for LoRAs by `LoraRequest` (the local file, the name to serve it under, the
strengths); the renderer resource turns them into LoraLoader entries on the server it leased
(`serve_loras`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anime_pipeline.render.workflows import Lora
from anime_pipeline.services import redact_url
from anime_pipeline.services.comfyui import ComfyUIClient, ComfyUIError
from anime_pipeline.storage import atomic_path, sha256_file
from anime_pipeline.training.errors import LoraFileError, LoraNotOnServer, TrainingError

LORA_SUBFOLDER = "anime_pipeline"
COMFYUI_MAX_UPLOAD = 100 * 1024 * 1024  # server.py's default --max-upload-size (MB) as /features reports it


def listed_loras(catalogue: Mapping[str, Any]) -> list[str]:
    """LoraLoader's lora_name choices in an /object_info answer (old- and new-style combos)."""
    spec = catalogue.get("LoraLoader", {}).get("input", {})
    config = spec.get("required", {}).get("lora_name") or spec.get("optional", {}).get("lora_name") or []
    if config and isinstance(config[0], list):
        return [str(name) for name in config[0]]
    options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
    return [str(name) for name in options.get("options", [])] if config and config[0] == "COMBO" else []


def require_lora_available(client: ComfyUIClient, lora_name: str) -> None:
    """LoraNotOnServer unless the server lists `lora_name` (asked again once: it may be new)."""
    listed = listed_loras(_catalogue(client, refresh=False))
    if lora_name in listed:
        return
    listed = listed_loras(_catalogue(client, refresh=True))
    if lora_name not in listed:
        hint = ("; put it in a folder the server lists under models/loras (ANIME_PIPELINE_LORA_FOLDERS) or upload "
                "it with upload_lora()")
        raise LoraNotOnServer(redact_url(client.base_url), lora_name, listed, hint)


def _catalogue(client: ComfyUIClient, refresh: bool) -> Mapping[str, Any]:
    try:
        return client.object_info(refresh=refresh)
    except ComfyUIError as exc:
        raise TrainingError(f"cannot read /object_info of {redact_url(client.base_url)} to find LoRAs: {exc}") from exc


@dataclass(frozen=True)
class SharedLoraFolder:
    """A folder one server lists under models/loras; `path` is where this machine sees it."""

    path: Path
    subfolder: str = LORA_SUBFOLDER

    def place(self, lora: Path | str, name: str) -> str:
        """Copy the file in as <subfolder>/<name> (atomically; an identical file is left as it is);
        returns LoraLoader's name for it."""
        lora = Path(lora)
        if not self.path.is_dir():
            raise LoraFileError(self.path, "the shared LoRA folder does not exist or is not mounted here")
        target = self.path / self.subfolder / name
        if not (target.is_file() and sha256_file(target) == sha256_file(lora)):
            with atomic_path(target) as tmp:
                shutil.copyfile(lora, tmp)
        return f"{self.subfolder}/{name}"


def upload_lora(client: ComfyUIClient, lora: Path | str, name: str, max_bytes: int = COMFYUI_MAX_UPLOAD) -> str:
    """Upload the file to the server's output/loras/<subfolder>/<name>; returns LoraLoader's name."""
    lora = Path(lora)
    size = lora.stat().st_size
    if size > max_bytes:
        raise LoraFileError(lora, f"{size} bytes is over the server's upload limit of {max_bytes} bytes; give "
                                  "that server a shared LoRA folder instead (ANIME_PIPELINE_LORA_FOLDERS)")
    with tempfile.TemporaryDirectory() as folder:
        named = Path(folder) / name  # /upload/image stores the file under its own name
        shutil.copyfile(lora, named)
        try:
            uploaded = client.upload_image(named, subfolder=f"loras/{LORA_SUBFOLDER}", overwrite=True,
                                           folder_type="output")
        except ComfyUIError as exc:
            raise TrainingError(f"uploading LoRA {name} to {redact_url(client.base_url)} failed: {exc}") from exc
    if uploaded.name != name:
        raise TrainingError(f"{redact_url(client.base_url)} stored the uploaded LoRA {name} as {uploaded.name}")
    return f"{LORA_SUBFOLDER}/{name}"


def make_lora_available(client: ComfyUIClient, lora: Path | str, name: str,
                        shared: SharedLoraFolder | None = None) -> str:
    """Place (shared folder) or upload the LoRA, then check the server lists it; LoraLoader's name."""
    lora_name = shared.place(lora, name) if shared is not None else upload_lora(client, lora, name)
    require_lora_available(client, lora_name)
    return lora_name


@dataclass(frozen=True)
class LoraRequest:
    """One character's LoRA for a render. `name` is the file name to serve it under (content-hashed,
    so a new LoRA is a new name); `listed_on` is (GPU id, LoraLoader name) where a server lists the
    file already (the ComfyUI server that trained it)."""

    character: str
    path: Path
    name: str
    weight: float
    clip_weight: float | None = None
    listed_on: tuple[str, str] | None = None


def serve_loras(client: ComfyUIClient, gpu: str, requests: Sequence[LoraRequest],
                shared: SharedLoraFolder | None) -> dict[str, Lora]:
    """Per character, the LoraLoader entry for the server of `gpu`: its own listing where it holds the
    file already, else the file placed in its shared folder or uploaded; each one checked listed."""
    served = {}
    for request in requests:
        if request.listed_on is not None and request.listed_on[0] == gpu:
            require_lora_available(client, request.listed_on[1])
            name = request.listed_on[1]
        else:
            name = make_lora_available(client, request.path, request.name, shared)
        served[request.character] = Lora(name, request.weight, request.clip_weight)
    return served
