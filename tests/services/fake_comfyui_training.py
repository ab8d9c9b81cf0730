"""The fake ComfyUI with the native training nodes, kept apart from fake_comfyui.py (it only adds).

    with FakeTrainingComfyUI(line="0.8.0", checkpoints={"v1-5.safetensors": tiny_sd15}) as fake:
        ...

`line="0.8.0"` serves the recorded 0.8.0 catalogue (tests/data/comfyui/0.8.0/object_info.json), so
the training nodes are exactly as 0.8.0 declares them (LoadImageTextDataSetFromFolder,
MakeTrainingDataset, TrainLoraNode with bucket_mode, SaveLoRA); `line="0.3.64"` keeps the 0.3.64
catalogue and its nodes (LoadImageTextSetFromFolderNode, SaveLoRANode). Lists that the real server
computes when asked are computed here too: the dataset `folder` options are the folders directly
under input/, the LoRA lists (LoraLoader, existing_lora) include what lies in output/loras/, and
`/upload/image` stores into output/ when `type=output`.

TrainLoraNode really trains nothing but really writes: a LoRA with ComfyUI-native keys
(`diffusion_model.<module>.lora_down.weight`, `.lora_up.weight`, `.diff`, `.diff_b`) for every module
of the checkpoint it is given (from `checkpoints`, else a built-in tiny SD 1.5 skeleton), in the
dtype asked for, continued from `existing_lora`; losses fall with the steps. It sends a `progress`
event per step (0.8.0 drives a ProgressBar), SaveLoRA writes
`<prefix>_<steps>_steps_<counter:05>_.safetensors` (the counter as get_save_image_path finds it)
and reports nothing, PreviewAny reports its input as text.

Knobs: line, train_step_time (seconds per step), lora_keys ("native" | "mismatch": two keys for
modules the model lacks), loss_text (PreviewAny's loss text verbatim, for malformed answers),
checkpoints (ckpt name -> local safetensors whose modules are "the model"), models_loras (a folder
listed as models/loras, read on every request like the real folder scan).
Observations: trained (one dict per TrainLoraNode run: steps, seed, existing_lora, images, captions).
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from tests.services.fake_comfyui import (
    DATA,
    FakeComfyUI,
    _execution_order,
    _is_link,
    _signature,
)

LOADERS = ("LoadImageTextDataSetFromFolder", "LoadImageTextSetFromFolderNode", "LoadImageDataSetFromFolder",
           "LoadImageSetFromFolderNode")
SAVERS = ("SaveLoRA", "SaveLoRANode")
LORA_LISTS = (("LoraLoader", "lora_name"), ("LoraLoaderModelOnly", "lora_name"), ("TrainLoraNode", "existing_lora"))
NO_LORA = "[None]"
# a few modules of SD 1.5's UNet, used when no checkpoint is given: (name, weight shape, has bias)
TINY_UNET = [("input_blocks.1.1.proj_in", (8, 8, 1, 1), True),
             ("input_blocks.1.1.transformer_blocks.0.attn1.to_q", (8, 8), False),
             ("input_blocks.1.1.transformer_blocks.0.attn2.to_k", (8, 12), False),
             ("input_blocks.1.1.transformer_blocks.0.norm1", (8,), True),
             ("middle_block.1.proj_out", (8, 8, 1, 1), True)]


@dataclass
class _Trained:
    tensors: dict[str, np.ndarray]
    losses: list[float]
    steps: int
    dtype: str


@dataclass
class FakeTrainingComfyUI(FakeComfyUI):
    line: str = "0.8.0"
    train_step_time: float = 0.0
    lora_keys: str = "native"
    loss_text: str | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)
    models_loras: Path | None = None  # the server's models/loras folder (e.g. a shared mount), listed live
    trained: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.line == "0.8.0":
            self.catalogue = json.loads((DATA / "0.8.0" / "object_info.json").read_text())
            self.system_stats["system"].update(comfyui_version="0.8.0", os="linux")
        elif self.line != "0.3.64":
            raise ValueError(f"line must be 0.8.0 or 0.3.64, not {self.line!r}")
        for class_type, input_name in LORA_LISTS:  # the recording machine's files are not ours
            self._set_choices(class_type, input_name, [NO_LORA] if input_name == "existing_lora" else [])
        for loader in LOADERS:
            self._set_choices(loader, "folder", [])
        self._runs: dict[str, _Trained] = {}
        self._prompt: dict[str, Any] = {}

    # what the real server computes per request ----------------------------------------------

    def _choices(self, class_type: str, input_name: str) -> list[Any] | None:
        spec = self.catalogue.get(class_type, {}).get("input", {})
        config = spec.get("required", {}).get(input_name) or spec.get("optional", {}).get(input_name)
        if config is None:
            return None
        return config[1].setdefault("options", []) if config[0] == "COMBO" else config[0]

    def _set_choices(self, class_type: str, input_name: str, values: list[Any]) -> None:
        choices = self._choices(class_type, input_name)
        if choices is not None:
            choices[:] = values

    def _refresh(self) -> None:
        folders = sorted({ref.split("/", 1)[0] for ref in self.inputs if "/" in ref})
        for loader in LOADERS:
            self._set_choices(loader, "folder", folders)
        saved = {f"{sub[len('loras/'):]}/{name}" if sub != "loras" else name
                 for kind, sub, name in self.files
                 if kind == "output" and (sub == "loras" or sub.startswith("loras/")) and name.endswith(".safetensors")}
        if self.models_loras is not None and self.models_loras.is_dir():
            saved |= {p.relative_to(self.models_loras).as_posix() for p in self.models_loras.rglob("*.safetensors")
                      if not p.name.startswith(".")}
        for class_type, input_name in LORA_LISTS:
            choices = self._choices(class_type, input_name)
            if choices is not None:
                keep = [c for c in choices if c != NO_LORA]
                values = sorted(set(keep) | saved)
                choices[:] = [*values, NO_LORA] if input_name == "existing_lora" else values
        checkpoints = self._choices("CheckpointLoaderSimple", "ckpt_name")
        if checkpoints is not None:
            checkpoints[:] = sorted(set(checkpoints) | set(self.checkpoints))

    async def _object_info(self, request: web.Request) -> web.Response:
        self._refresh()
        return await super()._object_info(request)

    def _validate_prompt(self, prompt: Any) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
        self._refresh()
        return super()._validate_prompt(prompt)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()  # aiohttp keeps the parsed form: the base class reads it again
        if str(form.get("type", "input")) != "output":
            return await super()._upload(request)
        image, subfolder = form.get("image"), str(form.get("subfolder", ""))
        if not isinstance(image, web.FileField) or not image.filename or ".." in subfolder.split("/"):
            return web.Response(status=400)
        content, name = image.file.read(), image.filename
        stem, dot, ext = name.rpartition(".")
        counter = 1
        while str(form.get("overwrite", "")) not in ("true", "1") and self.files.get(
                ("output", subfolder, name), content) != content:
            name = f"{stem} ({counter}){dot}{ext}"
            counter += 1
        self.files[("output", subfolder, name)] = content
        return web.json_response({"name": name, "subfolder": subfolder, "type": "output"})

    # execution ------------------------------------------------------------------------------

    async def _execute(self, item: Any) -> None:
        self._prompt = item.prompt
        empty = next((n for n in _execution_order(item.prompt, item.outputs)
                      if item.prompt[n]["class_type"] in LOADERS and not self._dataset(item.prompt, n)[0]), None)
        saved = self.fail_node, self.fail_message
        if empty is not None:  # the loader raises on an empty folder, as load_and_process_images does
            self.fail_node, self.fail_message = empty, "No valid images found in input"
        try:
            await super()._execute(item)
        finally:
            self.fail_node, self.fail_message = saved

    async def _render(self, prompt_id: str, node_id: str, seconds: float, sid: str | None) -> bool:
        node = self._prompt.get(node_id, {})
        if node.get("class_type") != "TrainLoraNode":
            return await super()._render(prompt_id, node_id, seconds, sid)
        steps = int(node["inputs"]["steps"])
        for step in range(1, steps + 1):
            try:
                await asyncio.wait_for(self._interrupt_flag.wait(), self.train_step_time)
                return False
            except TimeoutError:
                pass
            await self._emit("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": node_id}, sid)
        return True

    def _save_outputs(self, prompt: dict[str, Any], node_id: str) -> dict[str, Any]:
        class_type = prompt[node_id]["class_type"]
        if class_type == "TrainLoraNode":
            self._train(prompt, node_id)
            return {}
        if class_type in SAVERS:
            self._save_lora(prompt, node_id)
            return {}
        if class_type == "PreviewAny":
            return {"text": [self._preview(prompt, prompt[node_id]["inputs"]["source"])]}
        return super()._save_outputs(prompt, node_id)

    def _preview(self, prompt: dict[str, Any], source: Any) -> str:
        if not _is_link(source) or prompt[source[0]]["class_type"] != "TrainLoraNode":
            return json.dumps(source)
        run = self._train(prompt, source[0])
        kind = self.catalogue["TrainLoraNode"]["output"][source[1]]
        if kind == "LOSS_MAP":
            return self.loss_text if self.loss_text is not None else json.dumps({"loss": run.losses})
        return str(run.steps) if kind == "INT" else f"<{kind}>"

    def _save_lora(self, prompt: dict[str, Any], node_id: str) -> None:
        inputs = prompt[node_id]["inputs"]
        run = self._train(prompt, inputs["lora"][0])
        subfolder, _, base = str(inputs["prefix"]).rpartition("/")
        existing = [name for kind, sub, name in self.files if kind == "output" and sub == subfolder]
        counter = 1 + max((int(d) for name in existing if name.startswith(base + "_")
                           and (d := name[len(base) + 1:].split("_")[0]).isdigit()), default=0)
        steps = f"_{run.steps}_steps" if "steps" in inputs else ""
        self.files[("output", subfolder, f"{base}{steps}_{counter:05}_.safetensors")] = _safetensors(run)

    def _train(self, prompt: dict[str, Any], node_id: str) -> _Trained:
        key = _signature(prompt, node_id)
        if key in self._runs:
            return self._runs[key]
        inputs = prompt[node_id]["inputs"]
        loader = _upstream(prompt, node_id, LOADERS)
        images, captions = self._dataset(prompt, loader)
        existing_name = inputs.get("existing_lora", NO_LORA)
        start = _load_existing(self.files, existing_name)
        done_before = int(existing_name.split("_steps_")[0].split("_")[-1]) if existing_name != NO_LORA else 0
        steps, rank, seed = int(inputs["steps"]), int(inputs["rank"]), int(inputs["seed"])
        rng = np.random.default_rng([seed, len(images), done_before])
        tensors = {}
        for module, shape, bias in self._modules(prompt, node_id):
            name = f"diffusion_model.{module}"
            if len(shape) >= 2:
                down = start.get(f"{name}.lora_down.weight", rng.normal(0, 1 / rank, (rank, shape[1], *shape[2:])))
                up = start.get(f"{name}.lora_up.weight", np.zeros((shape[0], rank, *(1,) * (len(shape) - 2))))
                tensors[f"{name}.lora_down.weight"] = down
                tensors[f"{name}.lora_up.weight"] = up + rng.normal(0, 1e-3, up.shape) * steps
            else:
                tensors[f"{name}.diff"] = start.get(f"{name}.diff", np.zeros(shape)) + rng.normal(0, 1e-4, shape)
            if bias:
                tensors[f"{name}.diff_b"] = start.get(f"{name}.diff_b", np.zeros(shape[:1])) + rng.normal(0, 1e-4, shape[:1])
        if self.lora_keys == "mismatch":
            tensors["diffusion_model.input_blocks.99.1.proj_in.lora_down.weight"] = np.zeros((rank, 8))
            tensors["diffusion_model.input_blocks.99.1.proj_in.lora_up.weight"] = np.zeros((8, rank))
        losses = [0.12 * math.exp(-(done_before + i) / (4.0 * steps)) + 0.02 + float(rng.normal(0, 0.002))
                  for i in range(steps)]
        run = _Trained(tensors, losses, steps + done_before, str(inputs.get("lora_dtype", "bf16")))
        self._runs[key] = run
        self.trained.append({"steps": steps, "seed": seed, "existing_lora": existing_name, "images": images,
                             "captions": captions, "total_steps": run.steps})
        return run

    def _dataset(self, prompt: dict[str, Any], loader: str) -> tuple[list[str], list[str]]:
        """Image names and captions in the loader's folder, as the node reads them from input/."""
        folder = str(prompt[loader]["inputs"].get("folder"))
        images = sorted(ref for ref in self.inputs if ref.startswith(folder + "/")
                        and ref.lower().endswith((".png", ".jpg", ".jpeg", ".webp")))
        captions = [self.inputs.get(ref.rsplit(".", 1)[0] + ".txt", b"").decode().strip() for ref in images]
        return images, captions

    def _modules(self, prompt: dict[str, Any], node_id: str) -> list[tuple[str, tuple[int, ...], bool]]:
        """The model's modules with weights: TrainLoraNode wraps every one of them."""
        loader = prompt[_upstream(prompt, node_id, ("CheckpointLoaderSimple",))]
        path = self.checkpoints.get(loader["inputs"]["ckpt_name"])
        if path is None:
            return TINY_UNET
        header = _header(path)
        prefix = "model.diffusion_model."
        return [(key[len(prefix):-len(".weight")], tuple(entry["shape"]),
                 f"{key[:-len('.weight')]}.bias" in header)
                for key, entry in sorted(header.items()) if key.startswith(prefix) and key.endswith(".weight")]


def _upstream(prompt: dict[str, Any], node_id: str, classes: tuple[str, ...]) -> str:
    """The nearest node of one of `classes` feeding node_id."""
    for value in prompt[node_id]["inputs"].values():
        if _is_link(value):
            source = value[0]
            if prompt[source]["class_type"] in classes:
                return source
            try:
                return _upstream(prompt, source, classes)
            except LookupError:
                continue
    raise LookupError(f"no {classes} upstream of node {node_id}")


def _header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def _load_existing(files: dict[tuple[str, str, str], bytes], name: str) -> dict[str, np.ndarray]:
    if name == NO_LORA:
        return {}
    subfolder, _, filename = f"loras/{name}".rpartition("/")
    from safetensors.torch import load

    return {k: v.float().numpy().astype(np.float64) for k, v in load(files[("output", subfolder, filename)]).items()}


def _safetensors(run: _Trained) -> bytes:
    """The file ComfyUI writes: safetensors.torch.save_file of the LoRA in its dtype, no metadata."""
    import torch
    from safetensors.torch import save

    dtype = torch.bfloat16 if run.dtype == "bf16" else torch.float32
    return save({k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(dtype) for k, v in run.tensors.items()})
