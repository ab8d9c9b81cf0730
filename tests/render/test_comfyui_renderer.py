"""The ComfyUI renderer end to end against the in-process fake ComfyUI server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from anime_pipeline.config import Project
from anime_pipeline.config.schema import Character
from anime_pipeline.render.base import ClipRequest, StillRequest
from anime_pipeline.render.comfyui import ComfyUIRenderer, decode_video
from anime_pipeline.render.workflows import (
    Lora,
    TemplateError,
    graph_sha256,
    load_template,
)
from anime_pipeline.services.comfyui import ComfyUIClient, WorkflowValidationError
from tests.services.fake_comfyui import FakeComfyUI, provision

CONFIGS = Path(__file__).resolve().parents[2] / "project_configs"
W, H = 64, 48


@pytest.fixture(scope="module")
def show():
    return Project.load(CONFIGS).shows["lantern-post"]


@pytest.fixture(scope="module")
def mio(show) -> Character:
    return show.character("mio")


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    path = tmp_path / "mio_front.png"
    Image.new("RGB", (32, 32), (208, 138, 30)).save(path)
    return path


@pytest.fixture
def fake() -> Iterator[FakeComfyUI]:
    with FakeComfyUI(render_time=0.01, video_frames=9, video_size=(48, 32)) as server:
        provision(server)
        yield server


def renderer_for(fake: FakeComfyUI, show, reference: Path | None = None, **kwargs: Any) -> ComfyUIRenderer:
    client = ComfyUIClient(fake.url, poll_interval=0.02, reconnect_window=1.0, backoff=0.01)
    return ComfyUIRenderer(client, kwargs.pop("workflows", None), kwargs.pop("device", ""), style=show.show.style,
                           loras={"mio": Lora("mio_v3.safetensors", 0.8)},
                           references={"mio": reference} if reference else None, **kwargs)


def still_request(characters, **kwargs) -> StillRequest:
    fields = dict(characters=tuple(characters), prompt="1girl, courier", negative_prompt="blurry, human face",
                  seed=1234, width=W, height=H, steps=30)
    return StillRequest(**{**fields, **kwargs})


def clip_request(characters, **kwargs) -> ClipRequest:
    fields = dict(characters=tuple(characters), shot_type="medium", prompt="1girl running", motion_prompt="pan left",
                  negative_prompt="blurry", seed=77, width=W, height=H, fps=12, n_frames=8, steps=24)
    return ClipRequest(**{**fields, **kwargs})


def submitted(fake: FakeComfyUI, prompt_id: str) -> dict[str, Any]:
    return fake.history[prompt_id]["prompt"][2]


def classes(graph: dict[str, Any]) -> list[str]:
    return sorted(node["class_type"] for node in graph.values())


def test_render_still_end_to_end(fake, show, mio, reference):
    renderer = renderer_for(fake, show, reference)
    result = renderer.render_still(still_request([mio]))
    assert result.image.shape == (H, W, 3) and result.image.dtype == np.uint8
    assert result.face_boxes == {}
    params = result.params
    graph = params["graph"]
    assert graph == submitted(fake, params["prompt_id"])  # the manifest holds exactly what the server got
    assert params["graph_sha256"] == graph_sha256(graph)
    assert params["template"] == "txt2img_sdxl"
    assert params["template_sha256"] == load_template("txt2img_sdxl").sha256
    assert (params["seed"], params["steps"], params["prompt"], params["negative_prompt"]) == (
        1234, 30, "1girl, courier", "blurry, human face")
    assert (params["checkpoint"], params["sampler"], params["scheduler"], params["cfg"]) == (
        "animagine-xl-3.1.safetensors", "euler_ancestral", "normal", 7.0)
    assert params["models"] == {"checkpoint": "animagine-xl-3.1.safetensors"}
    assert params["loras"] == [{"character": "mio", "name": "mio_v3.safetensors", "strength_model": 0.8,
                                "strength_clip": 0.8}]
    assert params["server"]["comfyui_version"] == "0.3.64" and params["server"]["device"] == "cpu"
    assert params["backend"] == f"comfyui 0.3.64 ({fake.url})" == renderer.backend
    assert params["device"] == "cpu"  # none configured: the server's own device
    assert params["resolution"] == [W, H] and params["render_resolution"] == [8, 8]  # the fake draws 8x8 PNGs
    ip = params["ip_adapter"]
    assert (ip["weight"], ip["end_at"]) == (0.7, 0.85)
    [ref] = ip["references"]
    assert fake.inputs[ref["uploaded_as"]] == reference.read_bytes()
    assert "IPAdapter" in classes(graph) and "LoraLoader" in classes(graph)
    assert next(n for n in graph.values() if n["class_type"] == "KSampler")["inputs"]["seed"] == 1234


def test_a_character_without_assets_gets_a_plain_graph(fake, show):
    hoshi = show.character("hoshi")
    result = renderer_for(fake, show).render_still(still_request([hoshi]))
    assert classes(result.params["graph"]) == ["CLIPTextEncode", "CLIPTextEncode", "CheckpointLoaderSimple",
                                               "EmptyLatentImage", "KSampler", "SaveImage", "VAEDecode"]
    assert result.params["ip_adapter"] is None and result.params["loras"] == []


def test_render_clip_keyframes_with_txt2img_then_animates(fake, show, mio, reference):
    renderer = renderer_for(fake, show, reference, device="cuda:1")
    result = renderer.render_clip(clip_request([mio]))
    assert len(result.frames) == 8 and all(f.shape == (H, W, 3) for f in result.frames)
    assert result.face_boxes == [{}] * 8
    assert not np.array_equal(result.frames[0], result.frames[-1])  # the fake's clip moves
    params = result.params
    graph = params["graph"]
    assert graph == submitted(fake, params["prompt_id"]) and params["graph_sha256"] == graph_sha256(graph)
    assert params["template"] == "i2v_wan22" and params["device"] == "cuda:1"
    assert (params["seed"], params["steps"], params["fps"], params["n_frames"]) == (77, 24, 12, 8)
    assert params["params"]["length"] == 9  # Wan takes 4k + 1 frames: rounded up, then trimmed
    assert (params["params"]["width"], params["params"]["height"]) == (64, 48)
    assert params["prompt"] == "1girl running, pan left"
    assert params["frames_returned"] == 9 and params["render_resolution"] == [48, 32]
    assert params["models"]["vae"] == "wan_2.1_vae.safetensors"
    keyframe = params["keyframe"]
    assert keyframe["source"] == "txt2img_sdxl"
    assert keyframe["params"]["graph"] == submitted(fake, keyframe["params"]["prompt_id"])
    assert keyframe["params"]["seed"] == 77 and keyframe["params"]["ip_adapter"]["weight"] == 0.7
    loader = next(n for n in graph.values() if n["class_type"] == "LoadImage")
    assert loader["inputs"]["image"] == keyframe["uploaded_as"] and keyframe["uploaded_as"] in fake.inputs
    assert len(fake.history) == 2


def test_continuity_starts_from_the_given_frame(fake, show, mio):
    first = np.zeros((H, W, 3), dtype=np.uint8)
    first[:, : W // 2] = (200, 40, 90)
    result = renderer_for(fake, show).render_clip(clip_request([mio], first_frame=first))
    assert len(fake.history) == 1  # no keyframe render
    keyframe = result.params["keyframe"]
    assert keyframe["source"] == "first_frame"
    uploaded = np.asarray(Image.open(io.BytesIO(fake.inputs[keyframe["uploaded_as"]])).convert("RGB"))
    assert np.array_equal(uploaded, first)


class RecordedCard:
    """The card's turns as the renderer takes them, with how many prompts the server had run at each."""

    def __init__(self, fake: FakeComfyUI) -> None:
        self.fake, self.turns = fake, []

    def reclaim(self) -> None:
        self.turns.append(("reclaim", len(self.fake.history)))

    def release(self) -> None:
        self.turns.append(("release", len(self.fake.history)))


