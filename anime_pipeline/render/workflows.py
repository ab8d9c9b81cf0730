"""ComfyUI workflow templates: API-format graphs plus a declaration of their parameters.

A template is `workflows/<name>.json` (the graph as ComfyUI's "Save (API)" writes it) next to
`workflows/<name>.yaml` (which literal inputs are parameters, which nodes' files to collect, which
custom node packs it needs). Callers bind parameters by name and never edit node ids:

    template = load_template("txt2img_sd15")
    graph = bind(template, positive="a fox", seed=7, loras=[Lora("mio.safetensors", 0.8)])
    problems = [p for p in lint(template, client.object_info()) if p.kind == "error"]

The declaration format is documented in workflows/README.md. `workflows/custom_nodes.json` records
the /object_info entries of the custom node classes the templates use (read from each pack's
source), so templates that need a pack are still checked input by input on a server without it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Literal

import yaml

from anime_pipeline.services.comfyui.graph import ValidationProblem, check_workflow

WORKFLOWS_DIR = Path(__file__).resolve().parents[2] / "workflows"
CUSTOM_NODES_FILE = "custom_nodes.json"

PARAM_TYPES = ("int", "float", "string", "bool", "image", "file")
_CATALOGUE_TYPES = {"int": "INT", "float": "FLOAT", "string": "STRING", "bool": "BOOLEAN"}
_REQUIRED = object()  # the default of a parameter that has none

Link = tuple[str, int]
Target = tuple[str, str]  # node id, input name


class TemplateError(ValueError):
    """A template or its declaration is malformed, or a bind() call does not fit the template."""


# -- the template --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    targets: tuple[Target, ...]
    default: Any = _REQUIRED
    folder: str | None = None  # file params: where it lives on the server, e.g. models/checkpoints
    step: int = 1  # valid int values are offset + k * step (ComfyUI itself does not enforce it)
    offset: int = 0
    batch: bool = False  # image params: a list of images, batched into one IMAGE with core ImageBatch
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def round_up(self, value: int) -> int:
        """The smallest valid value >= value (e.g. Wan lengths are 4k + 1)."""
        return self.offset + self.step * max(0, math.ceil((value - self.offset) / self.step))


@dataclass(frozen=True)
class Bypass:
    """When a group is dropped, consumers of `output` take whatever fed `input` instead."""

    output: Link
    input: Target


@dataclass(frozen=True)
class Group:
    """Optional nodes, kept only when the `enabled_by` parameter is given (e.g. IP-Adapter)."""

    name: str
    nodes: tuple[str, ...]
    enabled_by: str
    bypass: tuple[Bypass, ...]


@dataclass(frozen=True)
class LoraChain:
    """Where 0..N LoraLoader nodes go: between these MODEL and CLIP outputs and their consumers."""

    model: Link
    clip: Link


@dataclass(frozen=True)
class Lora:
    name: str  # the file name as the server lists it under models/loras
    strength_model: float = 1.0
    strength_clip: float | None = None  # None: the same as strength_model

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "strength_model": self.strength_model, "strength_clip": self.clip_strength}

    @property
    def clip_strength(self) -> float:
        return self.strength_model if self.strength_clip is None else self.strength_clip


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    graph: Mapping[str, Any]  # as written; bind() works on a copy
    params: Mapping[str, Param]
    outputs: Mapping[str, str]  # output name -> node id whose files are collected
    packs: Mapping[str, str]  # custom node class -> pack that provides it
    lora_chain: LoraChain | None = None
    groups: Mapping[str, Group] = field(default_factory=dict)
    sha256: str = ""  # of the graph and the declaration, as loaded

    def param(self, name: str) -> Param:
        if name not in self.params:
            raise TemplateError(f"template {self.name!r} has no parameter {name!r}{_hint(name, self.params)}; "
                                f"it has: {', '.join(sorted(self.params))}")
        return self.params[name]

    def accepts(self, name: str) -> bool:
        return name in self.params


# -- loading -------------------------------------------------------------------------------


def available_templates(directory: Path = WORKFLOWS_DIR) -> list[str]:
    """Names of the templates in a folder: every <name>.yaml with a <name>.json beside it."""
    return sorted(p.stem for p in Path(directory).glob("*.yaml") if p.with_suffix(".json").is_file())


def load_template(name: str, directory: Path = WORKFLOWS_DIR) -> Template:
    graph_path, declaration_path = Path(directory) / f"{name}.json", Path(directory) / f"{name}.yaml"
    for path in (graph_path, declaration_path):
        if not path.is_file():
            known = ", ".join(available_templates(directory)) or "none"
            raise TemplateError(f"template {name!r}: {path} does not exist (templates in {directory}: {known})")
    try:
        graph = json.loads(graph_path.read_text())
        declaration = yaml.safe_load(declaration_path.read_text()) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise TemplateError(f"template {name!r}: cannot parse it: {exc}") from exc
    return parse_template(name, graph, declaration)


def parse_template(name: str, graph: Any, declaration: Any) -> Template:
    """A Template from an already-parsed graph and declaration (load_template reads the files)."""
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise TemplateError(f"template {name!r}: this is the editor (UI) format; save it with 'Save (API)'")
    nodes = graph.values() if isinstance(graph, dict) else [None]
    if not all(isinstance(n, dict) and isinstance(n.get("class_type"), str) and isinstance(n.get("inputs"), dict)
               for n in nodes):
        raise TemplateError(f"template {name!r}: the graph must be an API-format object "
                            "{node_id: {class_type: ..., inputs: {...}}}")
    data = _mapping(name, "declaration", declaration,
                    {"description", "params", "outputs", "packs", "lora_chain", "groups"})
    where = f"template {name!r}"
    params = {str(k): _param(where, str(k), v) for k, v in _mapping(name, "params", data.get("params", {})).items()}
    groups = {str(k): _group(where, str(k), v) for k, v in _mapping(name, "groups", data.get("groups", {})).items()}
    chain = data.get("lora_chain")
    if chain is not None:
        chain_data = _mapping(name, "lora_chain", chain, {"model", "clip"})
        chain = LoraChain(model=_link(where, "lora_chain.model", chain_data.get("model")),
                          clip=_link(where, "lora_chain.clip", chain_data.get("clip")))
    canonical = json.dumps({"graph": graph, "declaration": data}, sort_keys=True, separators=(",", ":"))
    return Template(
        name=name, description=str(data.get("description", "")), graph=graph, params=params,
        outputs={str(k): str(v) for k, v in _mapping(name, "outputs", data.get("outputs", {})).items()},
        packs={str(k): str(v) for k, v in _mapping(name, "packs", data.get("packs", {})).items()},
        lora_chain=chain, groups=groups, sha256=hashlib.sha256(canonical.encode()).hexdigest(),
    )


@cache
def _custom_node_specs(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def custom_node_specs(directory: Path = WORKFLOWS_DIR) -> dict[str, Any]:
    """The recorded /object_info entries of the custom node classes the templates use."""
    return copy.deepcopy(_custom_node_specs(Path(directory) / CUSTOM_NODES_FILE))


def _mapping(name: str, what: str, value: Any, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TemplateError(f"template {name!r}: {what} must be a mapping, got {value!r}")
    unknown = set(map(str, value)) - allowed if allowed is not None else set()
    if unknown:
        raise TemplateError(f"template {name!r}: unknown key(s) in {what}: {', '.join(sorted(unknown))} "
                            f"(allowed: {', '.join(sorted(allowed or ()))})")
    return value


def _param(where: str, name: str, data: Any) -> Param:
    allowed = {"type", "to", "default", "folder", "step", "offset", "batch", "description"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise TemplateError(f"{where}: parameter {name!r} must be a mapping with keys from {sorted(allowed)}, "
                            f"got {data!r}")
    kind = data.get("type")
    if kind not in PARAM_TYPES:
        raise TemplateError(f"{where}: parameter {name!r} has type {kind!r}; types are {', '.join(PARAM_TYPES)}")
    targets = data.get("to")
    targets = [targets] if isinstance(targets, str) else targets
    if not isinstance(targets, list) or not targets:
        raise TemplateError(f"{where}: parameter {name!r} needs `to:` with one or more '<node id>.<input>'")
    return Param(name=name, type=kind, targets=tuple(_target(where, name, t) for t in targets),
                 default=data.get("default", _REQUIRED), folder=data.get("folder"), step=int(data.get("step", 1)),
                 offset=int(data.get("offset", 0)), batch=bool(data.get("batch", False)),
                 description=str(data.get("description", "")))


def _target(where: str, name: str, text: Any) -> Target:
    node, dot, input_name = str(text).partition(".")
    if not dot or not node or not input_name:
        raise TemplateError(f"{where}: parameter {name!r} target {text!r} must read '<node id>.<input name>'")
    return node, input_name


def _link(where: str, what: str, value: Any) -> Link:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)):
        raise TemplateError(f"{where}: {what} must be a link [\"<node id>\", <output index>], got {value!r}")
    return str(value[0]), value[1]


def _group(where: str, name: str, data: Any) -> Group:
    allowed = {"nodes", "enabled_by", "bypass"}
    if not isinstance(data, dict) or set(data) - allowed or "nodes" not in data or "enabled_by" not in data:
        raise TemplateError(f"{where}: group {name!r} needs `nodes` and `enabled_by` (and may have `bypass`)")
    bypass = []
    for item in data.get("bypass", []):
        if not isinstance(item, dict) or set(item) != {"output", "input"}:
            raise TemplateError(f"{where}: group {name!r}: each bypass is {{output: [node, index], input: node.input}}")
        bypass.append(Bypass(output=_link(where, f"group {name} bypass", item["output"]),
                             input=_target(where, f"group {name} bypass", item["input"])))
    return Group(name=name, nodes=tuple(str(n) for n in data["nodes"]), enabled_by=str(data["enabled_by"]),
                 bypass=tuple(bypass))


# -- binding -------------------------------------------------------------------------------


def bind(template: Template, /, loras: Sequence[Lora | str] = (), **values: Any) -> dict[str, Any]:
    """A new API-format graph with the parameters set by name.

    A value of None means "not given": the declared default is used, and a group whose
    `enabled_by` parameter is not given is dropped. `loras` inserts one LoraLoader per entry
    into the template's LoRA chain, in order."""
    given = {name: value for name, value in values.items() if value is not None}
    for name in given:
        template.param(name)
    chain = [_lora(template, item) for item in loras]
    if chain and template.lora_chain is None:
        raise TemplateError(f"template {template.name!r} has no LoRA chain; it cannot take loras")
    bound = {name: _coerce(template, template.params[name], value) for name, value in given.items()}
    dropped = [group for group in template.groups.values() if group.enabled_by not in bound]
    removed = {node for group in dropped for node in group.nodes}
    graph = copy.deepcopy(dict(template.graph))
    for param in template.params.values():
        if all(node in removed for node, _ in param.targets):
            continue
        if param.name not in bound and param.required:
            raise TemplateError(f"template {template.name!r}: parameter {param.name!r} ({param.type}) is required")
        value = bound.get(param.name, param.default)
        _set(graph, param, value[0] if param.batch else value)
        if param.batch and len(value) > 1:
            _batch_images(graph, param.targets[0][0], value[1:])
    if chain:
        _insert_loras(graph, template.lora_chain, chain)  # type: ignore[arg-type]
    for group in dropped:
        _drop_group(template.name, graph, group)
    return graph


