"""API-format workflow validation against a server's node catalogue (/object_info), with no I/O.

The client checks each workflow before queueing it; render/workflows.py lints templates with the
same rules against a recorded or live catalogue.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PRIMITIVES = ("INT", "FLOAT", "STRING", "BOOLEAN")


@dataclass(frozen=True)
class ValidationProblem:
    node_id: str | None  # None: a problem of the workflow as a whole
    class_type: str | None
    input_name: str | None
    message: str

    def __str__(self) -> str:
        if self.node_id is None:
            return f"workflow: {self.message}"
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name is not None:
            where += f" input '{self.input_name}'"
        return f"{where}: {self.message}"


def check_workflow(workflow: Mapping[str, Any], catalogue: Mapping[str, Any],
                   required_packs: Mapping[str, str]) -> list[ValidationProblem]:
    """Every reason the server would refuse this API-format workflow, per /object_info.

    Stricter than the server on literal types: it coerces (bool("false") is True, int(2.7) is 2),
    which hides mistakes, so here an INT must be an integer, a BOOLEAN a bool, and so on."""
    if not isinstance(workflow, Mapping) or not workflow:
        return [ValidationProblem(None, None, None, "it must be a non-empty {node_id: node} mapping")]
    if "nodes" in workflow and "links" in workflow:
        return [ValidationProblem(None, None, None, "this is the editor (UI) format; /prompt needs the API format "
                                  "(export with 'Save (API)')")]
    problems: list[ValidationProblem] = []
    for node_id, node in sorted(workflow.items(), key=lambda item: node_key(item[0])):
        problems += _check_node(str(node_id), node, workflow, catalogue, required_packs)
    classes = [node.get("class_type") for node in workflow.values() if isinstance(node, Mapping)]
    known = all(isinstance(c, str) and c in catalogue for c in classes)
    if known and not any(catalogue[c].get("output_node") for c in classes):
        problems.append(ValidationProblem(None, None, None, "there is no output node (SaveImage, SaveVideo, "
                                          "PreviewImage, ...), so ComfyUI would refuse it"))
    return problems


def catalogue_problem(catalogue: Any) -> str | None:
    """Why a server's /object_info does not have the shape check_workflow reads; None when it does."""
    if not isinstance(catalogue, dict):
        return "the catalogue is not an object"
    for class_type, spec in catalogue.items():
        problem = _spec_problem(spec)
        if problem:
            return f"node class {class_type[:80]!r}: {problem}"
    return None


