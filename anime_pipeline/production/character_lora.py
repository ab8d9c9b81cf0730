"""character_lora: the character adapter trained on the approved dataset, judged by renders with it.

`backends.trainer` picks how it is made:

* `previz` (embedded): a palette fitted to the approved images (not a LoRA, never written as one);
  one validation render with the palette applied judges it.
* `comfyui` / `kohya`: a LoRA trained on the trainer's GPU (`anime_pipeline.training`), one file per
  epoch. Every epoch's keys are checked against the base checkpoint before anything renders with
  it; every epoch renders the same validation prompts through the show's renderer with its LoRA
  (next to the IP-Adapter reference, as shots use it), and identity against the anchor picks the
  epoch kept as `<character>.safetensors`.

Either way the artifact is one `LoraManifest`: the loss history, every epoch's identity scores and
the chosen epoch, which both gates judge.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.config.schema import Character
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.metrics.suite import Anchor, StillIdentity, still_identity
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.approved_dataset import DatasetManifest
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.character_reference import front_panel
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import StillRequest
from anime_pipeline.storage import atomic_path, sha256_file, sha256_json
from anime_pipeline.storage import outputs as stored_files
from anime_pipeline.training.artifact import LoraArtifact, check_epoch_keys, loss_fell, plot_loss, write_lora_artifact
from anime_pipeline.training.availability import LoraRequest
from anime_pipeline.training.backends import TrainerSession, progress_logger
from anime_pipeline.training.base import EpochCheckpoint, LossPoint, TrainingJob, TrainingOutcome, ValidationPrompt
from anime_pipeline.training.dataset import TrainingDataset
from anime_pipeline.training.previz_adapter import PrevizAdapter, fit_previz_adapter
from anime_pipeline.training.selection import EpochSelection, pick_best_epoch, validation_prompts

ADAPTER_FILE = "previz_adapter.json"
PREVIZ_TRAINER = "previz adapter (embedded palette fit, not a LoRA)"
PREVIZ_LOSS = "mean squared RGB distance to the nearest palette centre (k-means)"
PREVIZ_SEED = 7
LOSS_PLOT = "loss.png"
VALIDATION_DIR = "validation"


class LossRecord(Record):
    step: int
    epoch: int
    loss: float


class ValidationRecord(Record):
    """One validation render's request, the same for every epoch."""

    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    variation: tuple[str, str, str]  # outfit, expression, pose


class EpochRecord(Record):
    epoch: int
    steps: int
    file: str  # the epoch's adapter file, relative to the artifact folder
    sha256: str
    identity: list[float]  # one per validation render, against the anchor
    images: list[str]  # the validation renders

    @property
    def mean_identity(self) -> float:
        return round(sum(self.identity) / len(self.identity), 4)

    @property
    def min_identity(self) -> float:
        return min(self.identity)


class LoraFile(Record):
    """The chosen epoch as a LoRA file: what shots load."""

    file: str  # <character>.safetensors
    sha256: str
    served_name: str  # its name on the rendering servers: content-hashed, new LoRA = new name
    keys: int
    modules: int  # LoRA modules that land on the base model (every key does: the check passed)
    base_checkpoint: str
    base_checkpoint_sha256: str | None


class LoraManifest(Manifest):
    trainer: str  # previz | comfyui | kohya
    trainer_label: str
    trainer_version: str
    seed: int
    dataset: list[str]  # the images as trained
    dataset_sha256: str
    settings: dict[str, str]  # what the trainer ran with
    loss_kind: str
    loss: list[LossRecord]
    loss_plot: str
    identity_backend: str
    identity_rule: RuleRecord  # the same-character rule that judged the validation renders
    validation: list[ValidationRecord]
    epochs: list[EpochRecord]
    chosen_epoch: int
    selection_rule: str
    lora: LoraFile | None = None  # None: the previz adapter, which is no LoRA
    palette: dict[str, str] | None = None  # the previz adapter's fitted palette

    @property
    def chosen(self) -> EpochRecord:
        return next(e for e in self.epochs if e.epoch == self.chosen_epoch)

    def request(self, folder: Path, character: Character) -> LoraRequest | None:
        """What a render loads for this character (weights from the show file); None for previz."""
        if self.lora is None:
            return None
        return LoraRequest(character.slug, folder / self.lora.file, self.lora.served_name, character.lora.weight,
                           character.lora.clip_weight)


