"""Tiny single-file checkpoints with the real SD 1.5 / SDXL key layout (LDM names, original block
structure, CLIP and OpenCLIP text encoders), tiny sizes: what a key check reads from a real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

C, CTX, TEXT, TIME = 8, 12, 12, 16  # channels, cross-attention context, text width, time embedding
UNET = "model.diffusion_model."


def _resnet(prefix: str, shapes: dict[str, tuple[int, ...]], skip: bool = False) -> None:
    shapes.update({f"{prefix}.in_layers.0.weight": (C,), f"{prefix}.in_layers.2.weight": (C, C, 3, 3),
                   f"{prefix}.emb_layers.1.weight": (C, TIME), f"{prefix}.out_layers.0.weight": (C,),
                   f"{prefix}.out_layers.3.weight": (C, C, 3, 3), f"{prefix}.in_layers.2.bias": (C,)})
    if skip:
        shapes[f"{prefix}.skip_connection.weight"] = (C, C, 1, 1)


def _attention(prefix: str, shapes: dict[str, tuple[int, ...]], blocks: int, linear_proj: bool) -> None:
    proj = (C, C) if linear_proj else (C, C, 1, 1)  # SDXL's proj_in/out are Linear, SD 1.5's 1x1 convs
    shapes.update({f"{prefix}.norm.weight": (C,), f"{prefix}.proj_in.weight": proj, f"{prefix}.proj_out.weight": proj,
                   f"{prefix}.proj_in.bias": (C,)})
    for block in range(blocks):
        b = f"{prefix}.transformer_blocks.{block}"
        for attn, context in (("attn1", C), ("attn2", CTX)):
            shapes.update({f"{b}.{attn}.to_q.weight": (C, C), f"{b}.{attn}.to_k.weight": (C, context),
                           f"{b}.{attn}.to_v.weight": (C, context), f"{b}.{attn}.to_out.0.weight": (C, C),
                           f"{b}.{attn}.to_out.0.bias": (C,)})
        shapes.update({f"{b}.ff.net.0.proj.weight": (8 * C, C), f"{b}.ff.net.2.weight": (C, 4 * C),
                       f"{b}.norm1.weight": (C,)})


def _unet(attention_levels: set[int], levels: int, blocks: int, linear_proj: bool) -> dict[str, tuple[int, ...]]:
    """The LDM UNet: input_blocks (2 resnets per level, a downsampler between levels), the middle
    block, output_blocks (3 per level, an upsampler ending each level but the last)."""
    shapes: dict[str, tuple[int, ...]] = {"time_embed.0.weight": (TIME, C), "time_embed.2.weight": (TIME, TIME),
                                          "input_blocks.0.0.weight": (C, 4, 3, 3), "out.0.weight": (C,),
                                          "out.2.weight": (4, C, 3, 3)}
    index = 1
    for level in range(levels):
        for _ in range(2):
            _resnet(f"input_blocks.{index}.0", shapes)
            if level in attention_levels:
                _attention(f"input_blocks.{index}.1", shapes, blocks, linear_proj)
            index += 1
        if level < levels - 1:
            shapes[f"input_blocks.{index}.0.op.weight"] = (C, C, 3, 3)
            index += 1
    _resnet("middle_block.0", shapes)
    _attention("middle_block.1", shapes, blocks, linear_proj)
    _resnet("middle_block.2", shapes)
    for level, mirrored in enumerate(reversed(range(levels))):
        for slot in range(3):
            index = 3 * level + slot
            _resnet(f"output_blocks.{index}.0", shapes, skip=True)
            if mirrored in attention_levels:
                _attention(f"output_blocks.{index}.1", shapes, blocks, linear_proj)
        if level < levels - 1:
            upsampler = 2 if mirrored in attention_levels else 1
            shapes[f"output_blocks.{3 * level + 2}.{upsampler}.conv.weight"] = (C, C, 3, 3)
    return {UNET + key: shape for key, shape in shapes.items()}


def _clip(prefix: str, layers: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}embeddings.token_embedding.weight": (64, TEXT)}
    for layer in range(layers):
        p = f"{prefix}encoder.layers.{layer}."
        shapes.update({p + f"self_attn.{n}_proj.weight": (TEXT, TEXT) for n in "qkv"})
        shapes.update({p + "self_attn.out_proj.weight": (TEXT, TEXT), p + "mlp.fc1.weight": (4 * TEXT, TEXT),
                       p + "mlp.fc2.weight": (TEXT, 4 * TEXT), p + "layer_norm1.weight": (TEXT,)})
    return shapes


def _openclip(prefix: str, layers: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}token_embedding.weight": (64, TEXT)}
    for layer in range(layers):
        p = f"{prefix}transformer.resblocks.{layer}."
        shapes.update({p + "attn.in_proj_weight": (3 * TEXT, TEXT), p + "attn.out_proj.weight": (TEXT, TEXT),
                       p + "mlp.c_fc.weight": (4 * TEXT, TEXT), p + "mlp.c_proj.weight": (TEXT, 4 * TEXT),
                       p + "ln_1.weight": (TEXT,)})
    return shapes


SD15 = {**_unet({0, 1, 2}, 4, 1, linear_proj=False),
        **_clip("cond_stage_model.transformer.text_model.", 2),
        "first_stage_model.encoder.conv_in.weight": (C, 3, 3, 3)}
SDXL = {**_unet({1, 2}, 3, 2, linear_proj=True),
        "model.diffusion_model.label_emb.0.0.weight": (TIME, 24), "model.diffusion_model.label_emb.0.2.weight": (TIME, TIME),
        **_clip("conditioner.embedders.0.transformer.text_model.", 2),
        **_openclip("conditioner.embedders.1.model.", 2),
        "first_stage_model.encoder.conv_in.weight": (C, 3, 3, 3)}


def write_checkpoint(path: Path, layout: dict[str, tuple[int, ...]]) -> Path:
    rng = np.random.default_rng(0)
    save_file({key: rng.normal(0, 0.02, shape).astype(np.float16) for key, shape in layout.items()}, str(path),
              metadata={"modelspec.title": path.stem})
    return path
