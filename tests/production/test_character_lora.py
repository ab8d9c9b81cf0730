"""character_lora through Dagster: a real LoRA from the ComfyUI training nodes (fake server) and from
kohya (the train_network.py stand-in), the epoch chosen by identity, the shots rendering with it;
a LoRA whose keys do not fit fails the asset; the previz adapter as before."""

from __future__ import annotations

import json

import dagster as dg
from safetensors import safe_open

from anime_pipeline.config.schema import Quality
from anime_pipeline.production.character_lora import GATES, LoraManifest
from anime_pipeline.production.shot_clip import ShotManifest
from anime_pipeline.storage import sha256_file
from anime_pipeline.training.lora_keys import BaseModel, check_lora_keys
from tests.production.lora_world import CHECKPOINT, MIO, MIO_SHOT, TRAINING, lora_world

LORA_ASSET = f"{MIO}/character_lora"


def _materialization(result, key: str) -> dg.AssetMaterialization:
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()
              if e.asset_key.to_user_string() == key]
    assert len(events) == 1, [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
    return events[0]


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _keyframe_loras(manifest: ShotManifest) -> list[dict]:
    graph = manifest.chosen.renderer_params["keyframe"]["params"]["graph"]
    return [node["inputs"] for node in graph.values() if node["class_type"] == "LoraLoader"]


def _assert_a_valid_lora(folder, manifest: LoraManifest, models, key_prefixes: tuple[str, ...]) -> None:
    path = folder / manifest.lora.file
    assert path.name == "mio.safetensors" and sha256_file(path) == manifest.lora.sha256
    with safe_open(str(path), framework="numpy") as loaded:  # the safetensors library reads it back
        keys, metadata = list(loaded.keys()), loaded.metadata()
    assert keys and all(key.startswith(key_prefixes) for key in keys)
    report = check_lora_keys(path, BaseModel.from_checkpoint(models / CHECKPOINT))
    assert report.ok and report.keys == len(keys) == manifest.lora.keys
    assert metadata["ap_trainer"] == manifest.trainer and metadata["ap_base_checkpoint"] == CHECKPOINT
    assert metadata["ap_epoch"] == str(manifest.chosen_epoch) and metadata["ap_rank"] == str(TRAINING["rank"])
    for epoch in manifest.epochs:
        assert (folder / epoch.file).is_file() and len(epoch.identity) == TRAINING["validation_prompts"]


def test_comfyui_trains_the_lora_identity_picks_an_earlier_epoch_and_the_shot_loads_it(characters, tmp_path):
    # epoch 1's file makes the server draw mio as her reference shows her: identity must choose it over
    # epoch 2, whose loss is lower
    with lora_world(characters, tmp_path, "comfyui", favourite=r"-e001_") as lw, characters.instance() as instance:
        result = lw.materialize(instance, [LORA_ASSET])
        folder = lw.paths.adapter(MIO)
        manifest = LoraManifest.require(folder, MIO)
        assert result.success, (_checks(result), [(e.epoch, e.identity) for e in manifest.epochs])
        assert (manifest.trainer, len(manifest.epochs), manifest.chosen_epoch) == ("comfyui", 2, 1)
        scores = {e.epoch: e.mean_identity for e in manifest.epochs}
        assert scores[1] > scores[2] and scores[1] >= 0.7, scores
        assert manifest.loss[-1].loss < manifest.loss[0].loss
        _assert_a_valid_lora(folder, manifest, lw.models, ("diffusion_model.",))
        # each epoch rendered its validation prompts with its own LoRA, as the training server lists it
        validation = [loras for loras in lw.fake.rendered_loras if loras]
        assert len(validation) == 2 * TRAINING["validation_prompts"]
        assert all(len(loras) == 1 and loras[0].startswith("anime_pipeline/mio-") for loras in validation)

        materialized = _materialization(result, LORA_ASSET)
        assert materialized.tags["dagster/data_version"] == manifest.lora.sha256
        metadata = materialized.metadata
        assert metadata["trainer_backend"].value == "comfyui" and metadata["chosen_epoch"].value == 1
        assert metadata["loss_plot"].value.startswith("![training loss](data:image/")  # the loss plot, inline
        assert len(metadata["loss"].value) == len(manifest.loss) == 2 * len(manifest.dataset)  # a step an image
        assert [e["epoch"] for e in metadata["epoch_scores"].value] == [1, 2]
        assert _checks(result) == {"loss_fell": True, "keeps_identity": True}
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
        assert any(m.startswith("training: epoch 2/2") for m in logs) and any("claimed gpu-0" in m for m in logs)

        shot = lw.materialize(instance, [f"{MIO_SHOT}/shot_clip"])
        assert [e.asset_key.to_user_string() for e in shot.get_asset_materialization_events()] == [
            f"{MIO_SHOT}/shot_clip"]
        rendered = ShotManifest.require(lw.paths.shot(MIO_SHOT), MIO_SHOT)
        assert _keyframe_loras(rendered) == [{
            "model": ["1", 0], "clip": ["1", 1], "lora_name": f"anime_pipeline/{manifest.lora.served_name}",
            "strength_model": 0.8, "strength_clip": 0.8}]
        assert rendered.prompt.startswith("mio, ") and rendered.loras[0]["sha256"] == manifest.lora.sha256


def test_kohya_trains_the_lora_into_the_shared_folder_and_an_unchanged_dataset_keeps_it(characters, tmp_path):
    with lora_world(characters, tmp_path, "kohya", favourite=r"-e002-", shared=True) as lw, \
            characters.instance() as instance:
        result = lw.materialize(instance, [LORA_ASSET], kohya=True)
        assert result.success, _checks(result)
        folder = lw.paths.adapter(MIO)
        manifest = LoraManifest.require(folder, MIO)
        assert (manifest.trainer, manifest.chosen_epoch, manifest.device) == ("kohya", 2, "cpu")
        _assert_a_valid_lora(folder, manifest, lw.models, ("lora_unet_", "lora_te_"))
        with safe_open(str(folder / manifest.lora.file), framework="numpy") as loaded:
            assert loaded.metadata()["ss_network_dim"] == str(TRAINING["rank"])  # kohya's own fields kept
        # every epoch reached the server through the shared folder, none over HTTP
        placed = sorted(p.name for p in (lw.shared / "anime_pipeline").iterdir())
        assert len(placed) == 2 and all(name.startswith(("mio-e001-", "mio-e002-")) for name in placed)
        assert not [k for k in lw.fake.files if k[1].startswith("loras")]

        again = lw.materialize(instance, [LORA_ASSET], kohya=True)
        assert again.success and _materialization(again, LORA_ASSET).metadata["kept_unchanged"].value is True
        assert LoraManifest.require(folder, MIO) == manifest


def test_a_lora_whose_keys_do_not_fit_fails_the_asset_naming_them_and_keeps_the_old_adapter(characters, tmp_path):
    before = (characters.storage / "lantern-post" / "characters" / "mio" / "adapter" / "manifest.json").read_bytes()
    with lora_world(characters, tmp_path, "comfyui", favourite=r"$^", lora_keys="mismatch") as lw, \
            characters.instance() as instance:
        result = lw.materialize(instance, [LORA_ASSET])
        assert not result.success and not result.get_asset_materialization_events()
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        message = failure.event_specific_data.error_display_string
        assert "diffusion_model.input_blocks.99.1.proj_in.lora_down.weight" in message
        assert "would be dropped" in message
        assert lw.fake.rendered_loras == []  # no validation render with a LoRA that would load in part
        assert (lw.paths.adapter(MIO) / "manifest.json").read_bytes() == before


def test_the_previz_adapter_is_the_same_manifest_type_and_still_a_palette(characters):
    folder = characters.storage / "lantern-post" / "characters" / "mio" / "adapter"
    manifest = LoraManifest.require(folder, MIO)
    assert manifest.trainer == "previz" and manifest.lora is None and set(manifest.palette) >= {"hair", "eyes"}
    assert [e.file for e in manifest.epochs] == ["previz_adapter.json"] and manifest.chosen.images == ["validation.png"]
    assert json.loads((folder / "previz_adapter.json").read_text())["palette"] == manifest.palette
    assert (folder / manifest.loss_plot).read_bytes()[:4] == b"\x89PNG"
    results = GATES.evaluate(manifest, Quality())
    assert [(r.name, r.passed) for r in results] == [("loss_fell", True), ("keeps_identity", True)]
    assert results[1].value == manifest.chosen.identity[0] and results[0].value == round(manifest.loss[-1].loss, 4)