def graph_sha256(graph: Mapping[str, Any]) -> str:
    """The hash recorded in manifests: of the graph exactly as submitted (canonical JSON)."""
    return hashlib.sha256(json.dumps(graph, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _lora(template: Template, item: Lora | str) -> Lora:
    lora = Lora(item) if isinstance(item, str) else item
    if not isinstance(lora, Lora) or not isinstance(lora.name, str) or not lora.name:
        raise TemplateError(f"template {template.name!r}: a LoRA is a Lora(name, strength...) or a file name, "
                            f"got {item!r}")
    return lora


def _coerce(template: Template, param: Param, value: Any) -> Any:
    """The value as it goes into the graph, or a TemplateError naming template and parameter."""
    if param.batch:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(v, str) for v in items):
            raise _wrong_type(template, param, value, "an image name or a non-empty list of image names")
        return list(items)
    if param.type == "int" and isinstance(value, Integral) and not isinstance(value, bool):
        if (int(value) - param.offset) % param.step:
            grid = f"{param.offset} + a multiple of {param.step}" if param.offset else f"a multiple of {param.step}"
            raise TemplateError(f"template {template.name!r}: parameter {param.name!r} must be {grid}, got {value} "
                                f"(next valid: {param.round_up(int(value))})")
        return int(value)
    if param.type == "float" and isinstance(value, Real) and not isinstance(value, bool):
        return float(value)
    if param.type == "bool" and isinstance(value, bool):
        return value
    if param.type in ("string", "image", "file") and isinstance(value, str):
        return value
    raise _wrong_type(template, param, value, param.type)


def _wrong_type(template: Template, param: Param, value: Any, expected: str) -> TemplateError:
    return TemplateError(f"template {template.name!r}: parameter {param.name!r} expects {expected}, "
                         f"got {value!r} ({type(value).__name__})")


def _set(graph: dict[str, Any], param: Param, value: Any) -> None:
    for node, input_name in param.targets:
        if node in graph:
            graph[node]["inputs"][input_name] = value


def _next_id(graph: Mapping[str, Any]) -> int:
    return max((int(n) for n in graph if n.isdigit()), default=0) + 1


def _rewire(graph: dict[str, Any], old: Link, new: Any, skip: Iterable[str] = ()) -> None:
    """Point every input linked to `old` at `new`, except in the `skip` nodes."""
    skipped = set(skip)
    for node_id, node in graph.items():
        if node_id in skipped:
            continue
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and (str(value[0]), value[1]) == old:
                node["inputs"][name] = copy.deepcopy(new)


def _insert_loras(graph: dict[str, Any], chain: LoraChain, loras: Sequence[Lora]) -> None:
    model, clip = list(chain.model), list(chain.clip)
    added = []
    for lora in loras:
        node_id = str(_next_id(graph))
        graph[node_id] = {"class_type": "LoraLoader", "inputs": {
            "model": model, "clip": clip, "lora_name": lora.name,
            "strength_model": float(lora.strength_model), "strength_clip": float(lora.clip_strength)}}
        added.append(node_id)
        model, clip = [node_id, 0], [node_id, 1]
    _rewire(graph, chain.model, model, skip=added)
    _rewire(graph, chain.clip, clip, skip=added)


def _batch_images(graph: dict[str, Any], loader: str, images: Sequence[str]) -> None:
    """Extra images for a batch parameter: LoadImage + ImageBatch each, after the template's loader."""
    current: list[Any] = [loader, 0]
    added = []
    for image in images:
        load_id = str(_next_id(graph))
        graph[load_id] = {"class_type": "LoadImage", "inputs": {"image": image}}
        batch_id = str(_next_id(graph))
        graph[batch_id] = {"class_type": "ImageBatch", "inputs": {"image1": current, "image2": [load_id, 0]}}
        added += [load_id, batch_id]
        current = [batch_id, 0]
    _rewire(graph, (loader, 0), current, skip=added)


def _drop_group(template: str, graph: dict[str, Any], group: Group) -> None:
    for bypass in group.bypass:
        node, input_name = bypass.input
        _rewire(graph, bypass.output, graph[node]["inputs"][input_name], skip=group.nodes)
    for node in group.nodes:
        graph.pop(node, None)
    for node_id, node in graph.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in group.nodes:
                raise TemplateError(f"template {template!r}: dropping group {group.name!r} leaves node {node_id} "
                                    f"input {name!r} linked to removed node {value[0]}; add a bypass for it")


# -- lint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintProblem:
    """kind: "error" - the template is wrong; "needs_pack" - the server lacks a declared custom node
    pack; "deployment" - a model/file the template names is not installed on that server."""

    template: str
    kind: Literal["error", "needs_pack", "deployment"]
    message: str
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None

    def __str__(self) -> str:
        where = f"template {self.template!r}"
        if self.node_id is not None:
            where += f" node {self.node_id} ({self.class_type})"
        if self.input_name is not None:
            where += f" input {self.input_name!r}"
        return f"[{self.kind}] {where}: {self.message}"


def lint(template: Template, catalogue: Mapping[str, Any],
         custom_nodes: Mapping[str, Any] | None = None) -> list[LintProblem]:
    """Everything wrong with a template for a server with this /object_info `catalogue`.

    Core nodes are checked against the catalogue: classes, input names, required inputs, links
    (node, output index, type), literal types, ranges and combo values. A declared custom class
    the catalogue lacks is checked against its recorded entry in custom_nodes.json and reported
    once as "needs_pack". A file name (model, LoRA, dataset folder) bound by a `file` parameter
    that the server does not list is a deployment concern, not a template error. The graph is
    checked as written and as bind() leaves it with optional groups dropped and with a LoRA
    chain and an image batch expanded, so the bypasses and expansions are checked too."""
    custom = custom_node_specs() if custom_nodes is None else custom_nodes
    specs = {**{cls: custom[cls] for cls in template.packs if cls in custom}, **catalogue}
    problems = _lint_declaration(template, specs)
    broken = any(p.kind == "error" for p in problems)  # then bind() cannot make the variants
    for label, graph in [("", template.graph)] if broken else _variants(template, problems):
        for problem in _lint_graph(template, graph, catalogue, specs):
            if label and problem.kind != "error":
                continue  # placeholders stand in for files and packs: the as-written pass reports those
            if label:
                problem = LintProblem(problem.template, problem.kind, f"{problem.message} (when bound {label})",
                                      problem.node_id, problem.class_type, problem.input_name)
            if problem not in problems:
                problems.append(problem)
    return problems


def _variants(template: Template, problems: list[LintProblem]) -> list[tuple[str, Mapping[str, Any]]]:
    """The graph as written and as bind() makes it; a variant bind() refuses becomes a problem."""
    placeholders = {name: template.graph[p.targets[0][0]]["inputs"][p.targets[0][1]]
                    for name, p in template.params.items() if p.required}
    enablers = {g.enabled_by for g in template.groups.values()}
    batched = {k: [v, v] if template.params[k].batch else v for k, v in placeholders.items()}
    loras = [Lora("lint-placeholder.safetensors")] * 2 if template.lora_chain else []
    wanted = []
    if template.groups:
        plain = {k: v for k, v in placeholders.items() if k not in enablers}
        wanted.append(("with optional groups dropped", plain, []))
    if loras or any(template.params[k].batch for k in batched):
        wanted.append(("with 2 LoRAs and 2 batched images", batched, loras))
    variants: list[tuple[str, Mapping[str, Any]]] = [("", template.graph)]
    for label, values, chain in wanted:
        try:
            variants.append((label, bind(template, loras=chain, **values)))
        except TemplateError as exc:
            problems.append(LintProblem(template.name, "error", f"cannot bind it {label}: {exc}"))
    return variants


def _lint_graph(template: Template, graph: Mapping[str, Any], catalogue: Mapping[str, Any],
                specs: Mapping[str, Any]) -> list[LintProblem]:
    missing = {cls: pack for cls, pack in template.packs.items() if cls not in catalogue}
    files = _file_inputs(template, graph)
    problems = [LintProblem(template.name, "needs_pack",
                            f"node class {cls!r} comes from custom node pack {pack!r}, which this server lacks; "
                            f"install the pack", class_type=cls)
                for cls, pack in sorted(missing.items())]
    for found in check_workflow(graph, specs, template.packs):
        if found.class_type in missing and found.class_type not in specs:
            continue  # no recorded entry to check against: reported as needs_pack
        problems.append(_classify(template, found, graph, files))
    for node_id, node in graph.items():
        spec = specs.get(node.get("class_type"))
        if spec is not None:
            problems += _unknown_inputs(template, node_id, node, spec)
    return problems


def _classify(template: Template, found: ValidationProblem, graph: Mapping[str, Any],
              files: Mapping[Target, str]) -> LintProblem:
    node_id, input_name = found.node_id or "", found.input_name or ""
    value = graph.get(node_id, {}).get("inputs", {}).get(input_name)
    if (node_id, input_name) in files and isinstance(value, str):
        return LintProblem(template.name, "deployment", f"{found.message} (install it on the server under "
                           f"{files[node_id, input_name]}/ or bind another file)", node_id, found.class_type,
                           input_name)
    return LintProblem(template.name, "error", found.message, found.node_id, found.class_type, found.input_name)


def _file_inputs(template: Template, graph: Mapping[str, Any]) -> dict[Target, str]:
    """Inputs that name server files: those bound by file params, and LoRA chain lora_name inputs."""
    files = {t: p.folder or "the server's model folders"
             for p in template.params.values() if p.type == "file" for t in p.targets}
    files.update({(n, "lora_name"): "models/loras" for n, node in graph.items()
                  if node.get("class_type") == "LoraLoader" and n not in template.graph})
    return files


def _unknown_inputs(template: Template, node_id: str, node: Mapping[str, Any],
                    spec: Mapping[str, Any]) -> list[LintProblem]:
    declared = {name for section in ("required", "optional") for name in spec.get("input", {}).get(section, {})}
    return [LintProblem(template.name, "error", f"{node['class_type']} has no input {name!r}{_hint(name, declared)}",
                        node_id, node["class_type"], name)
            for name in node.get("inputs", {}) if name not in declared]


def _lint_declaration(template: Template, specs: Mapping[str, Any]) -> list[LintProblem]:
    problems: list[str] = []
    graph = template.graph
    used = {node.get("class_type") for node in graph.values()}
    problems += [f"packs names {cls!r}, which no node of the graph uses" for cls in template.packs if cls not in used]
    for param in template.params.values():
        problems += _param_problems(template, param, specs)
    for name, node_id in template.outputs.items():
        spec = specs.get(graph.get(node_id, {}).get("class_type"))
        if node_id not in graph or (spec is not None and not spec.get("output_node")):
            problems.append(f"output {name!r} must name an output node of the graph, got {node_id!r}")
    if template.lora_chain is not None:
        for link, kind in ((template.lora_chain.model, "MODEL"), (template.lora_chain.clip, "CLIP")):
            if _output_type(graph, specs, link) not in (kind, None):
                problems.append(f"lora_chain must start at a {kind} output, got {list(link)}")
    for group in template.groups.values():
        problems += _group_problems(template, group)
    return [LintProblem(template.name, "error", f"declaration: {message}") for message in problems]


def _param_problems(template: Template, param: Param, specs: Mapping[str, Any]) -> list[str]:
    head = f"parameter {param.name!r}"
    problems = []
    for node_id, input_name in param.targets:
        node = template.graph.get(node_id)
        if node is None or input_name not in node.get("inputs", {}):
            problems.append(f"{head} targets {node_id}.{input_name}, which the graph does not have")
            continue
        literal = node["inputs"][input_name]
        if isinstance(literal, list):
            problems.append(f"{head} targets {node_id}.{input_name}, which is a link, not a literal")
        elif not param.required and literal != param.default:
            problems.append(f"{head} default {param.default!r} differs from the graph's {node_id}.{input_name} "
                            f"= {literal!r}")
        config = _input_config(specs.get(node.get("class_type")), input_name)
        if config is not None and not _type_fits(param, config):
            problems.append(f"{head} is {param.type} but {node['class_type']}.{input_name} takes {config[0]!r}")
    if not param.required:
        try:
            _coerce(template, param, param.default)
        except TemplateError as exc:
            problems.append(f"{head} default: {exc}")
    if param.batch and (param.type != "image" or len(param.targets) != 1
                        or template.graph.get(param.targets[0][0], {}).get("class_type") != "LoadImage"):
        problems.append(f"{head}: batch needs an image parameter with one target, a LoadImage node")
    return problems


def _group_problems(template: Template, group: Group) -> list[str]:
    head = f"group {group.name!r}"
    problems = [f"{head} lists node {n}, which the graph does not have" for n in group.nodes if n not in template.graph]
    if group.enabled_by not in template.params:
        problems.append(f"{head} is enabled_by {group.enabled_by!r}, which is not a parameter")
    for bypass in group.bypass:
        node, input_name = bypass.input
        if bypass.output[0] not in group.nodes or node not in group.nodes:
            problems.append(f"{head}: a bypass must lead from one of its nodes' outputs to one of their inputs")
        elif input_name not in template.graph.get(node, {}).get("inputs", {}):
            problems.append(f"{head}: bypass input {node}.{input_name} does not exist")
    return problems


def _input_config(spec: Mapping[str, Any] | None, input_name: str) -> list[Any] | None:
    if spec is None:
        return None
    inputs = spec.get("input", {})
    return inputs.get("required", {}).get(input_name) or inputs.get("optional", {}).get(input_name)


def _type_fits(param: Param, config: Sequence[Any]) -> bool:
    kind = config[0]
    options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
    combo = isinstance(kind, list) or kind == "COMBO"
    if param.type == "image":
        return combo and bool(options.get("image_upload"))
    if param.type == "file":
        return combo
    if param.type == "string":
        return kind == "STRING" or combo
    return kind == _CATALOGUE_TYPES[param.type]


def _output_type(graph: Mapping[str, Any], specs: Mapping[str, Any], link: Link) -> str | None:
    spec = specs.get(graph.get(link[0], {}).get("class_type"))
    outputs = spec.get("output", []) if spec else []
    return outputs[link[1]] if 0 <= link[1] < len(outputs) else None


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
