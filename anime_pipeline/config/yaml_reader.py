"""Reading a show file's YAML within fixed budgets, before anything else sees the data.

A show file may be hostile or broken: bytes that are not UTF-8, control characters that would
reach a terminal, an alias "bomb" whose expansion is exponential (PyYAML shares the aliased
objects, so loading is cheap and the blow-up comes later, in whatever walks the data), nesting
deep enough to overflow the Python stack in PyYAML's recursive composer, duplicate keys of which
YAML silently keeps the last. This module composes the node tree itself from parser events,
iteratively, counting the size the data has once every alias is expanded, and stops at the first
budget exceeded — so a bomb fails in linear time and constant memory.

Scalars are typed as PyYAML's safe loader types them (YAML 1.1), except that dates stay text (the
schema checks them, so an impossible date is a field error rather than a crash) and so does `=`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import BaseResolver, Resolver

from anime_pipeline.config.errors import ConfigError, ConfigProblem, format_path, shown

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 500_000  # values (keys included) once every alias is expanded
MAX_TEXT_CHARS = 4 * MAX_FILE_BYTES  # characters of all scalars once every alias is expanded
MAX_NUMBER_CHARS = 100  # int() refuses very long integers, and float() of a long one is slow

STR, INT, FLOAT = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
BOOL, NULL, MERGE = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"
SCALAR_TAGS = (STR, INT, FLOAT, BOOL, NULL)
_KEPT_AS_TEXT = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:yaml")

# YAML's printable set, less C1 (which includes NEL): anything else is refused in the raw text...
_BAD_IN_TEXT = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# ...and in a value once escapes such as "\e" or "\x00" are decoded; a lone "\r" has no business there.
_BAD_IN_VALUE = re.compile("[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_REPORTED_CHARACTERS = 20

_Parser = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class _Resolver(Resolver):
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _KEPT_AS_TEXT]
        for first, resolvers in Resolver.yaml_implicit_resolvers.items()
    }


# YAML 1.1 reads `1e-4` (no dot) as text; YAML 1.2 and every user read it as a number.
_Resolver.add_implicit_resolver(FLOAT, re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                list("-+0123456789"))
_RESOLVER = _Resolver()


@dataclass(frozen=True)
class YamlDocument:
    """The plain data of one YAML document and its node tree (for the line of any field)."""

    data: Any
    root: yaml.Node | None


def read_yaml(source: bytes | str, file: Path | str) -> YamlDocument:
    """Decode, check and load one YAML document; raise ConfigError naming file, line and field."""
    file = Path(file)
    text = decode(source, file)
    problems = character_problems(text)
    if problems:
        raise ConfigError(file, problems)
    root = _Composer(file).compose(text)
    if root is None:
        return YamlDocument(None, None)
    try:
        return YamlDocument(SafeConstructor().construct_document(root), root)
    except yaml.YAMLError as exc:  # e.g. a merge key (<<) whose value is not a mapping
        raise ConfigError(file, [_yaml_problem(exc)]) from None


def decode(source: bytes | str, file: Path) -> str:
    size = len(source)
    if size > MAX_FILE_BYTES:
        unit = "bytes" if isinstance(source, bytes) else "characters"
        raise ConfigError(file, [ConfigProblem("", f"the file has {size} {unit}; a show file may have at most "
                                                   f"{MAX_FILE_BYTES} (split the show into several files)", 1)])
    if isinstance(source, str):
        return source
    try:
        return source.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = source.count(b"\n", 0, exc.start) + 1
        column = exc.start - (source.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = source[exc.start]
        raise ConfigError(file, [ConfigProblem("", f"byte 0x{byte:02x} at column {column} is not UTF-8; "
                                                   "save the show file as UTF-8", line)]) from None


def character_problems(text: str) -> list[ConfigProblem]:
    """Control characters (NUL, ESC, other C0/C1 but tab and line breaks) and non-characters, by line."""
    problems = []
    for match in _BAD_IN_TEXT.finditer(text):
        position = match.start()
        line = text.count("\n", 0, position) + 1
        if len(problems) == _MAX_REPORTED_CHARACTERS:
            problems.append(ConfigProblem("", "more control characters follow from here; remove them all", line))
            break
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        problems.append(ConfigProblem("", f"{_character(match.group())} at column {column} is not allowed "
                                          "in a show file", line))
    return problems


def _character(ch: str) -> str:
    return f"control character U+{ord(ch):04X}" if ord(ch) < 0xA0 else f"character U+{ord(ch):04X}"


def _line(mark: yaml.Mark | None) -> int | None:
    return mark.line + 1 if mark is not None else None


def _yaml_problem(exc: yaml.YAMLError) -> ConfigProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    reason = getattr(exc, "problem", None) or str(exc).partition("\n")[0] or type(exc).__name__
    return ConfigProblem("", f"not valid YAML: {reason}", _line(mark))


@dataclass
class _Frame:
    """An open sequence or mapping while its events are read."""

    node: yaml.SequenceNode | yaml.MappingNode
    loc: tuple[str | int, ...]
    anchor: str | None
    nodes_before: int
    chars_before: int
    height: int = 1
    items: list[yaml.Node] = field(default_factory=list)
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    def child_loc(self) -> tuple[str | int, ...]:
        if not self.is_mapping:
            return (*self.loc, len(self.items))
        if len(self.items) % 2 == 0:
            return self.loc
        key = self.items[-1]
        return (*self.loc, key.value if isinstance(key, yaml.ScalarNode) else "?")


@dataclass(frozen=True)
class _Anchored:
    node: yaml.Node
    nodes: int
    chars: int
    height: int


class _Composer:
    """Builds PyYAML's node tree from parser events without recursion, within the budgets above."""

    def __init__(self, file: Path):
        self.file = file
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: set[str] = set()
        self.nodes = 0
        self.chars = 0
        self.documents = 0
        self.root: yaml.Node | None = None
        self.problems: list[ConfigProblem] = []

    def compose(self, text: str) -> yaml.Node | None:
        try:
            for event in yaml.parse(text, Loader=_Parser):
                self._event(event)
        except yaml.YAMLError as exc:
            raise ConfigError(self.file, [_yaml_problem(exc)]) from None
        if self.problems:
            raise ConfigError(self.file, self.problems)
        return self.root

    def _event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                self._fail("", "a show file holds one YAML document; remove the second '---'", event)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            self._open(event)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            self._close(event)

    def _loc(self) -> tuple[str | int, ...]:
        return self.stack[-1].child_loc() if self.stack else ()

    def _fail(self, loc: tuple[str | int, ...] | str, reason: str, event: yaml.Event) -> None:
        where = loc if isinstance(loc, str) else format_path(loc)
        raise ConfigError(self.file, [ConfigProblem(where, reason, _line(event.start_mark))])

    def _problem(self, reason: str, event: yaml.Event, loc: tuple[str | int, ...] | None = None) -> None:
        self.problems.append(ConfigProblem(format_path(self._loc() if loc is None else loc), reason,
                                           _line(event.start_mark)))

    def _grow(self, nodes: int, chars: int, height: int, event: yaml.Event) -> None:
        self.nodes += nodes
        self.chars += chars
        if self.nodes > MAX_NODES:
            self._fail(self._loc(), f"the data has more than {MAX_NODES} values once its aliases are expanded "
                                    "(an alias bomb?)", event)
        if self.chars > MAX_TEXT_CHARS:
            self._fail(self._loc(), f"the data has more than {MAX_TEXT_CHARS} characters of text once its "
                                    "aliases are expanded (an alias bomb?)", event)
        if len(self.stack) + height > MAX_DEPTH:
            self._fail(self._loc(), f"nested more than {MAX_DEPTH} levels deep", event)

    def _alias(self, event: yaml.AliasEvent) -> None:
        if event.anchor in self.open_anchors:
            self._fail(self._loc(), f"alias *{event.anchor} refers to a value that contains it", event)
        anchored = self.anchors.get(event.anchor)
        if anchored is None:
            self._fail(self._loc(), f"alias *{event.anchor} names no anchor defined before it", event)
        self._grow(anchored.nodes, anchored.chars, anchored.height, event)
        self._add(anchored.node, anchored.height, event)

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        self._grow(1, len(event.value), 1, event)
        bad = _BAD_IN_VALUE.search(event.value)
        if bad:
            self._problem(f"{_character(bad.group())} in {shown(event.value)} is not allowed", event)
        node = yaml.ScalarNode(self._scalar_tag(event), event.value, event.start_mark, event.end_mark,
                               style=event.style)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(node, 1, len(event.value), 1)
        self._add(node, 1, event)

    def _scalar_tag(self, event: yaml.ScalarEvent) -> str:
        if event.tag is None or event.tag == "!":
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
        elif event.tag not in SCALAR_TAGS:
            self._problem(f"the YAML tag {shown(event.tag)} is not allowed in a show file", event)
            return STR
        else:
            tag = event.tag
            implicit = _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False))
            if implicit != tag and not (tag == FLOAT and implicit == INT) and tag not in (STR, NULL):
                self._problem(f"{shown(event.value)} is not a valid {tag.rsplit(':', 1)[-1]}", event)
                return STR
        if tag in (INT, FLOAT) and len(event.value) > MAX_NUMBER_CHARS:
            self._problem(f"a number of {len(event.value)} characters is too long", event)
            return STR
        return tag

    def _open(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent) -> None:
        self._grow(1, 0, 1, event)
        mapping = isinstance(event, yaml.MappingStartEvent)
        kind, default = (yaml.MappingNode, BaseResolver.DEFAULT_MAPPING_TAG) if mapping else \
            (yaml.SequenceNode, BaseResolver.DEFAULT_SEQUENCE_TAG)
        if event.tag not in (None, "!", default):
            self._problem(f"the YAML tag {shown(event.tag)} is not allowed in a show file", event)
        node = kind(default, [], event.start_mark, event.end_mark, flow_style=event.flow_style)
        self.stack.append(_Frame(node, self._loc(), event.anchor, self.nodes - 1, self.chars))
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)

    def _close(self, event: yaml.SequenceEndEvent | yaml.MappingEndEvent) -> None:
        frame = self.stack.pop()
        node = frame.node
        node.end_mark = event.end_mark
        node.value = list(zip(frame.items[::2], frame.items[1::2])) if frame.is_mapping else frame.items
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = _Anchored(node, self.nodes - frame.nodes_before,
                                                   self.chars - frame.chars_before, frame.height)
        self._add(node, frame.height, event)

    def _add(self, node: yaml.Node, height: int, event: yaml.Event) -> None:
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        parent.height = max(parent.height, height + 1)
        if parent.is_mapping and len(parent.items) % 2 == 0:
            self._key(parent, node, event)
        elif isinstance(node, yaml.ScalarNode) and node.tag == MERGE:
            node = yaml.ScalarNode(STR, node.value, node.start_mark, node.end_mark, style=node.style)
        parent.items.append(node)

    def _key(self, parent: _Frame, node: yaml.Node, event: yaml.Event) -> None:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (STR, MERGE):
            shown_key = shown(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"
            self._problem(f"keys must be text; {shown_key} is not (quote it)", event, parent.loc)
            return
        line = event.start_mark.line + 1
        if node.value in parent.key_lines:
            self._problem(f"duplicate key {shown(node.value)} (first at line {parent.key_lines[node.value]}, again "
                          f"at line {line}); YAML would silently keep the last one", event, (*parent.loc, node.value))
        else:
            parent.key_lines[node.value] = line

