"""Load and validate show files; every problem names the file, the field path and the reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from anime_pipeline.config.schema import ShowConfig


@dataclass(frozen=True)
class ConfigProblem:
    field: str
    reason: str
    line: int | None = None


class ConfigError(ValueError):
    """A show file that cannot be used; lists every problem found, each with its field path."""

    def __init__(self, file: Path | str, problems: Sequence[ConfigProblem]):
        self.file = Path(file)
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        lines = []
        for problem in self.problems:
            where = f"{self.file}:{problem.line}" if problem.line else str(self.file)
            lines.append(f"{where}: {problem.field or '<file>'}: {problem.reason}")
        return "\n".join(lines)


def format_path(loc: Iterable[str | int]) -> str:
    """('episodes', 0, 'scenes', 1) → 'episodes[0].scenes[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


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


def _describe(error: dict) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the README's show file reference)"
    if kind == "missing":
        return "required field is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and kind not in ("model_type", "dict_type"):
        value = error["input"]
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{message} (got {shown})"
    return message


def _cross_reference_problems(config: ShowConfig) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def duplicates(slugs: list[str], loc: tuple[str | int, ...], what: str, key: str = "slug") -> None:
        counts = Counter(slugs)
        for index, slug in enumerate(slugs):
            if counts[slug] > 1 and slugs.index(slug) != index:
                problems.append(((*loc, index, key), f"duplicate {what} {slug!r} (first at index {slugs.index(slug)})"))

    known = {c.slug for c in config.characters}
    duplicates([c.slug for c in config.characters], ("characters",), "character slug")
    duplicates([e.slug for e in config.episodes], ("episodes",), "episode slug")
    duplicates([str(e.number) for e in config.episodes], ("episodes",), "episode number", key="number")
    for ei, episode in enumerate(config.episodes):
        duplicates([s.slug for s in episode.scenes], ("episodes", ei, "scenes"), "scene slug")
        for si, scene in enumerate(episode.scenes):
            duplicates([s.slug for s in scene.shots], ("episodes", ei, "scenes", si, "shots"), "shot slug")
            for hi, shot in enumerate(scene.shots):
                base = ("episodes", ei, "scenes", si, "shots", hi)
                for ci, slug in enumerate(shot.characters):
                    if slug not in known:
                        problems.append(((*base, "characters", ci), f"unknown character {slug!r}; known: {sorted(known)}"))
                if len(set(shot.characters)) != len(shot.characters):
                    problems.append(((*base, "characters"), "a character is listed twice"))
                for di, line in enumerate(shot.dialogue):
                    if line.speaker not in known:
                        problems.append(((*base, "dialogue", di, "speaker"), f"unknown character {line.speaker!r}; known: {sorted(known)}"))
                if shot.continuity and si == 0 and hi == 0 and ei == 0:
                    problems.append(((*base, "continuity"), "the first shot of the show has no previous shot to continue from"))
    return problems


def parse_show(text: str, file: Path | str = "<string>") -> ShowConfig:
    """Parse and validate one show file's text; raise ConfigError listing every problem."""
    file = Path(file)
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(file, [ConfigProblem("", f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                                mark.line + 1 if mark else None)]) from None
    if not isinstance(data, dict):
        raise ConfigError(file, [ConfigProblem("", "the file must be a mapping with show, characters and episodes")])
    try:
        config = ShowConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            ConfigProblem(format_path(err["loc"]), _describe(err), _line_of(root, err["loc"]))
            for err in exc.errors()
        ]
        raise ConfigError(file, problems) from None
    cross = _cross_reference_problems(config)
    if cross:
        raise ConfigError(file, [ConfigProblem(format_path(loc), reason, _line_of(root, loc)) for loc, reason in cross])
    return config


def load_show(path: Path | str) -> ShowConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read the file: {exc.strerror}")]) from None
    return parse_show(text, path)


def show_files(config_dir: Path | str) -> list[Path]:
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(config_dir, [ConfigProblem("", "the project_configs folder does not exist")])
    return sorted([*config_dir.glob("*.yaml"), *config_dir.glob("*.yml")])
