"""Workflow templates: lint against the recorded ComfyUI catalogue, binding by name, LoRA chains,
IP-Adapter defaults and the custom node packs each template declares."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from anime_pipeline.render.workflows import (
    WORKFLOWS_DIR,
    Lora,
    Template,
    TemplateError,
    available_templates,
    bind,
    custom_node_specs,
    graph_sha256,
    lint,
    load_template,
    parse_template,
)
from anime_pipeline.services.comfyui.graph import check_workflow
from anime_pipeline.training.comfyui_graph import TrainingValues, build_training_graph

DATA = Path(__file__).resolve().parents[1] / "data" / "comfyui"
CATALOGUE: dict[str, Any] = json.loads((DATA / "object_info.json").read_text())  # ComfyUI 0.3.64
CATALOGUE_080: dict[str, Any] = json.loads((DATA / "0.8.0" / "object_info.json").read_text())
CATALOGUES = {"0.3.64": CATALOGUE, "0.8.0": CATALOGUE_080}
TEMPLATES = available_templates()
# The training nodes changed between the lines: each training template is for one of them
LINES = {"train_lora": ("0.8.0",), "train_lora_v0_3": ("0.3.64",)}

IPADAPTER = "cubiq/ComfyUI_IPAdapter_plus"
FRAMEPACK = "kijai/ComfyUI-FramePackWrapper"
ANIMATEDIFF = "Kosinkadink/ComfyUI-AnimateDiff-Evolved"
VHS = "Kosinkadink/ComfyUI-VideoHelperSuite"
EXPECTED_PACKS = {
    "txt2img_sd15": {"IPAdapter": IPADAPTER, "IPAdapterUnifiedLoader": IPADAPTER},
    "txt2img_sdxl": {"IPAdapter": IPADAPTER, "IPAdapterUnifiedLoader": IPADAPTER},
    "i2v_wan22": {},
    "i2v_framepack": {"LoadFramePackModel": FRAMEPACK, "FramePackFindNearestBucket": FRAMEPACK,
                      "FramePackSampler": FRAMEPACK},
    "i2v_ltxv": {},
    "loop_animatediff": {"ADE_AnimateDiffLoaderGen1": ANIMATEDIFF, "ADE_LoopedUniformContextOptions": ANIMATEDIFF,
                         "VHS_VideoCombine": VHS},
    "train_lora": {},
    "train_lora_v0_3": {},
}
CASES = [(name, line) for name in TEMPLATES for line in LINES.get(name, tuple(CATALOGUES))]


def errors(template: Template, catalogue: dict[str, Any] = CATALOGUE) -> list[str]:
    return [str(p) for p in lint(template, catalogue) if p.kind == "error"]


def corrupted(name: str, change) -> Template:
    """The template with its graph changed in memory, the declaration untouched."""
    graph = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())
    change(graph)
    return parse_template(f"{name}-corrupted", graph, yaml.safe_load((WORKFLOWS_DIR / f"{name}.yaml").read_text()))


def with_models(template: Template, catalogue: dict[str, Any]) -> dict[str, Any]:
    """A catalogue whose file lists hold the template's default files, as on a provisioned server."""
    catalogue = copy.deepcopy(catalogue)
    for param in template.params.values():
        if param.type == "file":
            for node, input_name in param.targets:
                spec = catalogue[template.graph[node]["class_type"]]["input"]
                config = spec.get("required", {}).get(input_name) or spec["optional"][input_name]
                choices = config[1]["options"] if config[0] == "COMBO" else config[0]  # new- or old-style combo
                if param.default not in choices:
                    choices.append(param.default)
    return catalogue


# -- lint ----------------------------------------------------------------------------------


def test_all_eight_templates_are_present():
    assert set(TEMPLATES) == set(EXPECTED_PACKS)


@pytest.mark.parametrize("name, line", CASES)
def test_template_lints_clean_against_the_recorded_catalogue(name, line):
    template = load_template(name)
    problems = lint(template, CATALOGUES[line])
    assert errors(template, CATALOGUES[line]) == []
    # the CPU recordings have no packs and no model files: those are the only findings
    assert {p.class_type for p in problems if p.kind == "needs_pack"} == set(EXPECTED_PACKS[name])
    files = {t for p in template.params.values() if p.type == "file" for t in p.targets}
    assert {(p.node_id, p.input_name) for p in problems if p.kind == "deployment"} <= files


