"""approved_dataset: generated candidates → review → automatic or human approval → the approved images
with caption files and a manifest, scored for identity, aesthetics and style."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
from pydantic import Field

from anime_pipeline.config.project import CharacterRef, character_spec
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import FileEntry, Manifest, Record
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.suite import Anchor, MetricSuite, StillIdentity, still_identity
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.batches import BatchRecord, run_batch
from anime_pipeline.production.candidates import Candidate, DatasetState, Decision, DecisionLog, dataset_state
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.character_reference import front_panel
from anime_pipeline.production.gates import Gate, GateSet, Measured
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.review.base import Reviewer
from anime_pipeline.production.step import (FileLink, MetadataValue, Preview, Step, StepEnv, StepOptions, Table,
                                            Upstream)
from anime_pipeline.storage import outputs, staged_dir, write_text

MAX_BATCHES_PER_RUN = 4


class DatasetOptions(StepOptions):
    batches: int | None = Field(None, ge=1, le=MAX_BATCHES_PER_RUN, description=(
        "generate exactly this many learner-steered batches, then judge the dataset (the replenishment "
        "sensor asks for 1); unset: batches until approved + awaiting review reach the target"))


class ApprovedImage(Record):
    id: str
    image: str
    caption: str
    seed: int
    prompt: str
    face_box: tuple[int, int, int, int] | None
    identity: float  # similarity to the anchor, judged by the dataset's identity rule
    aesthetic: float  # 0-10
    style_adherence: float
    decision: Decision | None


class BatchVerdict(Record):
    id: str
    decision: str
    score: float
    character_match: float
    solo: bool
    reasons: list[str]


class DatasetManifest(Manifest):
    target: int
    reviewer: str
    renderer: str
    approved: list[ApprovedImage]
    pending: list[str]
    rejected: list[str]
    duplicates: list[tuple[str, str, float]]
    near_duplicate_similarity: float
    identity_backend: str
    identity_rule: RuleRecord | None  # None: no approved image was measured
    aesthetic_backend: str
    style_backend: str
    batches_this_run: int
    new_verdicts: list[BatchVerdict]
    new_batches: list[int] = []  # their records: candidates/batches/bNNNN.json
    learner: list[str] = []  # per new batch, what the learner chose


def _enough(m: DatasetManifest, _q) -> Measured:
    hint = f"review with `anime-pipeline review list {m.key}`" if m.pending else ""
    return Measured(len(m.approved), "count", {"awaiting_review": len(m.pending), "hint": hint}, threshold=m.target)


def _identity(m: DatasetManifest, q) -> Measured:
    values = {a.id: a.identity for a in m.approved}
    if m.identity_rule is None:
        return Measured(1.0, m.identity_backend, {"below": "none (no approved image: enough_approved fails instead)"},
                        threshold=1.0)
    threshold = m.identity_rule.threshold(q)
    below = [k for k, v in values.items() if v < threshold]
    return Measured(min(values.values()), m.identity_backend,
                    {"below": ", ".join(below) or "none", "rule": m.identity_rule.source}, threshold=threshold)


def _duplicates(m: DatasetManifest, _q) -> Measured:
    return Measured(len(m.duplicates), f"SSIM ≥ {m.near_duplicate_similarity} on thumbnails",
                    {"pairs": [list(d) for d in m.duplicates]}, threshold=0)


def _aesthetic(m: DatasetManifest, _q) -> Measured:
    values = {a.id: a.aesthetic for a in m.approved}
    return Measured(min(values.values(), default=10.0), m.aesthetic_backend, {"per_image": values})


def _style(m: DatasetManifest, _q) -> Measured:
    values = {a.id: a.style_adherence for a in m.approved}
    return Measured(min(values.values(), default=1.0), m.style_backend, {"per_image": values})


GATES: GateSet[DatasetManifest] = GateSet((
    Gate("enough_approved", "Approved images ≥ the character's dataset_target.", _enough, "at_least"),
    Gate("identity", "Every approved image is the same character as the anchor (similarity ≥ the identity backend's "
         "threshold, quality.identity.<backend>).", _identity, "at_least", "identity"),
    Gate("no_near_duplicates", "No two approved images are near-duplicates.", _duplicates, "at_most"),
    Gate("aesthetic", "Phase 1 stills: every approved image's aesthetic score ≥ quality.aesthetic (0-10).",
         _aesthetic, "at_least", "aesthetic"),
    Gate("style_adherence", "Phase 1 stills: every approved image adheres to the show's style ≥ threshold.",
         _style, "at_least", "style_adherence"),
))


def score_approved(ref: CharacterRef, approved: Sequence[Candidate], anchor: Anchor, suite: MetricSuite,
                   decisions: dict[str, Decision]) -> tuple[list[ApprovedImage], dict[str, str], RuleRecord | None,
                                                           dict[str, np.ndarray]]:
    """Identity (`still_identity`: the show's identity backend on a real renderer's images, where the
    anchor has its vector), aesthetic and style of each approved image; returns the records, the
    backend per measure, the identity rule that judged them and the images."""
    images = {c.id: load_png(c.image_path) for c in approved}
    measured = {c.id: still_identity(images[c.id], c.record.face_box, anchor,
                                     show_identity_backend(suite, ref.config, c.record.renderer.backend))
                for c in approved}
    aesthetic = {c.id: suite.aesthetic([images[c.id]]) for c in approved}
    palette = [*ref.config.world.palette, *ref.character.appearance.key_colors.model_dump(exclude_none=True).values()]
    style = {c.id: weightfree.style_adherence(images[c.id], palette, ref.config.show.style.style_tags) for c in approved}
    records = [ApprovedImage(id=c.id, image=f"{c.id}.png", caption=c.record.caption, seed=c.record.seed,
                             prompt=c.record.prompt, face_box=c.record.face_box,
                             identity=round(measured[c.id].similarity, 4), aesthetic=round(aesthetic[c.id].value, 3),
                             style_adherence=round(style[c.id].value, 4), decision=decisions.get(c.id))
               for c in approved]
    backends = {"identity": _backend(m.backend for m in measured.values()),
                "aesthetic": _backend(s.backend for s in aesthetic.values()), "style": weightfree.STYLE_BACKEND}
    return records, backends, _one_rule(ref, measured.values()), images


def _backend(used: Iterable[str]) -> str:
    """The backend(s) that measured a dataset, or what to say when nothing was measured."""
    return ", ".join(sorted(set(used))) or "none (no approved images)"


def _one_rule(ref: CharacterRef, measured: Iterable[StillIdentity]) -> RuleRecord | None:
    """The rule every image was judged by (one threshold for the gate), None without images."""
    rules = {m.rule for m in measured}
    if len(rules) > 1:
        raise ValueError(f"{ref.key}: the approved images were judged by different identity rules "
                         f"({', '.join(sorted(r.backend for r in rules))}): their renderers differ; "
                         f"re-render the candidates on one renderer")
    return RuleRecord.of(rules.pop()) if rules else None


class ApprovedDataset(Step[CharacterRef, DatasetManifest]):
    """Candidates are generated in batches (the show's dataset.batch_size, 3 by default), each steered by the
    decisions on the earlier ones (production.learner), until approved + awaiting review reach the target —
    or exactly the batches a run asks for (the replenishment sensor asks for one). The reviewer decides
    automatically where the rules allow (never for non-human characters), a person decides the rest
    (`anime-pipeline review`); the approved images are scored and written with captions."""

    artifact = "approved_dataset"
    level = "character"
    manifest_type = DatasetManifest
    gates = GATES
    version = "2"  # issue 10: the calibrated gate measures, identity judged per backend
    device = "renderer"
    options_type = DatasetOptions

    def folder(self, ref: CharacterRef, paths: StoragePaths) -> Path:
        return paths.dataset(ref.key)

    def upstream(self, ref: CharacterRef) -> list[Upstream]:
        return [Upstream("character_reference", ref.key), Upstream("character_embedding", ref.key)]

    def spec(self, ref: CharacterRef) -> dict:
        return character_spec(ref)

    def produce(self, ref: CharacterRef, env: StepEnv, fingerprint: str | None) -> DatasetManifest:
        paths = env.paths
        anchor = load_anchor(paths.embedding(ref.key))
        log = DecisionLog(paths.decisions_log(ref.key))
        reviewer = env.reviewer(ref.config)
        wanted = cast(DatasetOptions, self.options(env)).batches
        candidates = paths.candidates(ref.key)
        state = dataset_state(candidates, log)
        references = {ref.character.slug: p for p in [front_panel(paths, ref.key)] if p}
        made: list[BatchRecord] = []
        with env.open_renderer(ref.config, references) as renderer:
            while self._another(ref, state, len(made), wanted):
                record = run_batch(ref, renderer, reviewer, anchor, candidates, log, ref.config.dataset.batch_size)
                made.append(record)
                state = dataset_state(candidates, log)
                env.log(f"{record.plan.summary()}: {record.automatic}; {len(state.approved)}/"
                        f"{ref.character.dataset_target} approved, {len(state.pending)} await review")
            renderer_name = renderer.backend
        return self.assemble(ref, env, state, log, anchor, reviewer, renderer_name, made)

    @staticmethod
    def _another(ref: CharacterRef, state: DatasetState, done: int, wanted: int | None) -> bool:
        if wanted is not None:
            return done < wanted
        return len(state.approved) + len(state.pending) < ref.character.dataset_target and done < MAX_BATCHES_PER_RUN

    def assemble(self, ref: CharacterRef, env: StepEnv, state: DatasetState, log: DecisionLog, anchor: Anchor,
                 reviewer: Reviewer, renderer: str, batches: list[BatchRecord]) -> DatasetManifest:
        """Score the approved images and swap the dataset folder in whole."""
        approved, backends, rule, images = score_approved(ref, state.approved, anchor, env.metrics, log.latest())
        ids = [a.id for a in approved]
        similarity = ref.config.quality.near_duplicate_similarity
        duplicates = [(ids[i], ids[j], round(s, 4))
                      for i, j, s in weightfree.near_duplicates([images[i] for i in ids], similarity)]
        manifest = DatasetManifest(
            kind=self.artifact, key=ref.key, backend=reviewer.name, device=reviewer.device,
            target=ref.character.dataset_target, reviewer=reviewer.name, renderer=renderer, approved=approved, pending=[c.id for c in state.pending],
            rejected=[c.id for c in state.rejected], duplicates=duplicates, near_duplicate_similarity=similarity,
            identity_backend=backends["identity"], identity_rule=rule, aesthetic_backend=backends["aesthetic"],
            style_backend=backends["style"], batches_this_run=len(batches),
            new_verdicts=[_verdict(c) for c in _made(state, batches)], new_batches=[b.batch for b in batches],
            learner=[b.plan.summary() for b in batches])

        with staged_dir(self.folder(ref, env.paths)) as folder:
            for record in approved:
                save_png(folder / record.image, images[record.id])
                write_text(folder / f"{record.id}.txt", record.caption + "\n")
            manifest.model_copy(update={"files": _files(folder)}).write(folder)
        return DatasetManifest.require(self.folder(ref, env.paths), f"approved_dataset {ref.key}")

    def metadata(self, manifest: DatasetManifest, folder: Path) -> dict[str, MetadataValue]:
        out: dict[str, MetadataValue] = {
            "approved": len(manifest.approved), "target": manifest.target, "awaiting_review": len(manifest.pending),
            "rejected": len(manifest.rejected), "new_batches": manifest.batches_this_run,
            "reviewer": manifest.reviewer, "renderer": manifest.renderer, "device": manifest.device,
            "folder": FileLink(folder)}
        if manifest.new_verdicts:
            out["new_verdicts"] = Table([v.model_dump() for v in manifest.new_verdicts])
        if manifest.learner:
            out["learner"] = Table(manifest.learner)
        if manifest.approved:
            out["preview"] = Preview(folder / manifest.approved[0].image, "first approved image")
        if manifest.pending:
            out["next_step"] = f"anime-pipeline review list {manifest.key}"
        return out


def _files(folder: Path) -> list[FileEntry]:
    return [FileEntry.of(p, folder) for p in outputs(folder, "*") if p.is_file()]


def _made(state: DatasetState, batches: list[BatchRecord]) -> list[Candidate]:
    ids = {cid for b in batches for cid in b.made}
    return sorted((c for c in [*state.approved, *state.pending, *state.rejected] if c.id in ids), key=lambda c: c.id)


def _verdict(candidate: Candidate) -> BatchVerdict:
    v = candidate.record.verdict
    return BatchVerdict(id=candidate.id, decision=v.decision, score=v.score, character_match=v.character_match,
                        solo=v.solo, reasons=v.reasons[:3])
