"""The training family's errors: one root, TrainingError, so callers catch one type."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

SHOWN_KEYS = 20  # messages list this many keys; the exception keeps all of them


class TrainingError(Exception):
    """Base class of everything anime_pipeline.training raises."""


class TrainerConfigError(TrainingError):
    """The settings cannot work with this backend (named field, reason)."""


class TrainerUnavailable(TrainingError):
    """The backend cannot train here: a server without the training nodes, a checkout without the script."""


class DatasetError(TrainingError):
    def __init__(self, where: Path | str, reason: str) -> None:
        self.where = Path(where)
        super().__init__(f"training dataset {where}: {reason}")


class TrainingFailed(TrainingError):
    """The trainer ran and failed; `log_tail` holds its last output lines."""

    def __init__(self, message: str, log_tail: Sequence[str] = ()) -> None:
        self.log_tail = tuple(log_tail)
        tail = "\n".join(f"  | {line}" for line in self.log_tail)
        super().__init__(f"{message}\n{tail}" if tail else message)


class TrainingCancelled(TrainingError):
    pass


class TrainingTimeout(TrainingError):
    pass


class MalformedTrainerOutput(TrainingError):
    """The trainer finished but what it reported or wrote is not what its protocol promises."""


class LoraFileError(TrainingError):
    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        super().__init__(f"LoRA file {path}: {reason}")


class LoraKeyMismatch(LoraFileError):
    """Keys the loader would silently drop ("lora key not loaded"), each with its reason."""

    def __init__(self, path: Path | str, base: str, problems: Sequence[tuple[str, str]]) -> None:
        self.base = base
        self.dropped = tuple(key for key, _ in problems)
        self.reasons = dict(problems)
        shown = "\n".join(f"  {key}: {reason}" for key, reason in list(problems)[:SHOWN_KEYS])
        more = f"\n  ... and {len(problems) - SHOWN_KEYS} more" if len(problems) > SHOWN_KEYS else ""
        super().__init__(path, f"{len(problems)} key(s) do not map onto base model {base} and would be "
                               f"dropped when it is loaded:\n{shown}{more}")


class LoraNotOnServer(TrainingError):
    def __init__(self, server: str, lora_name: str, listed: Sequence[str], hint: str = "") -> None:
        self.server = server
        self.lora_name = lora_name
        close = [name for name in listed if Path(name).name == Path(lora_name).name][:3]
        near = f"; the server lists {', '.join(map(repr, close))}" if close else ""
        super().__init__(f"ComfyUI server {server} does not list LoRA {lora_name!r} under LoraLoader.lora_name "
                         f"({len(listed)} LoRA(s) listed){near}{hint}")