def _spec_problem(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return "its entry is not an object"
    if not isinstance(spec.get("output", []), list) or not isinstance(spec.get("output_node", False), bool):
        return "'output' must be an array and 'output_node' a boolean"
    inputs = spec.get("input", {})
    if not isinstance(inputs, dict):
        return "'input' is not an object"
    for group in ("required", "optional"):
        configs = inputs.get(group, {})
        if not isinstance(configs, dict):
            return f"'input.{group}' is not an object"
        for name, config in configs.items():
            if not isinstance(config, list) or not config:
                return f"input {name[:80]!r} is not a non-empty [type, options] array"
    return None


def _check_node(node_id: str, node: Any, workflow: Mapping[str, Any], catalogue: Mapping[str, Any],
                required_packs: Mapping[str, str]) -> list[ValidationProblem]:
    if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
        return [ValidationProblem(node_id, "?", None, "not a node: expected {'class_type': ..., 'inputs': {...}}")]
    class_type = node["class_type"]
    if class_type not in catalogue:
        return [ValidationProblem(node_id, class_type, None, _unknown_class(class_type, catalogue, required_packs))]
    inputs = node.get("inputs", {})
    if not isinstance(inputs, Mapping):
        return [ValidationProblem(node_id, class_type, None, "'inputs' must be a mapping")]
    spec = catalogue[class_type].get("input", {})
    required = spec.get("required", {})
    problems = []
    for name, config in {**required, **spec.get("optional", {})}.items():
        if name not in inputs:
            message = "required input is missing" if name in required else None
        else:
            message = _check_value(inputs[name], config, workflow, catalogue)
        if message:
            problems.append(ValidationProblem(node_id, class_type, name, message))
    return problems


def _unknown_class(class_type: str, catalogue: Mapping[str, Any], required_packs: Mapping[str, str]) -> str:
    if class_type in required_packs:
        return (f"node class '{class_type}' is not installed on this server; install the custom node pack "
                f"'{required_packs[class_type]}'")
    close = difflib.get_close_matches(class_type, list(catalogue), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "if it comes from a custom node pack, install that pack"
    return f"unknown node class '{class_type}' (not on this server); {hint}"


def _check_value(value: Any, config: Any, workflow: Mapping[str, Any], catalogue: Mapping[str, Any]) -> str | None:
    input_type = config[0]
    options = config[1] if len(config) > 1 and isinstance(config[1], Mapping) else {}
    if isinstance(value, list):
        return _check_link(value, input_type, workflow, catalogue)
    if isinstance(value, Mapping) and "__value__" in value:
        return None  # an explicitly wrapped literal list
    if input_type in _PRIMITIVES:
        return _check_primitive(value, input_type, options)
    choices = _combo_choices(input_type, options)
    if choices is not None and value not in choices:
        return _not_in_list(value, choices)
    return None


def _check_primitive(value: Any, input_type: str, options: Mapping[str, Any]) -> str | None:
    if input_type == "BOOLEAN":
        ok = isinstance(value, bool)
    elif input_type == "STRING":
        ok = isinstance(value, str)
    elif not _is_number(value):
        ok = False
    else:
        ok = input_type == "FLOAT" or float(value).is_integer()
    if not ok:
        return f"expected {input_type}, got {value!r}"
    if _is_number(value) and _is_number(options.get("min")) and value < options["min"]:
        return f"value {value!r} is below the minimum {options['min']}"
    if _is_number(value) and _is_number(options.get("max")) and value > options["max"]:
        return f"value {value!r} is above the maximum {options['max']}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_link(link: list[Any], input_type: Any, workflow: Mapping[str, Any],
                catalogue: Mapping[str, Any]) -> str | None:
    if len(link) != 2 or not isinstance(link[0], str) or isinstance(link[1], bool) or not isinstance(link[1], int):
        return (f"a link must be ['<node id>', <output index>], got {link!r} "
                "(wrap a literal list as {'__value__': [...]})")
    source, index = link
    node = workflow.get(source)
    if not isinstance(node, Mapping):
        return f"linked to node '{source}', which is not in the workflow"
    spec = catalogue.get(node["class_type"]) if isinstance(node.get("class_type"), str) else None
    if spec is None:
        return None  # the bad class is reported on that node
    outputs = spec.get("output", [])
    if not 0 <= index < len(outputs):
        return (f"linked to output {index} of node {source} ({node['class_type']}), "
                f"which has {len(outputs)} output(s)")
    if not _types_match(outputs[index], input_type):
        return (f"expects {_type_name(input_type)} but node {source} ({node['class_type']}) "
                f"output {index} is {_type_name(outputs[index])}")
    return None


def _types_match(received: Any, expected: Any) -> bool:
    received, expected = _type_name(received), _type_name(expected)
    if "*" in (received, expected):
        return True
    return bool(set(received.split(",")) & set(expected.split(",")))


def _type_name(input_type: Any) -> str:
    return "COMBO" if isinstance(input_type, list) else str(input_type)


def _combo_choices(input_type: Any, options: Mapping[str, Any]) -> list[Any] | None:
    """The allowed values, or None when the server checks the value itself (uploads, remote lists)."""
    if any(key.endswith("_upload") or key == "remote" for key in options):
        return None
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO" and isinstance(options.get("options"), list):
        return options["options"]
    return None


def _not_in_list(value: Any, choices: list[Any]) -> str:
    if not choices:  # model and file lists are empty until files are installed on the server
        return f"{value!r} is not available: the server lists no values for this input"
    listed = str(choices) if len(choices) <= 20 else f"the {len(choices)} values the server lists"
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{value!r} is not one of {listed}{hint}"


def node_key(node_id: Any) -> tuple[int, str]:
    """Sort key for node ids: numeric ids in numeric order, then the others."""
    text = str(node_id)
    return (int(text), text) if text.isdigit() and len(text) < 19 else (1 << 62, text)
