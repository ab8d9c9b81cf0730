"""Config errors: one problem per line, each naming the file, the line, the field path and the reason.

A show file may be hostile or broken, so nothing in a message is trusted: bad values are shown
shortened, and every rendered line has its control characters escaped and its length capped, so
that an error never floods or drives the terminal it is printed to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHOWN_VALUE_CHARS = 60
MAX_LINE_CHARS = 400
MAX_SHOWN_PROBLEMS = 50


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
        lines = [self._line(problem) for problem in self.problems[:MAX_SHOWN_PROBLEMS]]
        hidden = len(self.problems) - MAX_SHOWN_PROBLEMS
        if hidden > 0:
            lines.append(one_line(f"{self.file}: <file>: {hidden} more problems not shown; fix the ones above first"))
        return "\n".join(lines)

    def _line(self, problem: ConfigProblem) -> str:
        where = f"{self.file}:{problem.line}" if problem.line else str(self.file)
        return one_line(f"{where}: {problem.field or '<file>'}: {problem.reason}")


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` as one printable line: line breaks and control characters escaped, at most `limit` characters."""
    text = text[: limit * 2]  # every character escapes to at most 10, so this bounds the work, not the result
    safe = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def shown(value: Any, limit: int = SHOWN_VALUE_CHARS) -> str:
    """A bad value as an error message shows it: its repr, shortened; containers by size only."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**limit:
        return "a number too long to show"
    text = repr(value[: limit + 1]) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_path(loc: Iterable[str | int]) -> str:
    """('episodes', 0, 'scenes', 1) → 'episodes[0].scenes[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