@pytest.mark.parametrize("name, line", CASES)
def test_template_lints_spotless_on_a_provisioned_server(name, line):
    template = load_template(name)
    catalogue = with_models(template, {**custom_node_specs(), **CATALOGUES[line]})
    assert lint(template, catalogue) == []


@pytest.mark.parametrize("name, line", CASES)
def test_templates_declare_their_custom_packs_and_record_their_nodes(name, line):
    template = load_template(name)
    assert dict(template.packs) == EXPECTED_PACKS[name]
    classes = {node["class_type"] for node in template.graph.values()}
    assert {c for c in classes if c not in CATALOGUES[line]} == set(template.packs)
    assert set(template.packs) <= set(custom_node_specs())


@pytest.mark.parametrize("name, line, other", [("train_lora", "0.8.0", "0.3.64"), ("train_lora_v0_3", "0.3.64", "0.8.0")])
def test_training_templates_are_what_the_builder_makes_for_their_line(name, line, other):
    """The trainer builds its graph from /object_info; the templates are that graph for each recorded
    catalogue, and a graph for one line is refused by the other (as 0.8.0 refuses the 0.3.64 one)."""
    template = load_template(name)
    values = {param.name: param.default for param in template.params.values()}
    built = build_training_graph(CATALOGUES[line], TrainingValues(
        checkpoint=values["checkpoint"], folder=values["dataset_folder"], steps=values["steps"],
        learning_rate=values["learning_rate"], rank=values["rank"], seed=values["seed"],
        prefix=values["lora_prefix"], batch_size=values["batch_size"], optimizer=values["optimizer"],
        training_dtype=values["training_dtype"], lora_dtype=values["training_dtype"],
        existing_lora=values["existing_lora"]))
    assert built.graph == bind(template)
    assert {built.save_node, built.loss_node, built.steps_node} == set(template.outputs.values())
    assert any("unknown node class" in problem for problem in errors(template, CATALOGUES[other]))


@pytest.mark.parametrize("change, expected", [
    (lambda g: g["5"].update(class_type="KSampler_"), "unknown node class 'KSampler_'"),
    (lambda g: g["4"]["inputs"].update(batch_sizes=g["4"]["inputs"].pop("batch_size")), "no input 'batch_sizes'"),
    (lambda g: g["4"]["inputs"].pop("batch_size"), "'batch_size': required input is missing"),
    (lambda g: g["6"]["inputs"].update(samples=["5", 3]), "linked to output 3 of node 5"),
    (lambda g: g["6"]["inputs"].update(samples=["1", 2]), "expects LATENT but node 1"),
    (lambda g: g["5"]["inputs"].update(denoise=1.5), "above the maximum 1.0"),
    (lambda g: g["5"]["inputs"].update(denoise="1"), "expected FLOAT"),
    (lambda g: g["9"]["inputs"].update(preset="PLUS (very high strength)"), "is not one of"),
    (lambda g: g["8"]["inputs"].update(weigth=g["8"]["inputs"].pop("weight")), "IPAdapter has no input 'weigth'"),
    (lambda g: g.update({"11": {"class_type": "SomePackNode", "inputs": {}}}), "unknown node class 'SomePackNode'"),
])
def test_lint_catches_a_corrupted_template(change, expected):
    assert errors(load_template("txt2img_sd15")) == []
    found = errors(corrupted("txt2img_sd15", change))
    assert any(expected in problem for problem in found), found


def test_lint_checks_declared_pack_nodes_against_their_recorded_inputs():
    found = errors(corrupted("i2v_framepack", lambda g: g["12"]["inputs"].update(window=9)))
    assert any("FramePackSampler has no input 'window'" in p for p in found), found


def test_lint_catches_a_broken_bypass_and_declaration():
    name = "txt2img_sd15"
    declaration = yaml.safe_load((WORKFLOWS_DIR / f"{name}.yaml").read_text())
    graph = json.loads((WORKFLOWS_DIR / f"{name}.json").read_text())
    broken = copy.deepcopy(declaration)
    broken["groups"]["ip_adapter"]["bypass"] = []
    found = errors(parse_template(name, graph, broken))
    assert any("cannot bind it with optional groups dropped" in p and "linked to removed node 8" in p
               for p in found), found
    broken = copy.deepcopy(declaration)
    broken["params"]["seed"] = {"type": "float", "default": 0.0, "to": "5.seed"}
    found = errors(parse_template(name, graph, broken))
    assert any("'seed' is float but KSampler.seed takes 'INT'" in p for p in found), found
    broken = copy.deepcopy(declaration)
    broken["params"]["steps"]["default"] = 30
    assert any("default 30 differs" in p for p in errors(parse_template(name, graph, broken)))


