"""A production step: one artifact of one show entity, as plain Python.

Each artifact (character_reference, …, jellyfin_publish) is one `Step` subclass next to its
manifest model and its gates. A step says what it needs (`upstream`), what determines it (`spec`
for the show file's part, `fingerprint` for everything including upstream outputs), how to make it
(`produce`) and what a person should see (`metadata`). `run_step` is the one place that decides
between producing and keeping: the same manifest type comes back either way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import ShowConfig
from anime_pipeline.manifest import Manifest, Record
from anime_pipeline.media.music import MusicBackend
from anime_pipeline.media.speech import SpeechBackend
from anime_pipeline.metrics.suite import MetricSuite
from anime_pipeline.paths import StoragePaths
from anime_pipeline.planning.director import Director
from anime_pipeline.production.gates import GateResult, GateSet
from anime_pipeline.render.base import Renderer
from anime_pipeline.review.base import Reviewer
from anime_pipeline.services.jellyfin import JellyfinClient
from anime_pipeline.storage import sha256_json
from anime_pipeline.training.availability import LoraRequest
from anime_pipeline.training.backends import TrainerSession
from anime_pipeline.training.errors import TrainerConfigError

M = TypeVar("M", bound=Manifest)
R = TypeVar("R")
Level = Literal["character", "shot", "scene", "episode"]
RenderDevice = Literal["renderer", "trainer", "metrics", "none"]  # which device's pool a step occupies


@dataclass(frozen=True)
class Upstream:
    """One artifact of one entity that a step reads."""

    artifact: str
    key: str


@dataclass(frozen=True)
class Preview:
    """An image to show inline (a thumbnail in the Dagster UI)."""

    path: Path
    caption: str = "preview"


@dataclass(frozen=True)
class FileLink:
    path: Path


@dataclass(frozen=True)
class Table:
    """Structured data shown as JSON."""

    data: Any


MetadataValue = str | int | float | bool | None | Preview | FileLink | Table


class OpenRenderer(Protocol):
    """The show's renderer for one step, with IP-Adapter `references` (character slug → image) and
    the characters' LoRAs made available on the server that renders."""

    def __call__(self, config: ShowConfig, references: Mapping[str, Path],
                 loras: Sequence[LoraRequest] = ()) -> AbstractContextManager[Renderer]: ...


def no_trainer(config: ShowConfig) -> AbstractContextManager[TrainerSession]:
    raise TrainerConfigError(f"show {config.show.slug!r} sets backends.trainer: {config.backends.trainer}, but this "
                             "environment has no LoRA trainer")


class StepFailed(RuntimeError):
    """The artifact cannot be made, for the one-line reason given (a service refused, a line could not
    be spoken, a track is missing); nothing of it was written."""


class StepOptions(Record):
    """What one run may ask of a step besides producing it (its run config in the Dagster Launchpad).
    A step with choices declares a subclass as its `options_type`; the default offers none."""


@dataclass
class StepEnv:
    """What a step runs with: storage, the show's backends (opened by the orchestration layer, which
    knows GPUs and pools), the metric suite, and a log line sink."""

    paths: StoragePaths
    library: Path
    project: Project
    metrics: MetricSuite
    metric_backends: Mapping[str, str]  # per metric, the backend the installed weights enable
    open_renderer: OpenRenderer
    reviewer: Callable[[ShowConfig], Reviewer]
    director: Callable[[ShowConfig], Director]
    open_speech: Callable[[ShowConfig], AbstractContextManager[SpeechBackend]]  # the show's `backends.speech`
    open_music: Callable[[ShowConfig], AbstractContextManager[MusicBackend]]  # the show's `backends.music`
    jellyfin: Callable[[ShowConfig], JellyfinClient]  # the server of `publisher: jellyfin`
    log: Callable[[str], None] = print
    # the show's LoRA trainer (`backends.trainer` comfyui / kohya) on its GPU, holding that GPU's pool
    open_trainer: Callable[[ShowConfig], AbstractContextManager[TrainerSession]] = no_trainer
    extras: dict[str, Any] = field(default_factory=dict)
    options: StepOptions = field(default_factory=StepOptions)  # what this run asked of the step

    def show_dir(self, show: str) -> Path:
        """The folder of a show's YAML file (reference images and music are relative to it)."""
        return self.project.files[show].parent


@dataclass(frozen=True)
class Produced(Generic[M]):
    manifest: M
    folder: Path
    kept: bool  # True when nothing that determines the artifact changed and the old one was kept


class Step(ABC, Generic[R, M]):
    """One artifact's production: subclass per artifact, with its manifest type and gates."""

    artifact: ClassVar[str]
    level: ClassVar[Level]
    manifest_type: ClassVar[type[Manifest]]
    gates: ClassVar[GateSet]
    device: ClassVar[RenderDevice] = "none"
    version: ClassVar[str] = "1"  # bump when the step's code changes what it makes
    options_type: ClassVar[type[StepOptions]] = StepOptions

    @abstractmethod
    def folder(self, ref: R, paths: StoragePaths) -> Path: ...

    @abstractmethod
    def upstream(self, ref: R) -> list[Upstream]: ...

    @abstractmethod
    def spec(self, ref: R) -> dict[str, Any]:
        """The part of the show file that determines this artifact (its code version)."""

    @abstractmethod
    def produce(self, ref: R, env: StepEnv, fingerprint: str | None) -> M: ...

    def fingerprint(self, ref: R, env: StepEnv) -> str | None:
        """A hash of everything that determines the artifact; None: always produce it again."""
        return None

    def gate_subject(self, manifest: M) -> Any:
        """What the gates read (the manifest itself, or e.g. the chosen attempt's scores)."""
        return manifest

    def outputs(self, manifest: M, folder: Path) -> list[Path]:
        """The files whose contents are the artifact's data version."""
        return [folder / f.path for f in manifest.files]

    def data_version(self, manifest: M, folder: Path) -> str | None:
        """The artifact's data version where it is one known hash (None: a hash of `outputs`)."""
        return None

    def metadata(self, manifest: M, folder: Path) -> dict[str, MetadataValue]:
        return {"backend": manifest.backend, "device": manifest.device}

    def after_gates(self, ref: R, manifest: M, results: list[GateResult], env: StepEnv) -> None:
        """Called with the gates' results once they are judged (e.g. to send them to the director)."""

    def options(self, env: StepEnv) -> StepOptions:
        """This run's options as the step's own type (defaults where the run asked for none)."""
        return self.options_type.model_validate(env.options.model_dump())

    def code_version(self, ref: R) -> str:
        return f"{self.version}-{sha256_json(self.spec(ref))[:12]}"

    def describe(self) -> str:
        return (type(self).__doc__ or self.artifact).strip()


def run_step(step: Step[R, M], ref: R, env: StepEnv, force: bool = False) -> Produced[M]:
    """Produce the artifact, or keep the existing one when its fingerprint shows nothing changed."""
    folder = step.folder(ref, env.paths)
    fingerprint = step.fingerprint(ref, env)
    if fingerprint is not None and not force:
        previous = step.manifest_type.load(folder)
        if previous is not None and previous.kept_if(folder, fingerprint):
            env.log(f"{previous.key}: nothing that determines {step.artifact} changed; keeping it")
            return Produced(previous, folder, kept=True)  # type: ignore[arg-type]
    return Produced(step.produce(ref, env, fingerprint), folder, kept=False)
