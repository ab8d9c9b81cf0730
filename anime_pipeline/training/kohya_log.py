"""Reading kohya-ss/sd-scripts' console while it trains (protocols.md §4).

stdout carries the header (`total optimization steps / 学習ステップ数: 1000`), `epoch 2/10` and
`saving checkpoint: <path>`; stderr carries tqdm's bar, redrawn with carriage returns:
`steps:  12%|█▏   | 120/1000 [01:02<07:40,  1.91it/s, avr_loss=0.0812]`. Lines are split on
both `\\r` and `\\n`; `avr_loss` is kohya's moving average over the last epoch's step losses, and
tqdm redraws at most every 0.1 s, so the history holds the steps that were drawn.
"""

from __future__ import annotations

import collections
import codecs
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

EPOCH = re.compile(r"epoch (\d+)/(\d+)")
STEP = re.compile(r"(\d+)/(\d+) \[.*avr_loss=([0-9.eE+-]+)")
SAVED = re.compile(r"saving checkpoint: (.+)")
TOTAL_STEPS = re.compile(r"total optimization steps / 学習ステップ数: (\d+)")
EPOCHS = re.compile(r"num epochs / epoch数: (\d+)")
_SPLIT = re.compile(r"[\r\n]")


@dataclass(frozen=True)
class StepReport:
    step: int
    total: int
    avr_loss: float


@dataclass
class KohyaLog:
    """Fed raw output chunks per stream (from two reader threads); calls `on_step` for each new
    step drawn, and keeps the header figures, the epochs begun, the saves and the last lines."""

    on_step: Callable[[StepReport], None] = lambda report: None
    on_failure: Callable[[], None] = lambda: None  # on_step raised: the run should stop
    tail_lines: int = 60
    total_steps: int | None = None
    epochs: int | None = None
    epoch: int = 0
    losses: dict[int, float] = field(default_factory=dict)  # step -> avr_loss
    saved: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=self.tail_lines)
        self._pending: dict[str, str] = {}
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._lock = threading.Lock()
        self.failure: Exception | None = None  # what on_step raised; it is not called again

    def feed(self, stream: str, chunk: bytes) -> None:
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        self._feed_text(stream, decoder.decode(chunk))

    def close(self, stream: str) -> None:
        decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")(errors="replace"))
        self._feed_text(stream, decoder.decode(b"", final=True) + "\n")

    def _feed_text(self, stream: str, text: str) -> None:
        with self._lock:
            pieces = _SPLIT.split(self._pending.get(stream, "") + text)
            self._pending[stream] = pieces.pop()
            reports = [report for piece in pieces if (report := self._line(piece.strip())) is not None]
        for report in reports:  # outside the lock: the callback may take its time
            if self.failure is not None:
                return
            try:
                self.on_step(report)
            except Exception as exc:  # the reader must go on draining the pipe, or the trainer blocks
                self.failure = exc
                self.on_failure()

    def _line(self, line: str) -> StepReport | None:
        if not line:
            return None
        step = STEP.search(line)
        if step is None:  # a redrawn bar is not worth keeping in the tail
            self.tail.append(line)
        if match := TOTAL_STEPS.search(line):
            self.total_steps = int(match.group(1))
        elif match := EPOCHS.search(line):
            self.epochs = int(match.group(1))
        elif match := SAVED.search(line):
            self.saved.append(match.group(1).strip())
        elif step is None and (match := EPOCH.fullmatch(line)):
            self.epoch, self.epochs = int(match.group(1)), int(match.group(2))
        if step is None:
            return None
        number, total, loss = int(step.group(1)), int(step.group(2)), _float(step.group(3))
        if loss is None or number < 1 or self.losses.get(number) == loss:
            return None
        self.losses[number] = loss
        return StepReport(number, total, loss)


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