def _loss_fell(m: LoraManifest, _q) -> Measured:
    points = [LossPoint(p.step, p.epoch, p.loss) for p in m.loss if p.epoch <= m.chosen_epoch]
    _, start, end = loss_fell(points)
    return Measured(end, m.loss_kind, {"loss_start": start, "epoch": m.chosen_epoch}, threshold=start)


def _keeps_identity(m: LoraManifest, q) -> Measured:
    chosen = m.chosen
    return Measured(chosen.mean_identity, m.identity_backend,
                    {"epoch": chosen.epoch, "worst_render": chosen.min_identity, "rule": m.identity_rule.source,
                     "per_epoch": {str(e.epoch): e.mean_identity for e in m.epochs}},
                    threshold=m.identity_rule.threshold(q))


GATES: GateSet[LoraManifest] = GateSet((
    Gate("loss_fell", "Training loss at the end of the chosen epoch is at most the loss at the start.", _loss_fell,
         "at_most"),
    Gate("keeps_identity", "Renders with the chosen epoch are the same character as the anchor (mean similarity "
         "over the validation renders ≥ the identity backend's threshold, quality.identity.<backend>).",
         _keeps_identity, "at_least", "identity"),
))


class CharacterLora(Step[CharacterRef, LoraManifest]):
    """Trains the character adapter on the approved dataset (previz: a palette fit; comfyui / kohya: a
    LoRA, one file per epoch, each key-checked), renders validation portraits with it and keeps the
    epoch whose identity against the anchor is best."""

    artifact = "character_lora"
    level = "character"
    manifest_type = LoraManifest
    gates = GATES
    device = "trainer"
    version = "3"  # identity judged per backend (issue 10)

    def folder(self, ref: CharacterRef, paths: StoragePaths) -> Path:
        return paths.adapter(ref.key)

    def upstream(self, ref: CharacterRef) -> list[Upstream]:
        return [Upstream("approved_dataset", ref.key), Upstream("character_embedding", ref.key)]

    def spec(self, ref: CharacterRef) -> dict:
        return {**character_spec(ref), "lora": ref.character.lora.model_dump(mode="json"),
                "training": ref.config.training.model_dump(mode="json")}

    def fingerprint(self, ref: CharacterRef, env: StepEnv) -> str:
        dataset = DatasetManifest.require(env.paths.dataset(ref.key), f"approved_dataset {ref.key}")
        anchor = load_anchor(env.paths.embedding(ref.key))
        return sha256_json({"spec": self.spec(ref), "version": self.version,
                            "dataset": [f.sha256 for f in dataset.files], "anchor": anchor.as_lists(),
                            "metrics": dict(env.metric_backends)})

    def produce(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> LoraManifest:
        dataset = DatasetManifest.require(env.paths.dataset(ref.key), f"approved_dataset {ref.key}")
        if not dataset.approved:
            raise ValueError(f"{ref.key}: the approved dataset is empty; approve images first")
        if ref.config.backends.trainer == "previz":
            return self._fit_previz(ref, env, dataset, fingerprint)
        return self._train_lora(ref, env, fingerprint)

    # -- previz: the palette adapter ----------------------------------------------------------

    def _fit_previz(self, ref: CharacterRef, env: StepEnv, dataset: DatasetManifest,
                    fingerprint: str | None) -> LoraManifest:
        dataset_dir, out_dir = env.paths.dataset(ref.key), self.folder(ref, env.paths)
        images = [load_png(dataset_dir / a.image) for a in dataset.approved]
        adapter = fit_previz_adapter(images, [a.face_box for a in dataset.approved], ref.character, seed=PREVIZ_SEED)
        adapter.save(out_dir / ADAPTER_FILE)
        env.log(f"{PREVIZ_TRAINER}: loss {adapter.loss_history[0]:.2f} → {adapter.loss_history[-1]:.2f} "
                f"over {len(adapter.loss_history)} iterations")
        request = _previz_request(ref, adapter)
        references = _references(ref, env)
        with env.open_renderer(ref.config, references) as renderer:
            result = renderer.render_still(request)
            backend = show_identity_backend(env.metrics, ref.config, renderer.backend)
        save_png(out_dir / "validation.png", result.image)
        box = result.face_boxes.get(ref.character.slug)
        judged = still_identity(result.image, box, load_anchor(env.paths.embedding(ref.key)), backend)
        loss = [LossRecord(step=i + 1, epoch=1, loss=value) for i, value in enumerate(adapter.loss_history)]
        save_png(out_dir / LOSS_PLOT, plot_loss([LossPoint(p.step, p.epoch, p.loss) for p in loss], PREVIZ_LOSS,
                                                ref.character.slug))
        epoch = EpochRecord(epoch=1, steps=adapter.iterations, file=ADAPTER_FILE,
                            sha256=sha256_file(out_dir / ADAPTER_FILE), identity=[round(judged.similarity, 4)],
                            images=["validation.png"])
        manifest = LoraManifest(
            kind=self.artifact, key=ref.key, backend=PREVIZ_TRAINER, device="cpu", inputs_fingerprint=fingerprint,
            trainer="previz", trainer_label=PREVIZ_TRAINER, trainer_version="previz-adapter-1", seed=PREVIZ_SEED,
            dataset=[a.image for a in dataset.approved],
            dataset_sha256=TrainingDataset.from_folder(dataset_dir).sha256(),
            settings={"iterations": str(adapter.iterations)}, loss_kind=PREVIZ_LOSS, loss=loss, loss_plot=LOSS_PLOT,
            identity_backend=judged.backend, identity_rule=RuleRecord.of(judged.rule),
            validation=[ValidationRecord(prompt=request.prompt, negative_prompt=request.negative_prompt,
                                         seed=request.seed, width=request.width, height=request.height,
                                         variation=(request.outfit, request.expression, request.pose))],
            epochs=[epoch], chosen_epoch=1, selection_rule="the only epoch", palette=adapter.palette,
            files=[FileEntry.of(out_dir / name, out_dir) for name in (ADAPTER_FILE, "validation.png", LOSS_PLOT)],
        )
        manifest.write(out_dir)
        return manifest

    # -- comfyui / kohya: a LoRA ------------------------------------------------------------

    def _train_lora(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> LoraManifest:
        training, key = ref.config.training, ref.key
        dataset = TrainingDataset.from_folder(env.paths.dataset(key))
        prompts = validation_prompts(ref.config.show.style, ref.character, training.validation_prompts, training.seed)
        with tempfile.TemporaryDirectory(prefix=".training-", dir=env.paths.character(key)) as scratch:
            work = Path(scratch)
            with env.open_trainer(ref.config) as session:
                job = TrainingJob(ref.character.slug, dataset, session.base, training, sample_prompts=prompts)
                env.log(f"{key}: training {training.epochs} epoch(s) on {len(dataset.items)} image(s) with "
                        f"{session.backend} on GPU {session.gpu}, base {session.base.name}")
                outcome = session.trainer.train(job, work / "trainer", progress=progress_logger(env.log))
            reports = check_epoch_keys(outcome, session.base)  # LoraKeyMismatch names the dropped keys
            env.log(f"{key}: every key of {len(outcome.epochs)} epoch file(s) maps onto {session.base.name} "
                    f"({reports[-1].modules} modules)")
            renders = ValidationRenders(ref, env, session, work / VALIDATION_DIR)
            selection = pick_best_epoch(outcome.epochs, prompts, renders, identity_backend="")
            selection = dataclasses.replace(selection, identity_backend=renders.backend)
            out_dir = self.folder(ref, env.paths)
            artifact = write_lora_artifact(outcome, job, selection, out_dir)
            for image in stored_files(work / VALIDATION_DIR, "*.png"):
                _keep(image, out_dir / VALIDATION_DIR / image.name)
        manifest = _lora_manifest(self.artifact, ref, fingerprint, job, outcome, selection, artifact, out_dir,
                                  renders.rule)
        manifest.write(out_dir)
        env.log(f"{key}: epoch {artifact.chosen_epoch} chosen ({selection.rule}); stored as {artifact.served_name}")
        return manifest

    # -- what Dagster records ---------------------------------------------------------------

    def outputs(self, manifest: LoraManifest, folder: Path) -> list[Path]:
        return [folder / (manifest.lora.file if manifest.lora else ADAPTER_FILE)]

    def data_version(self, manifest: LoraManifest, folder: Path) -> str | None:
        """The chosen LoRA file's sha256: a retrained but identical file leaves the shots fresh."""
        return manifest.lora.sha256 if manifest.lora else None

    def metadata(self, manifest: LoraManifest, folder: Path) -> dict[str, MetadataValue]:
        chosen = manifest.chosen
        out: dict[str, MetadataValue] = {
            "trainer": manifest.trainer_label, "trainer_backend": manifest.trainer, "device": manifest.device,
            "images": len(manifest.dataset), "epochs": len(manifest.epochs), "chosen_epoch": manifest.chosen_epoch,
            "validation_identity": chosen.mean_identity, "identity_backend": manifest.identity_backend,
            "loss_start": manifest.loss[0].loss, "loss_end": manifest.loss[-1].loss, "loss_kind": manifest.loss_kind,
            "loss": Table([p.model_dump() for p in manifest.loss]),
            "loss_plot": Preview(folder / manifest.loss_plot, "training loss"),
            "epoch_scores": Table([{"epoch": e.epoch, "steps": e.steps, "mean": e.mean_identity,
                                    "min": e.min_identity, "scores": e.identity} for e in manifest.epochs]),
            "preview": Preview(folder / chosen.images[0], f"validation render, epoch {chosen.epoch}"),
        }
        if manifest.lora is not None:
            out.update(lora=FileLink(folder / manifest.lora.file), served_as=manifest.lora.served_name,
                       base_checkpoint=manifest.lora.base_checkpoint)
        if manifest.palette is not None:
            out["palette"] = Table(manifest.palette)
        return out


class ValidationRenders:
    """Scores one epoch for `pick_best_epoch`: its LoRA made available on the server that renders
    (the training server's own listing when that one renders), every validation prompt rendered
    with it, each render's identity against the anchor measured by the gates' identity backend."""

    def __init__(self, ref: CharacterRef, env: StepEnv, session: TrainerSession, folder: Path) -> None:
        self.ref, self.env, self.session, self.folder = ref, env, session, folder
        self.anchor: Anchor = load_anchor(env.paths.embedding(ref.key))
        self.references = _references(ref, env)
        self.judged: list[StillIdentity] = []

    @property
    def backend(self) -> str:
        return ", ".join(sorted({j.backend for j in self.judged}))

    @property
    def rule(self) -> RuleRecord:
        """The one rule every validation render was judged by (they all come from one renderer)."""
        rules = {j.rule for j in self.judged}
        if len(rules) != 1:
            raise ValueError(f"{self.ref.key}: the validation renders were judged by "
                             f"{len(rules) or 'no'} identity rules; expected exactly one")
        return RuleRecord.of(rules.pop())

    def __call__(self, epoch: EpochCheckpoint, prompts: Sequence[ValidationPrompt]) -> list[float]:
        character = self.ref.character
        listed = (self.session.gpu, epoch.server_lora_name) if epoch.server_lora_name else None
        name = f"{character.slug}-e{epoch.epoch:03d}-{sha256_file(epoch.path)[:12]}.safetensors"
        request = LoraRequest(character.slug, epoch.path, name, character.lora.weight, character.lora.clip_weight,
                              listed)
        scores = []
        with self.env.open_renderer(self.ref.config, self.references, (request,)) as renderer:
            backend = show_identity_backend(self.env.metrics, self.ref.config, renderer.backend)
            for index, prompt in enumerate(prompts):
                result = renderer.render_still(_validation_request(self.ref, prompt))
                save_png(self.folder / f"e{epoch.epoch:03d}-{index}.png", result.image)
                judged = still_identity(result.image, result.face_boxes.get(character.slug), self.anchor, backend)
                self.judged.append(judged)
                scores.append(round(judged.similarity, 4))
        self.env.log(f"{self.ref.key}: epoch {epoch.epoch} identity {scores}")
        return scores


def _references(ref: CharacterRef, env: StepEnv) -> dict[str, Path]:
    return {ref.character.slug: p for p in [front_panel(env.paths, ref.key)] if p}


def _previz_request(ref: CharacterRef, adapter: PrevizAdapter) -> StillRequest:
    style = ref.config.show.style
    width, height = style.resolution
    return StillRequest(
        characters=(ref.character,), prompt=still_prompt(style, ref.character, "portrait"),
        negative_prompt=negative_prompt(style, [ref.character]), seed=PREVIZ_SEED, width=width // 2,
        height=height // 2, framing="portrait", background=tuple(ref.config.world.palette), steps=style.steps,
        palette_overrides={ref.character.slug: adapter.palette},
    )


def _validation_request(ref: CharacterRef, prompt: ValidationPrompt) -> StillRequest:
    outfit, expression, pose = prompt.variation
    return StillRequest(characters=(ref.character,), prompt=prompt.prompt, negative_prompt=prompt.negative,
                        seed=prompt.seed, width=prompt.width, height=prompt.height, framing="portrait", pose=pose,
                        expression=expression, outfit=outfit, background=tuple(ref.config.world.palette),
                        steps=prompt.steps)


def _keep(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _lora_manifest(kind: str, ref: CharacterRef, fingerprint: str | None, job: TrainingJob, outcome: TrainingOutcome,
                   selection: EpochSelection, artifact: LoraArtifact, out_dir: Path, rule: RuleRecord) -> LoraManifest:
    info, timings = outcome.trainer, outcome.timings
    used = {**job.settings.model_dump(mode="json"), **outcome.settings_used}
    epochs = [EpochRecord(epoch=e.epoch, steps=e.steps, file=e.path.relative_to(out_dir).as_posix(), sha256=e.sha256,
                          identity=list(selection.score(e.epoch).scores),
                          images=[f"{VALIDATION_DIR}/e{e.epoch:03d}-{i}.png" for i in range(len(selection.prompts))])
              for e in artifact.epochs]
    report = artifact.key_report
    lora = LoraFile(file=artifact.path.name, sha256=artifact.sha256, served_name=artifact.served_name,
                    keys=report.keys, modules=report.modules, base_checkpoint=job.base.name,
                    base_checkpoint_sha256=job.base.sha256)
    files = [artifact.path, *(e.path for e in artifact.epochs), artifact.loss_file, artifact.plot_file,
             artifact.captions_file, artifact.selection_file, *(out_dir / i for e in epochs for i in e.images)]
    return LoraManifest(
        kind=kind, key=ref.key, backend=info.label, device=info.device, inputs_fingerprint=fingerprint,
        trainer=info.backend, trainer_label=info.label, trainer_version=info.version, seed=job.settings.seed,
        dataset=[item.image.name for item in job.dataset.items], dataset_sha256=artifact.metadata["ap_dataset_sha256"],
        settings={name: str(value) for name, value in used.items()},
        loss_kind=outcome.loss_kind, loss=[LossRecord(step=p.step, epoch=p.epoch, loss=p.loss) for p in outcome.loss],
        loss_plot=artifact.plot_file.name, identity_backend=selection.identity_backend, identity_rule=rule,
        validation=[ValidationRecord(prompt=p.prompt, negative_prompt=p.negative, seed=p.seed, width=p.width,
                                     height=p.height, variation=p.variation) for p in selection.prompts],
        epochs=epochs, chosen_epoch=artifact.chosen_epoch, selection_rule=selection.rule, lora=lora,
        files=[FileEntry.of(path, out_dir) for path in files],
        timings={name: round(seconds, 4) for name, seconds in (
            ("prepare", timings.prepare_s), ("trainer", timings.trainer_s), ("wait", timings.wait_s),
            ("collect", timings.collect_s), ("training", timings.total_s), ("validation", selection.total_s),
            ("validation_orchestration", selection.overhead_s))},
    )
