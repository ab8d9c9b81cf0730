"""Property-based fuzzing of the show loader: whatever the bytes, a clean error or a valid config.

Mutations of the sample show — values of the wrong type, huge values, deep nesting, alias bombs,
raw bytes, unicode, YAML syntax, duplicated and dropped lines — must end in either a ConfigError
whose every line is one printable, bounded line naming the file, or a ShowConfig whose data can be
walked whole (what sync does when it fingerprints it). Any other exception fails the test.
The example counts keep the two tests to about ten seconds together on the development machine; the
deadline only catches a hang (an example takes milliseconds to about a second).
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anime_pipeline.config import ConfigError, ShowConfig, parse_show
from anime_pipeline.config.errors import MAX_LINE_CHARS
from anime_pipeline.storage import sha256_json
from tests.worlds import SAMPLE

FILE = "fuzz/show.yaml"
SAMPLE_TEXT = SAMPLE.read_text()
SAMPLE_DATA = yaml.safe_load(SAMPLE_TEXT)
DEEP, BOMB = "__deep_nesting__", "__alias_bomb__"
DUMPER = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper
FUZZ = settings(max_examples=120, deadline=timedelta(seconds=20), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_TEXT = settings(FUZZ, max_examples=400)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    children = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    return [prefix] + [p for key, value in children for p in _paths(value, (*prefix, key))]


PATHS = [p for p in _paths(SAMPLE_DATA) if p]


def _bomb(levels: int) -> str:
    items = [f"&a0 [{', '.join(['lol'] * 9)}]"]
    items += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


scalars = st.one_of(
    st.booleans(), st.none(), st.integers(), st.floats(), st.text(max_size=40),
    st.integers(min_value=10**30, max_value=10**90), st.sampled_from(["2026-02-30", "mio\n", "../x", "/etc/shadow", ""]),
)
huge = st.one_of(
    st.builds(lambda n, ch: ch * n, st.integers(2_000, 300_000), st.sampled_from(["x", "é", "\n", "山", " go"])),
    st.builds(lambda n: ["tag"] * n, st.integers(65, 30_000)),
)
nested = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                                                            max_size=4), max_leaves=12)
values = st.one_of(scalars, huge, nested, st.just(DEEP), st.just(BOMB))


def _parent(data: Any, path: tuple) -> Any | None:
    for part in path[:-1]:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data if isinstance(data, (dict, list)) else None


@st.composite
def data_mutations(draw) -> bytes:
    data = copy.deepcopy(SAMPLE_DATA)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = _parent(data, path)
        if parent is None or path[-1] not in (parent if isinstance(parent, dict) else range(len(parent))):
            continue
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
        else:
            parent[path[-1]] = draw(values)
    text = yaml.dump(data, Dumper=DUMPER, sort_keys=False, allow_unicode=True)
    depth = draw(st.integers(30, 1_200))
    text = text.replace(DEEP, "[" * depth + "]" * depth).replace(BOMB, _bomb(draw(st.integers(3, 12))))
    return text.encode("utf-8")


SYNTAX = ["*a", "&a ", "<<: *a\n", "!!binary ", "!!python/object:os.system ", "---\n", "? [x]\n: y\n", "\t", "{",
          "]", "'", '"\\e[31m', '"\\x00"', "\x00", "\x1b", "\ufeff", "\x85", "key: value\n", "- \n", ": ", "%YAML 1.1\n"]


@st.composite
def text_mutations(draw) -> bytes:
    lines = SAMPLE_TEXT.encode("utf-8").split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        at = draw(st.integers(0, len(line)))
        operation = draw(st.sampled_from(["bytes", "unicode", "syntax", "duplicate", "drop", "truncate"]))
        if operation == "bytes":
            lines[index] = line[:at] + draw(st.binary(min_size=1, max_size=6)) + line[at:]
        elif operation == "unicode":
            lines[index] = line[:at] + draw(st.text(min_size=1, max_size=6)).encode("utf-8", "surrogatepass") + line[at:]
        elif operation == "syntax":
            lines[index] = line[:at] + draw(st.sampled_from(SYNTAX)).encode("utf-8") + line[at:]
        elif operation == "duplicate":
            lines.insert(index + draw(st.integers(0, 3)), line)
        elif operation == "drop":
            del lines[index]
        else:
            lines = [*lines[:index], line[:at]]
    return b"\n".join(lines)


def _clean_error_or_valid_config(source: bytes) -> None:
    try:
        config = parse_show(source, FILE)
    except ConfigError as exc:
        lines = str(exc).split("\n")
        assert lines and exc.problems
        for line in lines:
            assert line.startswith(f"{FILE}:") and line.isprintable() and len(line) <= MAX_LINE_CHARS, line
        return
    assert isinstance(config, ShowConfig)
    sha256_json(config.model_dump())


@FUZZ
@given(data_mutations())
def test_mutated_values_give_a_clean_error_or_a_valid_config(source):
    _clean_error_or_valid_config(source)


@FUZZ_TEXT
@given(text_mutations())
def test_mutated_bytes_give_a_clean_error_or_a_valid_config(source):
    _clean_error_or_valid_config(source)