def test_model_files_missing_from_the_server_are_a_deployment_concern():
    template = load_template("i2v_wan22")
    deployment = [p for p in lint(template, CATALOGUE) if p.kind == "deployment"]
    assert {p.input_name for p in deployment} == {"unet_name", "clip_name", "vae_name"}
    assert all("install it on the server under models/" in p.message for p in deployment)


# -- bind ----------------------------------------------------------------------------------


def test_bind_sets_parameters_by_name_on_a_new_graph():
    template = load_template("txt2img_sd15")
    graph = bind(template, positive="a fox", negative="blurry", seed=42, steps=30, cfg=6.5, width=640, height=960,
                 checkpoint="other.safetensors")
    assert graph["2"]["inputs"]["text"] == "a fox" and graph["3"]["inputs"]["text"] == "blurry"
    assert (graph["5"]["inputs"]["seed"], graph["5"]["inputs"]["steps"], graph["5"]["inputs"]["cfg"]) == (42, 30, 6.5)
    assert graph["4"]["inputs"] == {"width": 640, "height": 960, "batch_size": 1}
    assert graph["1"]["inputs"]["ckpt_name"] == "other.safetensors"
    assert template.graph["5"]["inputs"]["seed"] == 0  # the template itself is untouched


def test_bind_one_parameter_to_several_inputs():
    graph = bind(load_template("i2v_wan22"), image="kf.png", seed=9, steps=30, switch_step=15)
    assert graph["11"]["inputs"]["noise_seed"] == graph["12"]["inputs"]["noise_seed"] == 9
    assert graph["11"]["inputs"]["end_at_step"] == graph["12"]["inputs"]["start_at_step"] == 15


@pytest.mark.parametrize("values, message", [
    ({"sed": 1}, "template 'txt2img_sd15' has no parameter 'sed' (did you mean 'seed'?)"),
    ({"seed": "1"}, "template 'txt2img_sd15': parameter 'seed' expects int, got '1' (str)"),
    ({"cfg": True}, "parameter 'cfg' expects float"),
    ({"width": 500}, "parameter 'width' must be a multiple of 8, got 500 (next valid: 504)"),
    ({"reference_images": []}, "parameter 'reference_images' expects an image name or a non-empty list"),
])
def test_bind_rejects_unknown_names_and_wrong_types(values, message):
    with pytest.raises(TemplateError) as caught:
        bind(load_template("txt2img_sd15"), **values)
    assert message in str(caught.value)


def test_bind_requires_parameters_without_defaults():
    with pytest.raises(TemplateError, match="template 'i2v_wan22': parameter 'image' .* is required"):
        bind(load_template("i2v_wan22"))
    with pytest.raises(TemplateError, match="parameter 'length' must be 1 \\+ a multiple of 4"):
        bind(load_template("i2v_wan22"), image="kf.png", length=80)


def test_none_means_the_default():
    template = load_template("txt2img_sd15")
    assert bind(template, seed=None, positive=None) == bind(template)


def test_graph_hash_is_canonical():
    graph = bind(load_template("txt2img_sd15"), seed=1)
    shuffled = {key: graph[key] for key in reversed(list(graph))}
    assert graph_sha256(graph) == graph_sha256(shuffled) != graph_sha256(bind(load_template("txt2img_sd15"), seed=2))


# -- LoRA chains and IP-Adapter -----------------------------------------------------------


def upstream_model(graph: dict[str, Any], link: list[Any]) -> list[str]:
    """Classes along the MODEL path from a link back to the checkpoint."""
    path = []
    while True:
        node = graph[link[0]]
        path.append(node["class_type"])
        if "model" not in node["inputs"]:
            return path
        link = node["inputs"]["model"]


