"""LoRA keys against the base model's modules: what ComfyUI would load, and what it would drop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from anime_pipeline.training.errors import LoraKeyMismatch, TrainingError
from anime_pipeline.training.lora_keys import (
    BaseModel,
    _diffusers_path,
    check_lora_keys,
    require_lora_keys,
)

R = 4


def lora(tmp_path: Path, modules: dict[str, tuple[int, int]], extra: dict[str, np.ndarray] | None = None) -> Path:
    """A LoRA file: lora_down (R, in), lora_up (out, R) and alpha for each module name."""
    tensors = {}
    for name, (out_f, in_f) in modules.items():
        tensors[f"{name}.lora_down.weight"] = np.zeros((R, in_f), np.float32)
        tensors[f"{name}.lora_up.weight"] = np.zeros((out_f, R), np.float32)
        tensors[f"{name}.alpha"] = np.array(1.0, np.float32)
    path = tmp_path / "lora.safetensors"
    save_file({**tensors, **(extra or {})}, str(path))
    return path


# names from protocols-more.md §4 and the recordings, mapped onto the tiny checkpoints' real layout
SD15_KOHYA = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (8, 8),
    "lora_unet_down_blocks_1_attentions_1_transformer_blocks_0_attn2_to_k": (8, 12),
    "lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj": (64, 8),
    "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn1_to_out_0": (8, 8),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (12, 12),
    "lora_te_text_model_encoder_layers_1_mlp_fc1": (48, 12),
}
SDXL_KOHYA = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k": (8, 8),
    "lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_2": (8, 32),
    "lora_unet_middle_block_1_proj_in": (8, 8),
    "lora_te1_text_model_encoder_layers_0_mlp_fc1": (48, 12),
    "lora_te2_text_model_encoder_layers_1_self_attn_v_proj": (12, 12),  # a third of the fused in_proj
    "lora_te2_text_model_encoder_layers_0_self_attn_out_proj": (12, 12),
}
NATIVE = {"diffusion_model.input_blocks.0.0": (8, 4), "diffusion_model.output_blocks.8.1.proj_out": (8, 8)}


def test_kohya_sd15_names_land_on_the_ldm_checkpoint(tmp_path: Path, sd15: BaseModel):
    report = require_lora_keys(lora(tmp_path, SD15_KOHYA), sd15)
    assert report.ok and report.keys == 18 and report.modules == 6


def test_kohya_sdxl_names_land_on_sgm_unet_and_both_text_encoders(tmp_path: Path, sdxl_checkpoint: Path):
    base = BaseModel.from_checkpoint(sdxl_checkpoint)
    assert base.architecture == "sdxl"
    assert require_lora_keys(lora(tmp_path, SDXL_KOHYA), base).modules == 6


def test_comfyui_native_keys_with_bias_and_norm_diffs(tmp_path: Path, sd15: BaseModel):
    extra = {"diffusion_model.input_blocks.1.1.norm.diff": np.zeros(8, np.float32),
             "diffusion_model.input_blocks.1.1.proj_in.diff_b": np.zeros(8, np.float32)}
    extra_conv = {"diffusion_model.input_blocks.0.0.lora_down.weight": np.zeros((R, 4, 3, 3), np.float32),
                  "diffusion_model.input_blocks.0.0.lora_up.weight": np.zeros((8, R, 1, 1), np.float32)}
    path = lora(tmp_path, {"diffusion_model.output_blocks.8.1.proj_out": (8, 8)}, {**extra, **extra_conv})
    assert check_lora_keys(path, sd15).ok


def test_every_dropped_key_is_named_with_its_reason(tmp_path: Path, sd15: BaseModel):
    wrong = {"lora_unet_down_blocks_0_attentions_7_proj_in": (8, 8),  # no such block
             "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (8, 8)}  # needs in 12
    extra = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.weird": np.zeros(2, np.float32),
             "diffusion_model.input_blocks.1.1.norm.diff": np.zeros(3, np.float32)}
    path = lora(tmp_path, {**SD15_KOHYA, **wrong}, extra)
    with pytest.raises(LoraKeyMismatch) as caught:
        require_lora_keys(path, sd15)
    error = caught.value
    assert isinstance(error, TrainingError)
    assert set(error.dropped) == {
        "lora_unet_down_blocks_0_attentions_7_proj_in.alpha", "lora_unet_down_blocks_0_attentions_7_proj_in.lora_down.weight",
        "lora_unet_down_blocks_0_attentions_7_proj_in.lora_up.weight",
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.weird", "diffusion_model.input_blocks.1.1.norm.diff"}
    assert "no module 'lora_unet_down_blocks_0_attentions_7_proj_in' in the base model" in str(error)
    assert "input size 8 does not fit model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k" in str(error)
    assert "no known suffix" in error.reasons["lora_te_text_model_encoder_layers_0_self_attn_q_proj.weird"]
    assert "v1-5-pruned-emaonly-fp16.safetensors" in str(error) and str(path) in str(error)


def test_a_long_list_is_cut_in_the_message_but_kept_whole(tmp_path: Path, sd15: BaseModel):
    path = lora(tmp_path, {f"lora_unet_nowhere_{i}": (8, 8) for i in range(30)})
    with pytest.raises(LoraKeyMismatch) as caught:
        require_lora_keys(path, sd15)
    assert len(caught.value.dropped) == 90 and "... and 70 more" in str(caught.value)


def test_an_sd15_lora_on_an_sdxl_model_loses_what_sdxl_lacks(tmp_path: Path, sdxl_checkpoint: Path):
    report = check_lora_keys(lora(tmp_path, SD15_KOHYA), BaseModel.from_checkpoint(sdxl_checkpoint, hash_file=False))
    # SDXL has no fourth level and its text encoders are te1/te2; the blocks both share would load
    assert {key.split(".")[0] for key in report.dropped} == {
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
        "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn1_to_out_0",
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj", "lora_te_text_model_encoder_layers_1_mlp_fc1"}
    assert report.modules == 2


def test_a_configured_module_list_checks_names_only(tmp_path: Path):
    listing = tmp_path / "modules.txt"
    listing.write_text("# SD 1.5, two modules\nmodel.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q\n"
                       "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight\n")
    base = BaseModel.from_module_list("v1-5.safetensors", listing)
    assert base.sha256 is None and base.architecture == "sd15"
    names = {k: (1, 1) for k in ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
                                 "lora_te_text_model_encoder_layers_1_mlp_fc1")}
    assert check_lora_keys(lora(tmp_path, names), base).ok  # no shapes known: no shape check
    assert not check_lora_keys(lora(tmp_path, SD15_KOHYA), base).ok


def test_checkpoint_is_hashed_once_while_unchanged(sd15_checkpoint: Path):
    from anime_pipeline.storage import sha256_file

    first = BaseModel.from_checkpoint(sd15_checkpoint)
    assert first.sha256 == sha256_file(sd15_checkpoint) == BaseModel.from_checkpoint(sd15_checkpoint).sha256


@pytest.mark.parametrize("ldm, diffusers", [  # diffusers' convert_original_stable_diffusion_to_diffusers layout
    ("input_blocks.0.0", "conv_in"),
    ("time_embed.2", "time_embedding.linear_2"),
    ("input_blocks.1.0.in_layers.2", "down_blocks.0.resnets.0.conv1"),
    ("input_blocks.2.1.proj_in", "down_blocks.0.attentions.1.proj_in"),
    ("input_blocks.3.0.op", "down_blocks.0.downsamplers.0.conv"),
    ("input_blocks.11.0.emb_layers.1", "down_blocks.3.resnets.1.time_emb_proj"),
    ("middle_block.0.out_layers.3", "mid_block.resnets.0.conv2"),
    ("middle_block.2.in_layers.0", "mid_block.resnets.1.norm1"),
    ("output_blocks.0.0.skip_connection", "up_blocks.0.resnets.0.conv_shortcut"),
    ("output_blocks.2.1.conv", "up_blocks.0.upsamplers.0.conv"),
    ("output_blocks.5.2.conv", "up_blocks.1.upsamplers.0.conv"),
    ("output_blocks.11.1.transformer_blocks.0.attn2.to_v", "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v"),
    ("out.2", "conv_out"),
])
def test_ldm_to_diffusers_names(ldm: str, diffusers: str):
    assert _diffusers_path(ldm, 2) == diffusers
