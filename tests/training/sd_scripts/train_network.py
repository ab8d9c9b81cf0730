"""Stand-in for kohya-ss/sd-scripts train_network.py (protocols.md §4, protocols-more.md §4).

It speaks the real CLI (argparse refuses unknown flags, as kohya's does), reads the dataset TOML
and the `.txt` captions, prints kohya's header, `epoch N/M` and `saving checkpoint: ...` on stdout
and tqdm's `steps: ...| 12/40 [..., avr_loss=0.0812]` bar on stderr (redrawn with `\\r`), renders
the sample prompts per epoch into `<output_dir>/sample/`, and writes real safetensors LoRAs with
kohya's key names (`lora_unet_…`, `lora_te_…`, SDXL `lora_te1_/lora_te2_`) for the checkpoint's own
modules, with kohya's `ss_*` metadata. It does not learn anything: the weights and the losses are
deterministic functions of the seed, the dataset and the step.

Test knobs (environment): FAKE_KOHYA_STEP_SECONDS (sleep per step), FAKE_KOHYA_FAIL_AT_STEP (die
there like a CUDA OOM), FAKE_KOHYA_BAD_KEYS (write keys the base model lacks and a wrong shape),
FAKE_KOHYA_CHILD_PIDFILE (start a child process, like a dataloader worker, and write its pid),
FAKE_KOHYA_IGNORE_SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import save_file

SAMPLERS = ["ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a"]
# diffusers names of SD 1.5's attention blocks (diffusers' conversion script), by LDM block
SD15_ATTENTIONS = {
    "input_blocks.1.1": "down_blocks.0.attentions.0", "input_blocks.2.1": "down_blocks.0.attentions.1",
    "input_blocks.4.1": "down_blocks.1.attentions.0", "input_blocks.5.1": "down_blocks.1.attentions.1",
    "input_blocks.7.1": "down_blocks.2.attentions.0", "input_blocks.8.1": "down_blocks.2.attentions.1",
    "middle_block.1": "mid_block.attentions.0",
    "output_blocks.3.1": "up_blocks.1.attentions.0", "output_blocks.4.1": "up_blocks.1.attentions.1",
    "output_blocks.5.1": "up_blocks.1.attentions.2", "output_blocks.6.1": "up_blocks.2.attentions.0",
    "output_blocks.7.1": "up_blocks.2.attentions.1", "output_blocks.8.1": "up_blocks.2.attentions.2",
    "output_blocks.9.1": "up_blocks.3.attentions.0", "output_blocks.10.1": "up_blocks.3.attentions.1",
    "output_blocks.11.1": "up_blocks.3.attentions.2",
}
ATTENTION_CHILD = re.compile(r"(proj_in|proj_out|transformer_blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)"
                             r"|ff\.net\.0\.proj|ff\.net\.2))\.weight")
SGM_ATTENTION = re.compile(r"((?:input_blocks|output_blocks)\.\d+\.1|middle_block\.1)\.(.+)")
CLIP_CHILD = re.compile(r"encoder\.layers\.(\d+)\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])\.weight")
OPENCLIP_CHILD = re.compile(r"transformer\.resblocks\.(\d+)\.(attn\.in_proj_weight|attn\.out_proj\.weight|"
                            r"mlp\.c_fc\.weight|mlp\.c_proj\.weight)")


def parser(sdxl: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--pretrained_model_name_or_path", required=True)
    p.add_argument("--dataset_config")
    p.add_argument("--train_data_dir")
    p.add_argument("--reg_data_dir")
    p.add_argument("--in_json")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--output_name")
    p.add_argument("--save_model_as", choices=["ckpt", "safetensors", "diffusers", "diffusers_safetensors"])
    p.add_argument("--save_precision", choices=[None, "float", "fp16", "bf16"])
    p.add_argument("--network_module")
    p.add_argument("--network_dim", type=int)
    p.add_argument("--network_alpha", type=float, default=1.0)
    p.add_argument("--network_args", nargs="*")
    p.add_argument("--network_weights")
    p.add_argument("--network_train_unet_only", action="store_true")
    p.add_argument("--learning_rate", type=float, default=2e-6)
    p.add_argument("--unet_lr", type=float)
    p.add_argument("--text_encoder_lr", type=float, nargs="*")
    p.add_argument("--optimizer_type", default="")
    p.add_argument("--lr_scheduler", default="constant")
    p.add_argument("--max_train_steps", type=int, default=1600)
    p.add_argument("--max_train_epochs", type=int)
    p.add_argument("--save_every_n_epochs", type=int)
    p.add_argument("--save_every_n_steps", type=int)
    p.add_argument("--save_last_n_epochs", type=int)
    p.add_argument("--save_state", action="store_true")
    p.add_argument("--resume")
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--caption_extension", default=".caption")
    p.add_argument("--seed", type=int)
    p.add_argument("--resolution")
    p.add_argument("--train_batch_size", type=int, default=1)
    p.add_argument("--sdpa", action="store_true")
    p.add_argument("--xformers", action="store_true")
    p.add_argument("--clip_skip", type=int)
    p.add_argument("--cache_latents", action="store_true")
    p.add_argument("--cache_latents_to_disk", action="store_true")
    p.add_argument("--logging_dir")
    p.add_argument("--log_with", choices=["tensorboard", "wandb", "all"])
    p.add_argument("--log_prefix")
    p.add_argument("--sample_every_n_epochs", type=int)
    p.add_argument("--sample_every_n_steps", type=int)
    p.add_argument("--sample_at_first", action="store_true")
    p.add_argument("--sample_prompts")
    p.add_argument("--sample_sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--console_log_simple", action="store_true")
    p.add_argument("--no_half_vae", action="store_true")
    p.add_argument("--cache_text_encoder_outputs", action="store_true")
    if sdxl:
        p.add_argument("--text_encoder_lr1", type=float)
        p.add_argument("--text_encoder_lr2", type=float)
    return p


def read_header(path: Path) -> dict:
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def dataset(config: Path, cli_extension: str) -> tuple[list[tuple[Path, str]], int, int, str, str]:
    """(image, caption) pairs with repeats, batch size, resolution, caption extension, image_dir."""
    data = tomllib.loads(config.read_text())
    general = data.get("general", {})
    datasets = data.get("datasets") or []
    if not datasets or not datasets[0].get("subsets"):
        raise SystemExit("voluptuous.error.MultipleInvalid: required key not provided @ data['datasets'][0]['subsets']")
    subset = datasets[0]["subsets"][0]
    if "image_dir" not in subset:
        raise SystemExit("voluptuous.error.MultipleInvalid: required key not provided @ "
                         "data['datasets'][0]['subsets'][0]['image_dir']")
    extension = general.get("caption_extension", cli_extension)  # TOML values win over the CLI
    folder = Path(subset["image_dir"])
    pairs = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp")):
        caption_file = image.with_suffix(extension)
        if caption_file.exists():
            caption = caption_file.read_text(encoding="utf-8").strip()
        elif subset.get("class_tokens"):
            caption = subset["class_tokens"]
        else:
            raise SystemExit(f"neither caption file nor class tokens are found for {image}")
        pairs.append((image, caption))
    return (pairs * int(subset.get("num_repeats", 1)), int(datasets[0].get("batch_size", 1)),
            int(datasets[0].get("resolution", 512)), extension, str(folder))


def targets(checkpoint: dict, sdxl: bool, unet_only: bool) -> dict[str, tuple[int, ...]]:
    """kohya LoRA module name -> the (out, in, ...) shape of the weight it adapts."""
    found: dict[str, tuple[int, ...]] = {}
    for key, entry in checkpoint.items():
        shape = tuple(entry["shape"])
        if key.startswith("model.diffusion_model."):
            path = key[len("model.diffusion_model."):]
            for block, diffusers in ({} if sdxl else SD15_ATTENTIONS).items():
                if path.startswith(block + ".") and ATTENTION_CHILD.fullmatch(path[len(block) + 1:]):
                    child = path[len(block) + 1:-len(".weight")]
                    found["lora_unet_" + f"{diffusers}.{child}".replace(".", "_")] = shape
            if sdxl and (match := SGM_ATTENTION.fullmatch(path)) and ATTENTION_CHILD.fullmatch(match.group(2)):
                found["lora_unet_" + path[:-len(".weight")].replace(".", "_")] = shape  # SGM names as they are
        elif unet_only:
            continue
        elif key.startswith(("cond_stage_model.transformer.text_model.", "conditioner.embedders.0.transformer.text_model.")):
            prefix = "lora_te_" if key.startswith("cond_stage_model") else "lora_te1_"
            inner = key.split("text_model.", 1)[1]
            if CLIP_CHILD.fullmatch(inner):
                found[prefix + "text_model_" + inner[:-len(".weight")].replace(".", "_")] = shape
        elif key.startswith("conditioner.embedders.1.model.") and (match := OPENCLIP_CHILD.fullmatch(
                key[len("conditioner.embedders.1.model."):])):
            layer, part = match.group(1), match.group(2)
            base = f"lora_te2_text_model_encoder_layers_{layer}_"
            if part == "attn.in_proj_weight":
                for name in ("q", "k", "v"):
                    found[f"{base}self_attn_{name}_proj"] = (shape[0] // 3, *shape[1:])
            else:
                child = {"attn.out_proj.weight": "self_attn_out_proj", "mlp.c_fc.weight": "mlp_fc1",
                         "mlp.c_proj.weight": "mlp_fc2"}[part]
                found[base + child] = shape
    return found


def lora_tensors(modules: dict[str, tuple[int, ...]], rank: int, alpha: float, seed: int, progress: float,
                 bad_keys: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for name, shape in sorted(modules.items()):
        out_f, in_f, kernel = shape[0], shape[1], tuple(shape[2:])
        down_kernel, up_kernel = kernel, (1,) * len(kernel)
        tensors[f"{name}.lora_down.weight"] = rng.normal(0, 1 / rank, (rank, in_f, *down_kernel)).astype(np.float32)
        tensors[f"{name}.lora_up.weight"] = (rng.normal(0, 0.01, (out_f, rank, *up_kernel)) * progress).astype(np.float32)
        tensors[f"{name}.alpha"] = np.array(alpha, dtype=np.float32)
    if bad_keys:
        first = sorted(k for k in tensors if k.startswith("lora_unet_"))[0].rsplit(".", 2)[0]
        tensors["lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight"] = tensors.pop(f"{first}.lora_down.weight")
        tensors[f"{first}.lora_down.weight"] = np.zeros((rank, 3), np.float32)  # the wrong input size
    return tensors


def save(path: Path, tensors: dict[str, np.ndarray], precision: str | None, metadata: dict[str, str]) -> None:
    if precision == "bf16":
        import torch
        from safetensors.torch import save_file as save_torch

        save_torch({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in tensors.items()}, str(path), metadata)
        return
    dtype = np.float16 if precision == "fp16" else np.float32
    save_file({k: v.astype(dtype) for k, v in tensors.items()}, str(path), metadata)


def samples(args, epoch: int, step: int) -> None:
    if not args.sample_prompts or not args.sample_every_n_epochs or epoch % args.sample_every_n_epochs:
        return
    prompt_file = Path(args.sample_prompts)
    if not prompt_file.exists():
        print(f"No prompt file / プロンプトファイルがありません: {prompt_file}", file=sys.stderr)
        return
    print(f"generating sample images at step / サンプル画像生成 ステップ: {step}", file=sys.stderr, flush=True)
    folder = Path(args.output_dir) / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line for line in prompt_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    for index, line in enumerate(lines):
        options = dict(part.split(" ", 1) for part in line.split(" --")[1:] if " " in part)
        width, height, seed = int(options.get("w", 512)), int(options.get("h", 512)), options.get("d")
        shade = int(hashlib.sha256(f"{line}|{epoch}".encode()).hexdigest()[:2], 16)
        image = np.full((height, width, 3), shade, np.uint8)
        stamp = time.strftime("%Y%m%d%H%M%S")
        suffix = f"_{seed}" if seed is not None else ""
        Image.fromarray(image).save(folder / f"{args.output_name}_e{epoch:06d}_{index:02d}_{stamp}{suffix}.png",
                                    compress_level=1)


def main(sdxl: bool = False) -> None:
    args = parser(sdxl).parse_args()
    if os.environ.get("FAKE_KOHYA_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if importlib.util.find_spec(args.network_module or "") is None:
        raise SystemExit(f"ModuleNotFoundError: No module named '{args.network_module}'")
    if args.network_dim is None:
        raise SystemExit("network_dim is required")
    child = None
    if pidfile := os.environ.get("FAKE_KOHYA_CHILD_PIDFILE"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        Path(pidfile).write_text(str(child.pid))
    checkpoint = read_header(Path(args.pretrained_model_name_or_path))
    pairs, batch_size, resolution, extension, image_dir = dataset(Path(args.dataset_config), args.caption_extension)
    epochs = args.max_train_epochs or 1
    batches = math.ceil(len(pairs) / batch_size)
    total = batches * epochs
    print("running training / 学習開始")
    print(f"  num train images * repeats / 学習画像の数×繰り返し回数: {len(pairs)}")
    print("  num validation images * repeats / 学習画像の数×繰り返し回数: 0")
    print("  num reg images / 正則化画像の数: 0")
    print(f"  num batches per epoch / 1epochのバッチ数: {batches}")
    print(f"  num epochs / epoch数: {epochs}")
    print(f"  batch size per device / バッチサイズ: {batch_size}")
    print("  gradient accumulation steps / 勾配を合計するステップ数 = 1")
    print(f"  total optimization steps / 学習ステップ数: {total}", flush=True)
    modules = targets(checkpoint, sdxl, args.network_train_unet_only)
    seed = args.seed if args.seed is not None else 0
    digest = int(hashlib.sha256("".join(c for _, c in pairs).encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed ^ digest)
    step_seconds = float(os.environ.get("FAKE_KOHYA_STEP_SECONDS", "0"))
    fail_at = int(os.environ.get("FAKE_KOHYA_FAIL_AT_STEP", "0"))
    window: list[float] = []  # LossRecorder: one loss per step of an epoch, replaced the next epoch
    session, started = uuid.uuid4().hex, int(time.time())
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    step = 0
    for epoch in range(1, epochs + 1):
        print(f"\nepoch {epoch}/{epochs}", flush=True)
        for index in range(batches):
            time.sleep(step_seconds)
            step += 1
            if step == fail_at:
                print("Traceback (most recent call last):\n  File \"train_network.py\", line 1290, in train\n"
                      "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr)
                sys.exit(1)
            loss = 0.1 * math.exp(-2.0 * step / total) + 0.03 + float(rng.normal(0, 0.002))
            if epoch == 1:
                window.append(loss)
            else:
                window[index] = loss
            average = sum(window) / len(window)
            percent = 100 * step // total
            bar = "█" * (percent // 10)
            sys.stderr.write(f"\rsteps: {percent:3d}%|{bar:<10}| {step}/{total} [00:0{step % 10}<00:10,  3.21it/s, "
                             f"avr_loss={average:.4g}]")
            sys.stderr.flush()
        name = f"{args.output_name}-{epoch:06d}.safetensors" if epoch < epochs else f"{args.output_name}.safetensors"
        if epoch == epochs or (args.save_every_n_epochs and epoch % args.save_every_n_epochs == 0):
            path = output_dir / name
            print(f"\nsaving checkpoint: {path}", flush=True)
            metadata = {
                "ss_session_id": session, "ss_training_started_at": str(started), "ss_output_name": args.output_name,
                "ss_learning_rate": str(args.learning_rate), "ss_num_train_images": str(len(pairs)),
                "ss_num_batches_per_epoch": str(batches), "ss_num_epochs": str(epochs), "ss_epoch": str(epoch),
                "ss_steps": str(step), "ss_max_train_steps": str(total), "ss_network_module": args.network_module,
                "ss_network_dim": str(args.network_dim), "ss_network_alpha": str(args.network_alpha),
                "ss_mixed_precision": args.mixed_precision, "ss_seed": str(seed), "ss_resolution": f"({resolution}, {resolution})",
                "ss_optimizer": args.optimizer_type or "AdamW", "ss_sd_model_name": Path(args.pretrained_model_name_or_path).name,
                "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1", "ss_caption_extension": extension,
                "ss_dataset_dirs": json.dumps({Path(image_dir).name: {"n_repeats": len(pairs), "img_count": len(pairs)}}),
                "ss_tag_frequency": json.dumps({Path(image_dir).name: _tags(pairs)}),
                "ss_training_finished_at": str(int(time.time())) if epoch == epochs else "",
            }
            tensors = lora_tensors(modules, args.network_dim, args.network_alpha, seed, step / total,
                                   bool(os.environ.get("FAKE_KOHYA_BAD_KEYS")))
            save(path, tensors, args.save_precision, metadata)
        samples(args, epoch, step)
    print("model saved.", file=sys.stderr, flush=True)
    if child is not None:
        child.terminate()


def _tags(pairs: list[tuple[Path, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, caption in pairs:
        for tag in filter(None, (t.strip() for t in caption.split(","))):
            counts[tag] = counts.get(tag, 0) + 1
    return counts


if __name__ == "__main__":
    main()
