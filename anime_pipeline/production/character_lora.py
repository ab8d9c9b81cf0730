"""character_lora: the character adapter trained on the approved dataset, validated by a render with it.

On the embedded trainer this is the previz adapter: a palette fitted to the approved images (not a
LoRA, never written as one); the validation render with the adapter applied must keep identity.
"""

from __future__ import annotations

from pathlib import Path

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.metrics.suite import still_identity
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.approved_dataset import DatasetManifest
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.character_reference import front_panel
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.step import MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.prompts import negative_prompt, still_prompt
from anime_pipeline.render.base import StillRequest
from anime_pipeline.storage import sha256_json
from anime_pipeline.training.previz_adapter import PrevizAdapter, fit_previz_adapter

ADAPTER_FILE = "previz_adapter.json"
TRAINER = "previz adapter (embedded palette fit, not a LoRA)"
TRAINING_SEED = 7


class Validation(Record):
    prompt: str
    seed: int
    identity: float  # similarity to the anchor
    identity_backend: str
    identity_rule: RuleRecord
    face_box: tuple[int, int, int, int] | None
    image: str


class AdapterManifest(Manifest):
    trainer: str
    trainer_version: str
    seed: int
    dataset: list[str]
    iterations: int
    palette: dict[str, str]
    loss_history: list[float]
    validation: Validation


def _loss_fell(m: AdapterManifest, _q) -> Measured:
    return Measured(m.loss_history[-1], m.trainer, {"loss_start": m.loss_history[0]}, threshold=m.loss_history[0])


def _keeps_identity(m: AdapterManifest, q) -> Measured:
    rule = m.validation.identity_rule
    return Measured(m.validation.identity, m.validation.identity_backend, {"rule": rule.source},
                    threshold=rule.threshold(q))


GATES: GateSet[AdapterManifest] = GateSet((
    Gate("loss_fell", "Training loss at the end is at most the loss at the start.", _loss_fell, "at_most"),
    Gate("keeps_identity", "A render with the adapter is the same character as the anchor (similarity ≥ the "
         "identity backend's threshold, quality.identity.<backend>).", _keeps_identity, "at_least", "identity"),
))


def load_adapter_palette(adapter_dir: Path) -> dict[str, str] | None:
    path = adapter_dir / ADAPTER_FILE
    return PrevizAdapter.load(path).palette if path.exists() else None


class CharacterLora(Step[CharacterRef, AdapterManifest]):
    """Fits the character adapter to the approved dataset, renders a validation portrait with it and
    measures its identity against the anchor."""

    artifact = "character_lora"
    level = "character"
    manifest_type = AdapterManifest
    gates = GATES
    version = "2"  # issue 10: the calibrated gate measures, identity judged per backend
    device = "renderer"

    def folder(self, ref: CharacterRef, paths: StoragePaths) -> Path:
        return paths.adapter(ref.key)

    def upstream(self, ref: CharacterRef) -> list[Upstream]:
        return [Upstream("approved_dataset", ref.key), Upstream("character_embedding", ref.key)]

    def spec(self, ref: CharacterRef) -> dict:
        return character_spec(ref)

    def fingerprint(self, ref: CharacterRef, env: StepEnv) -> str:
        dataset = DatasetManifest.require(env.paths.dataset(ref.key), f"approved_dataset {ref.key}")
        anchor = load_anchor(env.paths.embedding(ref.key))
        return sha256_json({"spec": self.spec(ref), "version": self.version,
                            "dataset": [f.sha256 for f in dataset.files], "anchor": anchor.as_lists(),
                            "metrics": dict(env.metric_backends)})

    def produce(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> AdapterManifest:
        dataset_dir, out_dir = env.paths.dataset(ref.key), self.folder(ref, env.paths)
        dataset = DatasetManifest.require(dataset_dir, f"approved_dataset {ref.key}")
        if not dataset.approved:
            raise ValueError(f"{ref.key}: the approved dataset is empty; approve images first")
        images = [load_png(dataset_dir / a.image) for a in dataset.approved]
        adapter = fit_previz_adapter(images, [a.face_box for a in dataset.approved], ref.character, seed=TRAINING_SEED)
        adapter.save(out_dir / ADAPTER_FILE)
        env.log(f"{TRAINER}: loss {adapter.loss_history[0]:.2f} → {adapter.loss_history[-1]:.2f} "
                f"over {len(adapter.loss_history)} iterations")
        style = ref.config.show.style
        width, height = style.resolution
        request = StillRequest(
            characters=(ref.character,), prompt=still_prompt(style, ref.character, "portrait"),
            negative_prompt=negative_prompt(style, [ref.character]), seed=TRAINING_SEED, width=width // 2,
            height=height // 2, framing="portrait", background=tuple(ref.config.world.palette), steps=style.steps,
            palette_overrides={ref.character.slug: adapter.palette},
        )
        references = {ref.character.slug: p for p in [front_panel(env.paths, ref.key)] if p}
        with env.open_renderer(ref.config, references) as renderer:
            result = renderer.render_still(request)
            backend = show_identity_backend(env.metrics, ref.config, renderer.backend)
        save_png(out_dir / "validation.png", result.image)
        box = result.face_boxes.get(ref.character.slug)
        judged = still_identity(result.image, box, load_anchor(env.paths.embedding(ref.key)), backend)
        manifest = AdapterManifest(
            kind=self.artifact, key=ref.key, backend=TRAINER, device="cpu", inputs_fingerprint=fingerprint,
            trainer=TRAINER, trainer_version="previz-adapter-1", seed=TRAINING_SEED,
            dataset=[a.id for a in dataset.approved], iterations=adapter.iterations, palette=adapter.palette,
            loss_history=adapter.loss_history,
            validation=Validation(prompt=request.prompt, seed=TRAINING_SEED, identity=round(judged.similarity, 4),
                                  identity_backend=judged.backend, identity_rule=RuleRecord.of(judged.rule),
                                  face_box=box, image="validation.png"),
            files=[FileEntry.of(out_dir / ADAPTER_FILE, out_dir), FileEntry.of(out_dir / "validation.png", out_dir)],
        )
        manifest.write(out_dir)
        return manifest

    def outputs(self, manifest: AdapterManifest, folder: Path) -> list[Path]:
        return [folder / ADAPTER_FILE]

    def metadata(self, manifest: AdapterManifest, folder: Path) -> dict[str, MetadataValue]:
        return {"trainer": manifest.trainer, "device": manifest.device, "images": len(manifest.dataset),
                "loss_start": manifest.loss_history[0], "loss_end": manifest.loss_history[-1],
                "iterations": len(manifest.loss_history), "validation_identity": manifest.validation.identity,
                "palette": Table(manifest.palette), "preview": Preview(folder / manifest.validation.image,
                                                                       "validation render")}