def test_the_card_is_lent_out_once_a_clip_is_downloaded_and_taken_again_for_the_next_render(fake, show, mio):
    card = RecordedCard(fake)
    renderer = renderer_for(fake, show, card=card)
    stream = renderer.stream_clip(clip_request([mio]))
    # keyframe and clip on one turn; given back before a frame is read (the step scores them off the card)
    assert card.turns == [("reclaim", 0), ("release", 2)]
    assert len(list(stream.frames)) == 8
    renderer.render_still(still_request([mio]))
    assert card.turns[2:] == [("reclaim", 2), ("release", 3)]


def test_a_failed_render_gives_the_card_back(show, mio):
    with FakeComfyUI(render_time=0.01) as bare:  # no models provisioned: the server refuses the prompt
        card = RecordedCard(bare)
        with pytest.raises(WorkflowValidationError):
            renderer_for(bare, show, card=card).render_still(still_request([mio]))
    assert card.turns == [("reclaim", 0), ("release", 0)]


def test_a_short_clip_is_stretched_to_the_requested_length(fake, show, mio):
    result = renderer_for(fake, show).render_clip(clip_request([mio], n_frames=12))
    assert len(result.frames) == 12 and result.params["frames_returned"] == 9


@pytest.mark.parametrize("template", ["i2v_ltxv", "i2v_framepack"])
def test_other_image_to_video_templates(fake, show, mio, template):
    result = renderer_for(fake, show, workflows={"clip": template}).render_clip(clip_request([mio]))
    assert result.params["template"] == template and len(result.frames) == 8
    bound = result.params["params"]
    if template == "i2v_ltxv":
        assert (bound["length"], bound["width"], bound["height"]) == (9, 64, 64)  # 8k + 1 frames, multiples of 32
    else:
        assert bound["seconds"] == 1.0  # FramePack's minimum; the surplus frames are trimmed


