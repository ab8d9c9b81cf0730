"""Load and validate show files; every problem names the file, the line, the field path and the reason.

A show file passes three stages, each of which reports all the problems it finds: the YAML
reader (encoding, characters, budgets, duplicate keys: `yaml_reader.py`), the schema (types,
ranges, sizes: `schema.py`) and the checks across fields (`checks.py`). Nothing raises anything
but ConfigError, whatever the bytes of the file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from anime_pipeline.config.checks import show_findings
from anime_pipeline.config.errors import ConfigError, ConfigProblem, format_path, shown
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.config.yaml_reader import MAX_FILE_BYTES, YamlDocument, read_yaml


@dataclass(frozen=True)
class FileCheck:
    """The result of validating one show file: its config, or the error that lists its problems."""

    path: Path
    config: ShowConfig | None = None
    error: ConfigError | None = None


def _line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if child is None:
                child = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        if error["loc"][-1:] == ("retry_thresholds",):
            return ("retry_thresholds was replaced by max_attempts (default 3): a shot is retried exactly while "
                    "one of its blocking gates fails")
        return "unknown key (check the spelling; see the README's show file reference)"
    if kind == "missing":
        return "required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and kind not in ("model_type", "dict_type"):
        return f"{message} (got {shown(error['input'])})"
    return message


def _problems(root: yaml.Node | None, found: Iterable[tuple[Sequence[str | int], str]]) -> list[ConfigProblem]:
    return [ConfigProblem(format_path(loc), reason, _line_of(root, loc)) for loc, reason in found]


def _validated(document: YamlDocument, file: Path, music_dir: Path | None) -> ShowConfig:
    if not isinstance(document.data, dict):
        raise ConfigError(file, [ConfigProblem("", "the file must be a mapping with show, characters and episodes",
                                               _line_of(document.root, ()) or 1)])
    try:
        config = ShowConfig.model_validate(document.data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise ConfigError(file, _problems(document.root, ((e["loc"], _describe(e)) for e in errors))) from None
    findings = show_findings(config, file.parent, music_dir if music_dir is not None else file.parent / "music")
    if findings:
        raise ConfigError(file, _problems(document.root, findings))
    return config


def parse_show(source: bytes | str, file: Path | str = "<string>", *, music_dir: Path | None = None) -> ShowConfig:
    """Parse and validate one show file's content; raise ConfigError listing every problem.

    reference_images are relative to the file's folder; scenes' music to `music_dir`, by default
    the `music` folder beside the file."""
    return _parse(source, Path(file), music_dir)[0]


def _parse(source: bytes | str, file: Path, music_dir: Path | None) -> tuple[ShowConfig, YamlDocument]:
    document = read_yaml(source, file)
    return _validated(document, file, music_dir), document


def _read(path: Path) -> bytes:
    """The file's bytes, refused before reading when it is no regular file or too large."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(path, [ConfigProblem("", "not a regular file")])
        if info.st_size > MAX_FILE_BYTES:
            raise ConfigError(path, [ConfigProblem("", f"the file has {info.st_size} bytes; a show file may have at "
                                                       f"most {MAX_FILE_BYTES} (split the show into several files)")])
        with open(path, "rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)  # a file that grew since stat is still refused, by the reader
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read the file: {exc.strerror}")]) from None


def load_show(path: Path | str, *, music_dir: Path | None = None) -> ShowConfig:
    path = Path(path)
    return parse_show(_read(path), path, music_dir=music_dir)


def check_files(paths: Iterable[Path], music_dir: Path | None = None) -> list[FileCheck]:
    """Validate every file, never stopping at a bad one; show slugs must also be unique across files."""
    checks: list[FileCheck] = []
    owners: dict[str, Path] = {}
    for path in map(Path, paths):
        try:
            config, document = _parse(_read(path), path, music_dir)
        except ConfigError as exc:
            checks.append(FileCheck(path, error=exc))
            continue
        slug = config.show.slug
        if slug in owners:
            problem = ConfigProblem("show.slug", f"show slug {slug!r} is already used by {owners[slug]}",
                                    _line_of(document.root, ("show", "slug")))
            checks.append(FileCheck(path, error=ConfigError(path, [problem])))
            continue
        owners[slug] = path
        checks.append(FileCheck(path, config=config))
    return checks


def show_files(config_dir: Path | str) -> list[Path]:
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(config_dir, [ConfigProblem("", "the project_configs folder does not exist")])
    return sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")])
