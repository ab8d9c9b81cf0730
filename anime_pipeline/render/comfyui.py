"""The ComfyUI renderer: stills, keyframes and image-to-video through the workflow templates.

    renderer = ComfyUIRenderer(ComfyUIClient("http://gpu-box:8188"), device="cuda:0", style=show.style,
                               loras={"mio": Lora("mio_v3.safetensors", 0.8)},
                               references={"mio": Path("refs/mio_front.png")})
    still = renderer.render_still(request)

What a request does not carry comes from the construction: the show's `Style` (checkpoint,
sampler, scheduler, cfg), per-character LoRA files (as the server names them under models/loras)
and IP-Adapter reference images (local files, uploaded on use), plus per-role `overrides` for
deployment choices such as model file names. The request decides prompt, negative prompt, seed,
steps and size; a request's characters pick which LoRAs and references apply.

Templates are chosen by role: "still" (txt2img, also the clip keyframe) and "clip" (image to
video). Sizes and lengths are rounded up to what the template's nodes take, and the result is
fitted back to the requested size and frame count, so every backend hands the caller the same
shapes. `params` of each result is the manifest entry: the exact submitted graph and its sha256,
the template and its hash, seed, prompts, model names, LoRAs, references, server version and
device, timings. Face boxes are left to the caller to detect.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from anime_pipeline.config.schema import Character, Style
from anime_pipeline.media import iter_frames, probe
from anime_pipeline.render.base import (CardTurns, ClipRequest, ClipStream, CollectsClips, KeptCard, RenderedFrame,
                                        StillRequest, StillResult)
from anime_pipeline.render.develop import develop
from anime_pipeline.render.workflows import WORKFLOWS_DIR, Lora, Template, bind, graph_sha256, load_template
from anime_pipeline.services import redact_url
from anime_pipeline.services.comfyui import ComfyUIClient, ComfyUIError, RunResult, SystemStats

DEFAULT_WORKFLOWS = {"still": "txt2img_sdxl", "clip": "i2v_wan22"}
_ROLE_CONTRACT = {  # role -> (output it must declare, parameters it must take)
    "still": ("image", ("positive", "negative", "seed", "steps", "width", "height")),
    "clip": ("video", ("image", "positive", "negative", "seed")),
}
UPLOAD_SUBFOLDER = "anime_pipeline"


@dataclass
class _Run:
    template: Template
    graph: dict[str, Any]
    result: RunResult
    files: dict[str, list[Path]]  # output name -> downloaded files


class ComfyUIRenderer(CollectsClips):
    """The Renderer interface (render/base.py) on a ComfyUI server; one run at a time."""

    def __init__(self, client: ComfyUIClient, workflows: Mapping[str, str] | None = None, device: str = "", *,
                 style: Style | None = None, loras: Mapping[str, Lora] | None = None,
                 references: Mapping[str, str | os.PathLike[str]] | None = None,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None,
                 templates_dir: Path = WORKFLOWS_DIR, timeout: float | None = 1800.0,
                 card: CardTurns = KeptCard()) -> None:
        """`workflows` maps a role ("still", "clip") to a template name (DEFAULT_WORKFLOWS fills the
        rest); `device` is the GPU this server is pinned to (empty: the server's own device name);
        `overrides` maps a role to template parameters fixed by the deployment (model files,
        IP-Adapter weight); `timeout` bounds each ComfyUI run; `card` is taken for each still and clip
        and lent out once its files are downloaded."""
        unknown = (set(workflows or {}) | set(overrides or {})) - set(DEFAULT_WORKFLOWS)
        if unknown:
            raise ValueError(f"unknown renderer role(s) {sorted(unknown)}; roles are {sorted(DEFAULT_WORKFLOWS)}")
        self.client = client
        self.style = style or Style()
        self.loras = dict(loras or {})
        self.references = {slug: Path(path) for slug, path in (references or {}).items()}
        self.timeout = timeout
        self.templates = {role: load_template(name, templates_dir)
                          for role, name in {**DEFAULT_WORKFLOWS, **(workflows or {})}.items()}
        for role, (output, needs) in _ROLE_CONTRACT.items():
            template = self.templates[role]
            if output not in template.outputs or not all(template.accepts(name) for name in needs):
                raise ValueError(f"template {template.name!r} cannot serve as the {role!r} template: it needs an "
                                 f"output {output!r} and parameters {', '.join(needs)}")
        self.overrides = {role: dict(values) for role, values in (overrides or {}).items()}
        for role, values in self.overrides.items():
            for name in values:
                self.templates[role].param(name)  # a misspelt override fails here, not mid-render
        self._device = device
        self.card = card
        self._server: SystemStats | None = None
        self._uploaded: dict[str, str] = {}  # sha256 of file bytes -> the server's input reference

    # -- the Renderer attributes ----------------------------------------------------------

    @property
    def server(self) -> SystemStats:
        if self._server is None:
            self._server = self.client.system_stats()
        return self._server

    @property
    def backend(self) -> str:
        return f"comfyui {self.server.comfyui_version} ({redact_url(self.client.base_url)})"

    @property
    def device(self) -> str:
        if self._device:
            return self._device
        return self.server.devices[0].name if self.server.devices else "unknown"

    @property
    def version(self) -> str:
        """Server version plus the templates' hashes: editing a template makes renders stale."""
        templates = "+".join(f"{t.name}@{t.sha256[:12]}" for t in self.templates.values())
        return f"comfyui-{self.server.comfyui_version}+{templates}"

    # -- rendering ------------------------------------------------------------------------

    def render_still(self, request: StillRequest) -> StillResult:
        with tempfile.TemporaryDirectory(prefix="comfyui-still-") as tmp, self._on_card():
            image, params = self._still(request, Path(tmp))
        return StillResult(image=image, face_boxes={}, params=params)

    def stream_clip(self, request: ClipRequest) -> ClipStream:
        """Renders on the server now (keyframe and clip on one turn of the card); the frames then stream
        from the downloaded video, which is deleted once they are read."""
        if request.n_frames < 1 or request.fps < 1:
            raise ValueError(f"a clip needs n_frames >= 1 and fps >= 1, got {request.n_frames} and {request.fps}")
        tmp = tempfile.TemporaryDirectory(prefix="comfyui-clip-")
        try:
            folder = Path(tmp.name)
            with self._on_card():
                keyframe, keyframe_params = self._keyframe(request, folder)
                image_ref, image_sha = self._upload(_png(keyframe), "keyframe", ".png", folder)
                template = self.templates["clip"]
                values = self._clip_values(template, request, image_ref)
                run = self._run("clip", values, [], folder / "out")
            video = _single(run, "video")
            available = video_frame_count(video)
            decoded = decode_video(video)
            first = next(decoded, None) if available else None
            if first is None:
                raise ComfyUIError(f"template {template.name!r}: {video.name} (prompt {run.result.prompt_id}) "
                                   "decoded to no frames")
        except BaseException:
            tmp.cleanup()
            raise
        params = self._manifest(run, values, request.characters, [])
        params.update(shot_type=request.shot_type, motion_prompt=request.motion_prompt, n_frames=request.n_frames,
                      fps=request.fps, frames_returned=available, resolution=[request.width, request.height],
                      render_resolution=list(first.shape[1::-1]),
                      keyframe={**keyframe_params, "sha256": image_sha, "uploaded_as": image_ref})
        fitted = _fit_count(itertools.chain([first], decoded), available, request.n_frames)
        return ClipStream(params=params, n_frames=request.n_frames,
                          frames=_fitted_frames(tmp, fitted, request.width, request.height))

    @contextmanager
    def _on_card(self) -> Iterator[None]:
        """One turn of the card: taken for the renders, lent out once their files are here."""
        self.card.reclaim()
        try:
            yield
        finally:
            self.card.release()

    def _still(self, request: StillRequest, folder: Path) -> tuple[np.ndarray, dict[str, Any]]:
        template = self.templates["still"]
        refs = self._references(request.characters, folder) if template.accepts("reference_images") else []
        loras = [(slug, self.loras[slug]) for slug in _slugs(request.characters) if slug in self.loras]
        values = {
            **self.overrides.get("still", {}),
            "positive": request.prompt, "negative": request.negative_prompt, "seed": request.seed,
            "steps": request.steps, "checkpoint": self.style.checkpoint, "sampler": self.style.sampler,
            "scheduler": self.style.scheduler, "cfg": self.style.cfg if request.cfg is None else request.cfg,
            "width": _round(template, "width", request.width), "height": _round(template, "height", request.height),
            "reference_images": [ref["uploaded_as"] for ref in refs] or None,
        }
        run = self._run("still", values, [lora for _, lora in loras], folder / "out")
        with Image.open(_single(run, "image")) as picture:
            image = np.asarray(picture.convert("RGB"))
        params = self._manifest(run, values, request.characters, loras)
        params.update(framing=request.framing, pose=request.pose, expression=request.expression,
                      outfit=request.outfit, resolution=[request.width, request.height],
                      render_resolution=list(image.shape[1::-1]),
                      ip_adapter=_ip_adapter(params["params"], refs),
                      developed={"exposure": request.exposure, "contrast": request.contrast})
        return develop(_fit_size(image, request.width, request.height), request.exposure, request.contrast), params

    def _keyframe(self, request: ClipRequest, folder: Path) -> tuple[np.ndarray, dict[str, Any]]:
        """Continuity uses the previous shot's last frame; otherwise the still template draws one."""
        if request.first_frame is not None:
            return np.asarray(request.first_frame, dtype=np.uint8), {"source": "first_frame"}
        still = StillRequest(characters=request.characters, prompt=request.prompt,
                             negative_prompt=request.negative_prompt, seed=request.seed, width=request.width,
                             height=request.height, framing=request.shot_type, background=request.background,
                             steps=request.steps, palette_overrides=request.palette_overrides)
        image, params = self._still(still, folder / "keyframe")
        return image, {"source": self.templates["still"].name, "params": params}

    def _clip_values(self, template: Template, request: ClipRequest, image_ref: str) -> dict[str, Any]:
        motion = f", {request.motion_prompt}" if request.motion_prompt else ""
        values: dict[str, Any] = {
            **self.overrides.get("clip", {}),
            "image": image_ref, "positive": request.prompt + motion, "negative": request.negative_prompt,
            "seed": request.seed, "steps": request.steps, "switch_step": request.steps // 2,
            "width": _round(template, "width", request.width), "height": _round(template, "height", request.height),
            "fps": float(request.fps),
            "length": _round(template, "length", request.n_frames),
            # FramePack takes seconds (at least 1); surplus frames are trimmed afterwards
            "seconds": max(1.0, math.ceil(10 * request.n_frames / request.fps) / 10),
        }
        return {name: value for name, value in values.items() if template.accepts(name)}

    def _run(self, role: str, values: Mapping[str, Any], loras: Sequence[Lora], folder: Path) -> _Run:
        template = self.templates[role]
        accepted = {name: value for name, value in values.items() if template.accepts(name)}
        graph = bind(template, loras=loras, **accepted)
        result = self.client.run(graph, folder, timeout=self.timeout, required_packs=template.packs)
        self._server = result.server
        files = {name: _node_files(result, node, folder) for name, node in template.outputs.items()}
        return _Run(template, graph, result, files)

    # -- uploads --------------------------------------------------------------------------

    def _references(self, characters: Sequence[Character], folder: Path) -> list[dict[str, Any]]:
        refs = []
        for slug in _slugs(characters):
            if slug in self.references:
                path = self.references[slug]
                uploaded, digest = self._upload(path.read_bytes(), f"ref_{slug}", path.suffix or ".png", folder)
                refs.append({"character": slug, "source": str(path), "sha256": digest, "uploaded_as": uploaded})
        return refs

    def _upload(self, data: bytes, stem: str, suffix: str, folder: Path) -> tuple[str, str]:
        """Upload under a name derived from the content, so the same image always gives the same
        graph (and the same graph hash) and is stored once on the server."""
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self._uploaded:
            path = folder / "uploads" / f"{stem}_{digest[:16]}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self._uploaded[digest] = self.client.upload_image(path, subfolder=UPLOAD_SUBFOLDER).input_ref
        return self._uploaded[digest], digest

    # -- the manifest ---------------------------------------------------------------------

    def _manifest(self, run: _Run, values: Mapping[str, Any], characters: Sequence[Character],
                  loras: Sequence[tuple[str, Lora]]) -> dict[str, Any]:
        template, graph, stats = run.template, run.graph, run.result.server
        bound = _bound_values(template, graph, values)
        return {
            "renderer": "comfyui", "backend": self.backend, "version": self.version, "device": self.device,
            "server": {"url": redact_url(self.client.base_url), "comfyui_version": stats.comfyui_version,
                       "pytorch_version": stats.pytorch_version,
                       "device": stats.devices[0].name if stats.devices else None},
            "template": template.name, "template_sha256": template.sha256,
            "graph": graph, "graph_sha256": graph_sha256(graph), "prompt_id": run.result.prompt_id,
            "characters": _slugs(characters),
            "seed": bound.get("seed"), "prompt": bound.get("positive"), "negative_prompt": bound.get("negative"),
            "steps": bound.get("steps"), "cfg": bound.get("cfg"), "sampler": bound.get("sampler"),
            "scheduler": bound.get("scheduler"), "checkpoint": bound.get("checkpoint"),
            "models": {name: bound[name] for name, p in template.params.items() if p.type == "file" and name in bound},
            "loras": [{"character": slug, **lora.as_dict()} for slug, lora in loras],
            "params": bound,
            "timings": asdict(run.result.timings), "submissions": run.result.submissions,
        }


# -- helpers -----------------------------------------------------------------------------------


def decode_video(path: Path) -> Iterator[np.ndarray]:
    """Frames of a video output as HxWx3 uint8 RGB, one at a time: animated WebP through Pillow
    (this ffmpeg build cannot decode it), everything else (mp4, webm, gif) through ffmpeg."""
    if path.suffix.lower() == ".webp":
        with Image.open(path) as animation:
            for frame in ImageSequence.Iterator(animation):
                yield np.asarray(frame.convert("RGB"))
    else:
        yield from iter_frames(path)


def video_frame_count(path: Path) -> int:
    """How many frames `decode_video` yields, without holding them (ffmpeg decodes to count)."""
    if path.suffix.lower() == ".webp":
        with Image.open(path) as animation:
            return getattr(animation, "n_frames", 1)
    return probe(path).frames or 0


def _fitted_frames(tmp: tempfile.TemporaryDirectory, frames: Iterator[np.ndarray], width: int,
                   height: int) -> Iterator[RenderedFrame]:
    with tmp:  # the downloaded video goes once its frames are read (or the reader stops)
        for frame in frames:
            yield RenderedFrame(_fit_size(frame, width, height), {})


def _slugs(characters: Sequence[Character]) -> list[str]:
    return [character.slug for character in characters]


def _round(template: Template, name: str, value: int) -> int | None:
    return template.param(name).round_up(value) if template.accepts(name) else None


def _bound_values(template: Template, graph: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter as submitted, read back from the graph; those of dropped groups are absent."""
    bound = {}
    for name, param in template.params.items():
        node, input_name = param.targets[0]
        if node not in graph:
            continue
        given = values.get(name) if param.batch else None
        if given is None:
            bound[name] = graph[node]["inputs"][input_name]
        else:  # a batch lives in several LoadImage nodes: record the list as given
            bound[name] = [given] if isinstance(given, str) else list(given)
    return bound


def _ip_adapter(bound: Mapping[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not refs:
        return None
    return {"references": refs, "weight": bound.get("ip_adapter_weight"), "start_at": bound.get("ip_adapter_start_at"),
            "end_at": bound.get("ip_adapter_end_at"), "preset": bound.get("ip_adapter_preset")}


def _node_files(result: RunResult, node_id: str, folder: Path) -> list[Path]:
    """The downloaded files one output node reported (temp previews are not downloaded)."""
    items = [item for value in result.node_outputs.get(node_id, {}).values() if isinstance(value, list)
             for item in value if isinstance(item, Mapping) and "filename" in item]
    return [folder.joinpath(*str(item.get("subfolder", "")).replace("\\", "/").split("/"), str(item["filename"]))
            for item in items if item.get("type", "output") != "temp"]


def _single(run: _Run, output: str) -> Path:
    files = run.files.get(output) or []
    if not files or not files[0].is_file():
        node = run.template.outputs[output]
        raise ComfyUIError(f"template {run.template.name!r}: output {output!r} (node {node}, "
                           f"{run.graph[node]['class_type']}) produced no file in prompt {run.result.prompt_id}")
    return files[0]


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _fit_size(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Templates render at their nodes' size steps (and FramePack at its buckets): resize back."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def _fit_count(frames: Iterator[np.ndarray], available: int, count: int) -> Iterator[np.ndarray]:
    """Lengths are rounded up to the model's grid, so trim; a short clip is stretched evenly (frame
    i of the result is frame round(i · (available − 1) / (count − 1)) of the output)."""
    if available >= count:
        yield from itertools.islice(frames, count)
        return
    repeats = Counter(round(i * (available - 1) / max(1, count - 1)) for i in range(count))
    for index, frame in enumerate(frames):
        for _ in range(repeats[index]):
            yield frame