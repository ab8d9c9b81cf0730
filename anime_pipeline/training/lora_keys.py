"""Do a LoRA's keys map onto the base model? The check ComfyUI does not make loudly.

ComfyUI's loader maps each LoRA key to a module of the loaded model and, for a key it cannot map,
logs "lora key not loaded" on its console and carries on: the run succeeds with part of the LoRA.
This module makes the same mapping from the base model's module names (a checkpoint's header, or a
configured list) and names every key that would be dropped, and why.

Base module names are the single-file checkpoint's keys without `.weight`/`.bias`, e.g.
`model.diffusion_model.input_blocks.1.1.proj_in`. A LoRA module maps onto one when it is

* ComfyUI-native: `diffusion_model.<ldm path>` (what TrainLoraNode saves);
* kohya, SGM names: `lora_unet_<ldm path with _>` (SDXL);
* kohya, diffusers names: `lora_unet_<diffusers path with _>` (SD 1.x): `down_blocks.0.attentions.0`
  is `input_blocks.1.1`, and so on (the layout follows the checkpoint's own blocks);
* kohya text encoders: `lora_te_` (SD 1.x `cond_stage_model.transformer`), `lora_te1_`/`lora_te2_`
  (SDXL `conditioner.embedders.0` / the OpenCLIP `embedders.1`, whose fused `in_proj` holds q, k, v).

With shapes known (a checkpoint), `lora_down`'s input and `lora_up`'s output size must fit the
module's weight as well: ComfyUI skips a patch whose shape does not fit, just as quietly.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anime_pipeline.storage import sha256_file
from anime_pipeline.training.errors import LoraFileError, LoraKeyMismatch
from anime_pipeline.training.safetensors_io import SafetensorsHeader, read_header

UNET_PREFIX = "model.diffusion_model."
_UNET_ONLY_ROOTS = ("input_blocks.", "middle_block.", "output_blocks.", "time_embed.", "label_emb.", "out.")
_TE = {"cond_stage_model.transformer.text_model.": "lora_te_text_model_",
       "conditioner.embedders.0.transformer.text_model.": "lora_te1_text_model_"}
_OPENCLIP = re.compile(r"conditioner\.embedders\.1\.model\.transformer\.resblocks\.(\d+)\.(.+)")
_OPENCLIP_PARTS = {"attn.out_proj.weight": ["self_attn_out_proj"], "mlp.c_fc.weight": ["mlp_fc1"],
                   "mlp.c_proj.weight": ["mlp_fc2"],
                   "attn.in_proj_weight": ["self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj"]}
_RESNET = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
           "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_TOP = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
        "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
        "out.0": "conv_norm_out", "out.2": "conv_out", "input_blocks.0.0": "conv_in"}
# LoRA tensor suffixes per algorithm; `shape` says which size must fit the base module
_SUFFIXES: tuple[tuple[str, str | None], ...] = (
    (".lora_down.weight", "in"), (".lora_up.weight", "out"), (".lora_mid.weight", None), (".alpha", None),
    (".dora_scale", None), (".lora_A.weight", "in"), (".lora_B.weight", "out"), (".diff", "same"),
    (".diff_b", "bias"), (".hada_w1_a", None), (".hada_w1_b", None), (".hada_w2_a", None), (".hada_w2_b", None),
    (".hada_t1", None), (".hada_t2", None), (".lokr_w1", None), (".lokr_w1_a", None), (".lokr_w1_b", None),
    (".lokr_w2", None), (".lokr_w2_a", None), (".lokr_w2_b", None), (".lokr_t2", None), (".oft_blocks", None),
    (".oft_diag", None), (".rescale", None),
)


@dataclass(frozen=True)
class Target:
    """Where a LoRA module lands: the base module and the (out, in) sizes its weight offers."""

    module: str
    out_features: int | None = None
    in_features: int | None = None
    weight_shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BaseModel:
    """The model a LoRA is trained for and applied to: its name as the server knows it, its hash,
    and its modules (name -> weight shape, None where only names were configured)."""

    name: str
    modules: Mapping[str, tuple[int, ...] | None] = field(repr=False)
    sha256: str | None = None
    path: Path | None = None
    source: str = ""

    @classmethod
    def from_checkpoint(cls, path: Path | str, name: str | None = None, hash_file: bool = True) -> BaseModel:
        """From a single-file checkpoint's header (no tensor is read); hashed unless told not to."""
        path = Path(path)
        header = read_header(path)
        modules = _modules({key: info.shape for key, info in header.tensors.items()})
        return cls(name or path.name, modules, _cached_sha256(path) if hash_file else None, path,
                   f"checkpoint header of {path}")

    @classmethod
    def from_module_list(cls, name: str, path: Path | str) -> BaseModel:
        """From a text file of module names (checkpoint keys, one a line; `.weight` optional);
        the checkpoint's hash is unknown then."""
        path = Path(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LoraFileError(path, f"cannot read the module list: {exc}") from exc
        keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        if not keys:
            raise LoraFileError(path, "the module list is empty")
        names = {key if key.endswith((".weight", "in_proj_weight")) else f"{key}.weight": None for key in keys}
        return cls(name, _modules(names), None, None, f"module list {path}")

    @property
    def architecture(self) -> str:
        """"sdxl", "sd15" or "unknown", from the text encoders the checkpoint carries."""
        if any(m.startswith("conditioner.embedders.") for m in self.modules):
            return "sdxl"
        if any(m.startswith("cond_stage_model.") for m in self.modules):
            return "sd15"
        return "unknown"

    @functools.cached_property
    def lora_targets(self) -> dict[str, Target]:
        """Every LoRA module name (all families) that lands on a module of this model."""
        return _targets(self.modules)


def _modules(shapes: Mapping[str, tuple[int, ...] | None]) -> dict[str, tuple[int, ...] | None]:
    """Weight keys -> module names (`x.weight` -> `x`; a UNet-only file gets the checkpoint prefix)."""
    modules: dict[str, tuple[int, ...] | None] = {}
    for key, shape in shapes.items():
        if key.endswith(".weight"):
            name = key[: -len(".weight")]
        elif key.endswith("in_proj_weight"):
            name = key  # OpenCLIP's fused q/k/v keeps its full key as the module name
        else:
            continue
        if name.startswith(_UNET_ONLY_ROOTS):
            name = UNET_PREFIX + name
        modules[name] = shape
    return modules


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def _cached_sha256(path: Path) -> str:
    """A checkpoint is gigabytes: hash it once per process while it is unchanged."""
    stat = path.stat()
    return _sha256_of(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _targets(modules: Mapping[str, tuple[int, ...] | None]) -> dict[str, Target]:
    targets: dict[str, Target] = {}
    unet = [m[len(UNET_PREFIX):] for m in modules if m.startswith(UNET_PREFIX)]
    res_blocks = _res_blocks_per_level(unet)
    for module, shape in modules.items():
        out_f, in_f = (shape[0], shape[1]) if shape is not None and len(shape) >= 2 else (None, None)
        target = Target(module, out_f, in_f, shape)
        if module.startswith(UNET_PREFIX):
            path = module[len(UNET_PREFIX):]
            targets["diffusion_model." + path] = target
            targets["lora_unet_" + path.replace(".", "_")] = target
            diffusers = _diffusers_path(path, res_blocks)
            if diffusers is not None:
                targets["lora_unet_" + diffusers.replace(".", "_")] = target
            continue
        for prefix, lora_prefix in _TE.items():
            if module.startswith(prefix):
                targets[lora_prefix + module[len(prefix):].replace(".", "_")] = target
        match = _OPENCLIP.fullmatch(module if module.endswith("in_proj_weight") else module + ".weight")
        if match and match.group(2) in _OPENCLIP_PARTS:
            parts = _OPENCLIP_PARTS[match.group(2)]
            out_split = out_f // len(parts) if out_f is not None else None
            for part in parts:
                targets[f"lora_te2_text_model_encoder_layers_{match.group(1)}_{part}"] = Target(
                    module, out_split, in_f, shape)
    return targets


def _res_blocks_per_level(unet_paths: Iterable[str]) -> int:
    """num_res_blocks: the first downsampler (`input_blocks.K.0.op`) sits at K = blocks + 1."""
    downsamplers = [int(m.group(1)) for p in unet_paths if (m := re.fullmatch(r"input_blocks\.(\d+)\.0\.op", p))]
    return min(downsamplers) - 1 if downsamplers else 2


def _diffusers_path(path: str, res_blocks: int) -> str | None:
    """The diffusers UNet name of an LDM module path (what kohya uses for SD 1.x), or None."""
    for ldm, diffusers in _TOP.items():
        if path == ldm or path.startswith(ldm + "."):
            return diffusers + path[len(ldm):]
    parts = path.split(".")
    if parts[0] == "middle_block" and len(parts) > 2:
        index, rest = int(parts[1]), parts[2:]
        return "mid_block.attentions.0." + ".".join(rest) if index == 1 else _resnet(
            f"mid_block.resnets.{index // 2}", rest)
    if parts[0] not in ("input_blocks", "output_blocks") or len(parts) < 4 or not parts[1].isdigit():
        return None
    index, sub, rest = int(parts[1]), parts[2], parts[3:]
    if parts[0] == "input_blocks":
        level, slot = divmod(index - 1, res_blocks + 1)
        if slot == res_blocks:
            return f"down_blocks.{level}.downsamplers.0.conv" if rest == ["op"] else None
        return _block(f"down_blocks.{level}", slot, sub, rest)
    level, slot = divmod(index, res_blocks + 1)
    if rest == ["conv"] and sub in ("1", "2"):
        return f"up_blocks.{level}.upsamplers.0.conv"
    return _block(f"up_blocks.{level}", slot, sub, rest)


def _block(block: str, slot: int, sub: str, rest: list[str]) -> str | None:
    if sub == "0":
        return _resnet(f"{block}.resnets.{slot}", rest)
    if sub == "1":
        return f"{block}.attentions.{slot}." + ".".join(rest)
    return None


def _resnet(prefix: str, rest: list[str]) -> str | None:
    inner = ".".join(rest)
    for ldm, diffusers in _RESNET.items():
        if inner == ldm or inner.startswith(ldm + "."):
            return f"{prefix}.{diffusers}{inner[len(ldm):]}"
    return None


# -- the check ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyReport:
    lora: Path
    base: str
    keys: int
    modules: int  # LoRA modules that land on the base model
    problems: tuple[tuple[str, str], ...]  # (key, why it would be dropped)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def dropped(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.problems)


def check_lora_keys(lora: Path | str, base: BaseModel, header: SafetensorsHeader | None = None) -> KeyReport:
    """Which keys of the LoRA file would load onto `base`, and which would be dropped and why
    (`header`: the file's, when the caller has read it already)."""
    header = header if header is not None else read_header(lora)
    targets = base.lora_targets
    problems: list[tuple[str, str]] = []
    landed: set[str] = set()
    for key, info in sorted(header.tensors.items()):
        module, fits = _split(key)
        if module is None:
            problems.append((key, "not a LoRA tensor name this loader knows (no known suffix)"))
        elif module not in targets:
            problems.append((key, f"no module {module!r} in the base model"))
        else:
            reason = _shape_problem(info.shape, targets[module], fits)
            if reason:
                problems.append((key, reason))
            else:
                landed.add(module)
    if not header.tensors:
        problems.append(("(none)", "the file holds no tensors"))
    return KeyReport(Path(lora), base.name, len(header.tensors), len(landed), tuple(problems))


def require_lora_keys(lora: Path | str, base: BaseModel, header: SafetensorsHeader | None = None) -> KeyReport:
    """check_lora_keys, raising LoraKeyMismatch (naming every dropped key) unless all keys load."""
    report = check_lora_keys(lora, base, header)
    if not report.ok:
        raise LoraKeyMismatch(lora, f"{base.name} ({base.source})", report.problems)
    return report


def _split(key: str) -> tuple[str | None, str | None]:
    for suffix, fits in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], fits
    return None, None


def _shape_problem(shape: tuple[int, ...], target: Target, fits: str | None) -> str | None:
    if target.weight_shape is None or fits is None:
        return None
    expected: tuple[str, int | None, int | None]
    if fits == "in":
        expected = ("input size", target.in_features, shape[1] if len(shape) > 1 else None)
    elif fits == "out":
        expected = ("output size", target.out_features, shape[0] if shape else None)
    elif fits == "bias":
        expected = ("bias size", target.out_features if target.out_features else target.weight_shape[0],
                    shape[0] if len(shape) == 1 else None)
    else:
        return None if tuple(shape) == target.weight_shape else (
            f"shape {list(shape)} differs from {target.module}'s weight {list(target.weight_shape)}")
    what, wanted, got = expected
    if wanted is not None and got != wanted:
        return f"{what} {got} does not fit {target.module} (weight {list(target.weight_shape)}, needs {wanted})"
    return None