@pytest.mark.parametrize("count", [0, 1, 2])
@pytest.mark.parametrize("name", ["txt2img_sd15", "txt2img_sdxl", "loop_animatediff"])
def test_lora_chain_of_n(name, count):
    template = load_template(name)
    loras = [Lora(f"char{i}.safetensors", 0.5 + i / 10, 0.25) for i in range(count)]
    graph = bind(template, loras=loras)
    chain = {k: n for k, n in graph.items() if n["class_type"] == "LoraLoader"}
    assert [n["inputs"]["lora_name"] for n in chain.values()] == [lora.name for lora in loras]
    assert [(n["inputs"]["strength_model"], n["inputs"]["strength_clip"]) for n in chain.values()] == [
        (lora.strength_model, 0.25) for lora in loras]
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")
    assert upstream_model(graph, sampler["inputs"]["model"]).count("LoraLoader") == count
    last = list(chain)[-1] if chain else template.lora_chain.clip[0]
    encoders = [n for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert all(n["inputs"]["clip"] == [last, 1] for n in encoders)
    catalogue = {**custom_node_specs(), **CATALOGUE}
    installed = with_models(template, catalogue)
    installed["LoraLoader"]["input"]["required"]["lora_name"][0].extend(lora.name for lora in loras)
    assert check_workflow(graph, installed, template.packs) == []


def test_a_plain_file_name_is_a_full_strength_lora():
    graph = bind(load_template("txt2img_sd15"), loras=["mio.safetensors"])
    lora = next(n for n in graph.values() if n["class_type"] == "LoraLoader")
    assert (lora["inputs"]["strength_model"], lora["inputs"]["strength_clip"]) == (1.0, 1.0)


def test_templates_without_a_chain_refuse_loras():
    with pytest.raises(TemplateError, match="template 'i2v_wan22' has no LoRA chain"):
        bind(load_template("i2v_wan22"), image="kf.png", loras=["mio.safetensors"])


@pytest.mark.parametrize("name", ["txt2img_sd15", "txt2img_sdxl"])
def test_ip_adapter_defaults_to_weight_07_end_at_085(name):
    template = load_template(name)
    assert (template.param("ip_adapter_weight").default, template.param("ip_adapter_end_at").default) == (0.7, 0.85)
    graph = bind(template, reference_images="anime_pipeline/ref_mio.png", loras=["mio.safetensors"])
    adapter = next(n for n in graph.values() if n["class_type"] == "IPAdapter")
    assert (adapter["inputs"]["weight"], adapter["inputs"]["end_at"], adapter["inputs"]["start_at"]) == (0.7, 0.85, 0.0)
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")
    assert upstream_model(graph, sampler["inputs"]["model"]) == [
        "IPAdapter", "IPAdapterUnifiedLoader", "LoraLoader", "CheckpointLoaderSimple"]
    loader = graph[adapter["inputs"]["image"][0]]
    assert loader == {"class_type": "LoadImage", "inputs": {"image": "anime_pipeline/ref_mio.png"}}


def test_ip_adapter_is_dropped_without_references():
    graph = bind(load_template("txt2img_sd15"), loras=["mio.safetensors"])
    assert not {"IPAdapter", "IPAdapterUnifiedLoader", "LoadImage"} & {n["class_type"] for n in graph.values()}
    sampler = next(n for n in graph.values() if n["class_type"] == "KSampler")
    assert upstream_model(graph, sampler["inputs"]["model"]) == ["LoraLoader", "CheckpointLoaderSimple"]


def test_several_references_are_batched_into_the_ip_adapter():
    graph = bind(load_template("txt2img_sd15"), reference_images=["a.png", "b.png", "c.png"])
    adapter = next(n for n in graph.values() if n["class_type"] == "IPAdapter")
    images = []
    link = adapter["inputs"]["image"]
    while graph[link[0]]["class_type"] == "ImageBatch":
        images.append(graph[graph[link[0]]["inputs"]["image2"][0]]["inputs"]["image"])
        link = graph[link[0]]["inputs"]["image1"]
    images.append(graph[link[0]]["inputs"]["image"])
    assert images[::-1] == ["a.png", "b.png", "c.png"]


# -- loading -------------------------------------------------------------------------------


def test_malformed_declarations_are_refused_with_the_template_name():
    graph = json.loads((WORKFLOWS_DIR / "txt2img_sd15.json").read_text())
    with pytest.raises(TemplateError, match="template 'x': unknown key\\(s\\) in declaration: param"):
        parse_template("x", graph, {"param": {}})
    with pytest.raises(TemplateError, match="parameter 'seed' has type 'integer'"):
        parse_template("x", graph, {"params": {"seed": {"type": "integer", "to": "5.seed"}}})
    with pytest.raises(TemplateError, match="'5seed' must read '<node id>.<input name>'"):
        parse_template("x", graph, {"params": {"seed": {"type": "int", "to": "5seed"}}})
    with pytest.raises(TemplateError, match="editor \\(UI\\) format"):
        parse_template("x", {"nodes": [], "links": []}, {})
    with pytest.raises(TemplateError, match="template 'nope': .*nope.json does not exist"):
        load_template("nope")