def test_a_missing_custom_pack_is_named(show, mio, reference):
    with FakeComfyUI(render_time=0.01) as bare:
        provision(bare, packs=False)
        renderer = renderer_for(bare, show, reference)
        with pytest.raises(WorkflowValidationError) as caught:
            renderer.render_still(still_request([mio]))
        assert "install the custom node pack 'cubiq/ComfyUI_IPAdapter_plus'" in str(caught.value)
        assert "'IPAdapterUnifiedLoader' is not installed on this server" in str(caught.value)
        framepack = renderer_for(bare, show, workflows={"clip": "i2v_framepack"})
        with pytest.raises(WorkflowValidationError, match="install the custom node pack "
                                                          "'kijai/ComfyUI-FramePackWrapper'"):
            framepack.render_clip(clip_request([mio], first_frame=np.zeros((H, W, 3), np.uint8)))
        assert bare.prompt_posts == 0  # refused before anything was queued


def test_a_recorded_graph_reproduces_the_same_bytes(fake, show, mio, reference, tmp_path):
    result = renderer_for(fake, show, reference).render_clip(clip_request([mio]))
    recorded = result.params
    still = recorded["keyframe"]["params"]
    originals = {name: fake.files[("output", "anime_pipeline", f"{name}_00001_.{ext}")]
                 for name, ext in (("still_sdxl", "png"), ("i2v_wan22", "mp4"))}
    with FakeComfyUI(render_time=0.01, video_frames=9, video_size=(48, 32)) as fresh:
        provision(fresh)
        client = ComfyUIClient(fresh.url, poll_interval=0.02)
        for ref in (still["ip_adapter"]["references"][0]["uploaded_as"], recorded["keyframe"]["uploaded_as"]):
            name = tmp_path / ref.split("/")[-1]  # the recorded inputs, uploaded under their recorded names
            name.write_bytes(fake.inputs[ref])
            assert client.upload_image(name, subfolder="anime_pipeline").input_ref == ref
        for graph, name in ((still["graph"], "still_sdxl"), (recorded["graph"], "i2v_wan22")):
            [output] = client.run(graph, tmp_path / name).outputs
            assert output.read_bytes() == originals[name]
        reseeded = {**recorded["graph"], "11": {**recorded["graph"]["11"]}}
        reseeded["11"]["inputs"] = {**reseeded["11"]["inputs"], "noise_seed": 78}
        [output] = client.run(reseeded, tmp_path / "reseeded").outputs
        assert output.read_bytes() != originals["i2v_wan22"]  # the check above is not vacuous


def test_overrides_are_checked_by_name(fake, show):
    with pytest.raises(TemplateError, match="template 'i2v_wan22' has no parameter 'vea' \\(did you mean 'vae'"):
        renderer_for(fake, show, overrides={"clip": {"vea": "other.safetensors"}})
    renderer = renderer_for(fake, show, overrides={"clip": {"vae": "wan_2.1_vae.safetensors", "shift": 5.0}})
    result = renderer.render_clip(clip_request([], first_frame=np.zeros((H, W, 3), np.uint8)))
    assert result.params["params"]["shift"] == 5.0
    with pytest.raises(ValueError, match="unknown renderer role"):
        renderer_for(fake, show, workflows={"loop": "loop_animatediff"})


def test_version_names_server_and_templates(fake, show):
    renderer = renderer_for(fake, show)
    still, clip = load_template("txt2img_sdxl"), load_template("i2v_wan22")
    assert renderer.version == f"comfyui-0.3.64+txt2img_sdxl@{still.sha256[:12]}+i2v_wan22@{clip.sha256[:12]}"


@pytest.mark.parametrize("suffix", [".webp", ".gif"])
def test_decode_video_reads_animated_webp_and_gif(tmp_path, suffix):
    frames = [Image.new("RGB", (16, 12), (40 * i, 255 - 40 * i, 90)) for i in range(4)]
    path = tmp_path / f"clip{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    decoded = list(decode_video(path))
    assert len(decoded) == 4 and decoded[0].shape == (12, 16, 3)
    assert np.abs(decoded[3].astype(int) - np.asarray(frames[3])).max() <= 8


def test_a_template_that_cannot_serve_a_role_is_refused(fake, show):
    with pytest.raises(ValueError, match="'loop_animatediff' cannot serve as the 'clip' template"):
        renderer_for(fake, show, workflows={"clip": "loop_animatediff"})
