"""shot_clip: one clip per shot, keyframe to video (embedded: the previz renderer animates the shot's motion
preset), with progressive retries judged by the shot's own blocking gates (SPEC §3).

An attempt is retried exactly when one of its blocking gates fails — the retry loop and the
Dagster checks evaluate the same `GATES` on the same scores — with a new seed and more steps, up
to `quality.max_attempts`; the best attempt (most gates passed, ties by the worst margin) is kept
and every attempt is recorded.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from anime_pipeline.config.project import ShotRef, shot_spec
from anime_pipeline.config.schema import Character, Quality
from anime_pipeline.imaging import Box, load_png, save_png
from anime_pipeline.manifest import FileEntry, Manifest, Record, Timings
from anime_pipeline.media import MediaInfo, encode_clip
from anime_pipeline.metrics.scores import Score
from anime_pipeline.metrics.suite import Anchor, IdentityBackend, MetricSuite, ShotMeasures
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.production.character_lora import LoraManifest
from anime_pipeline.production.character_reference import front_panel
from anime_pipeline.production.gates import Gate, GateResult, GateSet, Measured, all_passed, ranking
from anime_pipeline.production.identity import RuleRecord, show_identity_backend
from anime_pipeline.production.step import FileLink, MetadataValue, Preview, Step, StepEnv, Table, Upstream
from anime_pipeline.prompts import negative_prompt, shot_prompt, with_trigger_words
from anime_pipeline.render.base import ClipRequest, Renderer
from anime_pipeline.storage import outputs, sha256_file, sha256_json
from anime_pipeline.training.availability import LoraRequest

FIRST_FRAME = "first_frame.png"
ATTEMPT_PREFIX = ".attempt-"  # each attempt renders into its own hidden folder of the shot's
REPLACED_FRAMES = ".frames-replaced"
STEPS_PER_RETRY = 8
SEED_STRIDE = 1_000_003
WORST_FRAMES = 3  # listed per measure in the gates' metadata: the frames to look at first


class Measure(Record):
    """One shot gate's reading of a clip: the value its gate compares (the worst moment for the
    temporal gates), the backend, the clip mean beside it, the frames to look at first (frame t
    for a pair (t, t + 1); frame 2k + 1 for smoothness) and what else explains the value."""

    value: float
    backend: str
    mean: float | None = None
    worst_frames: list[int]
    details: dict[str, Any] = {}


class IdentityMeasure(Record):
    """Every character's identity over the clip (its worst frame) and the rule that judges it."""

    per_character: dict[str, float]  # character slug → similarity in its worst frame
    backend: str
    rule: RuleRecord
    worst_frames: dict[str, list[int]]
    frames_without_face: dict[str, list[int]]
    note: str = ""  # why a lesser backend judged, when one did

    @property
    def value(self) -> float:
        """The least similar character's worst frame (1.0 for a shot without characters)."""
        return min(self.per_character.values(), default=1.0)


class ClipScores(Record):
    """Every shot gate's measure on one clip (`MetricSuite.shot_measures`)."""

    motion_floor: Measure
    temporal_stability: Measure
    temporal_flickering: Measure
    frame_timing: Measure
    motion_smoothness: Measure
    identity: IdentityMeasure


def _identity(s: ClipScores, q: Quality) -> Measured:
    m = s.identity
    details = {"per_character": m.per_character, "worst_frames": m.worst_frames, "rule": m.rule.source}
    if m.note:
        details["note"] = m.note
    return Measured(m.value, m.backend, details, threshold=m.rule.threshold(q))


def _measure(name: str):
    def measure(s: ClipScores, _q: Quality) -> Measured:
        m: Measure = getattr(s, name)
        mean = {} if m.mean is None else {"mean": m.mean}
        return Measured(m.value, m.backend, {"worst_frames": m.worst_frames, **mean, **m.details})
    return measure


GATES: GateSet[ClipScores] = GateSet((
    Gate("identity", "Every character in the shot is itself in every frame: similarity ≥ the identity backend's "
         "threshold (quality.identity.<backend>).", _identity, "at_least", "identity"),
    Gate("temporal_stability", "The worst frame pair's perceptual change after motion compensation ≤ the temporal "
         "LPIPS threshold: a jump cut, a flash or noise fails, a pan at any speed does not.",
         _measure("temporal_stability"), "at_most", "temporal_lpips"),
    Gate("motion_smoothness", "VBench motion smoothness of the worst interpolated frame ≥ threshold.",
         _measure("motion_smoothness"), "at_least", "motion_smoothness"),
    Gate("not_a_still", "The clip moves: the share of frame pairs with real motion (not noise, a loop, a fade or a "
         "flash) ≥ quality.min_moving_share.", _measure("motion_floor"), "at_least", "min_moving_share"),
    Gate("temporal_flickering", "VBench temporal flickering of the worst frame pair, after motion compensation, "
         "≥ threshold: one flash frame fails.", _measure("temporal_flickering"), "at_least", "temporal_flickering"),
    Gate("frame_timing", "No dropped or duplicated frame: inside steady motion, every pair's step is within "
         "quality.frame_timing of the steady step.", _measure("frame_timing"), "at_most", "frame_timing"),
))


class GateRecord(Record):
    name: str
    passed: bool
    value: float | int | str | bool
    threshold: float | int | str | bool
    margin: float

    @classmethod
    def of(cls, result: GateResult) -> GateRecord:
        return cls(name=result.name, passed=result.passed, value=result.value, threshold=result.threshold,
                   margin=result.margin)


class RequestRecord(Record):
    """Everything of a ClipRequest but the pixels: characters by slug, the first frame as a file."""

    characters: list[str]
    shot_type: str
    prompt: str
    motion_prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    fps: int
    n_frames: int
    background: tuple[str, ...]
    steps: int
    first_frame: str | None
    palette_overrides: dict[str, dict[str, str]]

    @classmethod
    def of(cls, request: ClipRequest) -> RequestRecord:
        values = {f.name: getattr(request, f.name) for f in fields(request) if f.name not in ("characters", "first_frame")}
        return cls(**values, characters=[c.slug for c in request.characters],
                   first_frame=FIRST_FRAME if request.first_frame is not None else None)

    def request(self, characters: list[Character], shot_dir: Path) -> ClipRequest:
        values = self.model_dump(exclude={"characters", "first_frame"})
        values["background"] = tuple(values["background"])
        first = load_png(shot_dir / self.first_frame) if self.first_frame else None
        return ClipRequest(characters=tuple(characters), first_frame=first, **values)


class Attempt(Record):
    attempt: int
    seed: int
    steps: int
    passed: bool  # every blocking gate passed
    scores: ClipScores
    gates: list[GateRecord]
    request: RequestRecord
    renderer_params: dict[str, Any]


class ShotManifest(Manifest):
    renderer_version: str
    prompt: str
    prompt_before_refinement: str
    director: str
    director_path: list[str]
    negative_additions: list[str]
    negative_prompt: str
    motion_prompt: str
    shot_type: str
    characters: list[str]
    checkpoint: str
    checkpoint_hash: str | None
    sampler: str
    scheduler: str
    cfg: float
    resolution: tuple[int, int]
    fps: int
    frames: int
    duration: float
    loras: list[dict[str, Any]]
    ip_adapter: dict[str, Any] | None
    continuity_from: str | None
    attempts: list[Attempt]
    chosen_attempt: int
    metric_fallbacks: dict[str, str]  # why a model-based metric was not used
    video_codec: str
    audio_codec: str | None

    @property
    def chosen(self) -> Attempt:
        return self.attempts[self.chosen_attempt - 1]

    @property
    def scores(self) -> ClipScores:
        return self.chosen.scores


def shot_seed(ref: ShotRef) -> int:
    """The shot's base seed: the YAML's, or a stable hash of its key."""
    return ref.shot.seed if ref.shot.seed is not None else zlib.crc32(ref.key.encode())


def _plain(value: Any) -> Any:
    """A measure's details as JSON keeps them: mapping keys as text, numbers as Python's."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _record(score: Score, frames_of=lambda i: i) -> Measure:
    details = dict(score.details)
    mean = details.pop("mean", None)
    return Measure(value=round(score.value, 4), backend=score.backend,
                   mean=None if mean is None else round(float(mean), 4),
                   worst_frames=[frames_of(i) for i in score.worst_frames(WORST_FRAMES)], details=_plain(details))


def clip_scores(measures: ShotMeasures) -> ClipScores:
    """The recorded form of every shot gate's measure."""
    identity = measures.identity
    per_character = identity.scores
    return ClipScores(
        motion_floor=_record(measures.motion_floor), temporal_stability=_record(measures.temporal_stability),
        temporal_flickering=_record(measures.temporal_flickering), frame_timing=_record(measures.frame_timing),
        motion_smoothness=_record(measures.motion_smoothness, lambda k: 2 * k + 1),
        identity=IdentityMeasure(
            per_character={slug: round(score.value, 4) for slug, score in per_character.items()},
            backend=", ".join(sorted({score.backend for score in per_character.values()}))
            or "n/a (no characters in the shot)",
            rule=RuleRecord.of(identity.rule),
            worst_frames={slug: score.worst_frames(WORST_FRAMES) for slug, score in per_character.items()},
            frames_without_face={slug: list(score.details.get("frames_without_face", []))
                                 for slug, score in per_character.items()},
            note=identity.note))


def score_clip(frames: list[np.ndarray], fps: float, face_boxes: list[dict[str, Box]], anchors: dict[str, Anchor],
               suite: MetricSuite, backend: IdentityBackend) -> ClipScores:
    """Every shot gate's measure on one clip: identity per character by `backend`, the motion
    floor, motion-compensated temporal stability and flicker, frame timing and VBench motion
    smoothness, each on its worst moment."""
    return clip_scores(suite.shot_measures(frames, fps, face_boxes, anchors, backend))


@dataclass
class Rendered:
    """One attempt as written into its folder: its scores, the renderer's params, the encode."""

    folder: Path
    scores: ClipScores
    params: dict[str, Any]
    video: MediaInfo


def render_attempt(renderer: Renderer, request: ClipRequest, anchors: dict[str, Anchor], suite: MetricSuite,
                   backend: IdentityBackend, folder: Path, timings: Timings) -> Rendered:
    """Render one attempt into `folder` (frames/NNNN.png and clip.mp4) while its gates measure it.
    Each frame is rendered, measured, written and piped to the encoder, then let go: memory holds
    one frame and the metrics' windows (`MetricSuite.shot_meter`), never the clip (README, "Memory")."""
    stream = renderer.stream_clip(request)
    meter = suite.shot_meter(request.fps, anchors, backend)
    frame_dir = folder / "frames"
    own_phases = ("render", "metrics", "write_frames")
    before = sum(timings.seconds.get(name, 0.0) for name in own_phases)
    started = time.perf_counter()

    def frames() -> Iterator[np.ndarray]:
        rendered = iter(stream.frames)
        for index in itertools.count():
            with timings.phase("render"):
                frame = next(rendered, None)
            if frame is None:
                return
            with timings.phase("metrics"):
                meter.add(frame.image, frame.face_boxes)
            with timings.phase("write_frames"):
                save_png(frame_dir / f"{index:04d}.png", frame.image)
            yield frame.image

    video = encode_clip(frames(), request.fps, folder / "clip.mp4", n_frames=stream.n_frames)
    # the encoder's own share of the streaming pass: what the phases inside it did not spend
    inside = sum(timings.seconds.get(name, 0.0) for name in own_phases) - before
    timings.seconds["encode"] = round(timings.seconds.get("encode", 0.0) + time.perf_counter() - started - inside, 4)
    with timings.phase("metrics"):
        scores = clip_scores(meter.result())
    return Rendered(folder, scores, stream.params, video)


def render_attempts(ref: ShotRef, renderer: Renderer, base: ClipRequest, anchors: dict[str, Anchor],
                    suite: MetricSuite, quality: Quality, timings: Timings, out_dir: Path,
                    log=lambda _: None) -> tuple[list[Attempt], int, Rendered]:
    """Render until every blocking gate passes or the attempts run out; return every attempt, the
    chosen one's number and its files (in a hidden folder of `out_dir`; the others are removed)."""
    backend = show_identity_backend(suite, ref.config, renderer.backend)
    attempts: list[Attempt] = []
    best: tuple[tuple[int, float], int, Rendered] | None = None
    for index in range(quality.max_attempts):
        seed = shot_seed(ref) + index * SEED_STRIDE
        request = replace(base, seed=seed, steps=base.steps + index * STEPS_PER_RETRY)
        rendered = render_attempt(renderer, request, anchors, suite, backend, out_dir / f"{ATTEMPT_PREFIX}{index + 1}",
                                  timings)
        results = GATES.evaluate(rendered.scores, quality)
        passed = all_passed(results)
        attempts.append(Attempt(attempt=index + 1, seed=seed, steps=request.steps, passed=passed,
                                scores=rendered.scores, gates=[GateRecord.of(r) for r in results],
                                request=RequestRecord.of(request), renderer_params=rendered.params))
        log(f"{ref.key} attempt {index + 1}: " + ", ".join(r.describe() for r in results if not r.passed)
            if not passed else f"{ref.key} attempt {index + 1}: every gate passes")
        if best is None or ranking(results) > best[0]:
            if best is not None:  # only the best attempt so far keeps its files
                shutil.rmtree(best[2].folder)
            best = (ranking(results), index + 1, rendered)
        else:
            shutil.rmtree(rendered.folder)
        if passed:
            break
    assert best is not None  # max_attempts ≥ 1 (schema)
    return attempts, best[1], best[2]


def keep_attempt(rendered: Rendered, out_dir: Path, first_frame: np.ndarray | None) -> None:
    """Move the chosen attempt's frames and clip into the shot folder, replacing the previous ones."""
    if first_frame is not None:  # kept with the shot, so a reproduction never depends on the previous shot
        save_png(out_dir / FIRST_FRAME, first_frame)
    frames, replaced = out_dir / "frames", out_dir / REPLACED_FRAMES
    shutil.rmtree(replaced, ignore_errors=True)
    if frames.exists():
        frames.rename(replaced)
    (rendered.folder / "frames").rename(frames)
    os.replace(rendered.folder / "clip.mp4", out_dir / "clip.mp4")
    shutil.rmtree(replaced, ignore_errors=True)
    shutil.rmtree(rendered.folder)


def clean_attempts(out_dir: Path) -> None:
    """Remove what a killed run left of its attempts (hidden folders: never outputs)."""
    for leftover in [*out_dir.glob(f"{ATTEMPT_PREFIX}*"), out_dir / REPLACED_FRAMES]:
        shutil.rmtree(leftover, ignore_errors=True)


def frame_paths(shot_dir: Path) -> list[Path]:
    return outputs(shot_dir / "frames", "*.png")


def last_frame(shot_dir: Path) -> Path | None:
    frames = frame_paths(shot_dir)
    return frames[-1] if frames else None


class ShotClip(Step[ShotRef, ShotManifest]):
    """Keyframe-to-video for one shot (embedded: the previz renderer animates the shot's motion preset),
    retried with a new seed and more steps while a blocking gate fails; every attempt is recorded."""

    artifact = "shot_clip"
    level = "shot"
    manifest_type = ShotManifest
    gates = GATES
    version = "2"  # issue 10: the calibrated gate measures, identity judged per backend
    device = "renderer"

    def folder(self, ref: ShotRef, paths: StoragePaths) -> Path:
        return paths.shot(ref.key)

    def upstream(self, ref: ShotRef) -> list[Upstream]:
        show = ref.config.show.slug
        deps = [Upstream(artifact, f"{show}/{slug}") for slug in ref.shot.characters
                for artifact in ("character_reference", "character_embedding", "character_lora")]
        if ref.shot.continuity and ref.previous_key:
            deps.append(Upstream("shot_clip", ref.previous_key))
        return deps

    def spec(self, ref: ShotRef) -> dict:
        return shot_spec(ref)

    def gate_subject(self, manifest: ShotManifest) -> ClipScores:
        return manifest.scores

    def _first_frame(self, ref: ShotRef, paths: StoragePaths) -> Path | None:
        if not ref.shot.continuity:
            return None
        first = last_frame(paths.shot(ref.previous_key)) if ref.previous_key else None
        if first is None:
            raise FileNotFoundError(f"shot {ref.key} continues from {ref.previous_key}, which has no frames yet: "
                                    f"materialize its shot_clip first")
        return first

    def _inputs(self, ref: ShotRef, env: StepEnv) -> tuple[dict[str, Anchor], dict[str, LoraManifest]]:
        """Each character's identity anchor and its character_lora (palette adapter or LoRA)."""
        keys = {c.slug: f"{ref.config.show.slug}/{c.slug}" for c in ref.characters()}
        anchors = {slug: load_anchor(env.paths.embedding(key)) for slug, key in keys.items()}
        adapters = {slug: LoraManifest.require(env.paths.adapter(key), f"character_lora {key}")
                    for slug, key in keys.items()}
        return anchors, adapters

    def fingerprint(self, ref: ShotRef, env: StepEnv) -> str:
        anchors, adapters = self._inputs(ref, env)
        first = self._first_frame(ref, env.paths)
        # a retrained LoRA is a new file: its sha makes exactly this character's shots render again
        adapted = {s: {"palette": m.palette, "lora": m.lora.sha256 if m.lora else None} for s, m in adapters.items()}
        return sha256_json({"spec": self.spec(ref), "version": self.version,
                            "anchors": {s: a.as_lists() for s, a in anchors.items()}, "adapters": adapted,
                            "first_frame": sha256_file(first) if first else None, "metrics": dict(env.metric_backends)})

    def _loras(self, ref: ShotRef, env: StepEnv, adapters: dict[str, LoraManifest]) -> list[LoraRequest]:
        show = ref.config.show.slug
        return [request for c in ref.characters()
                if (request := adapters[c.slug].request(env.paths.adapter(f"{show}/{c.slug}"), c)) is not None]

    def produce(self, ref: ShotRef, env: StepEnv, fingerprint: str | None) -> ShotManifest:
        cfg, shot = ref.config, ref.shot
        style, video = cfg.show.style, cfg.show.video
        characters = ref.characters()
        anchors, adapters = self._inputs(ref, env)
        first_path = self._first_frame(ref, env.paths)
        first = load_png(first_path) if first_path else None
        refinement = env.director(cfg).refine_prompt(
            shot_prompt(style, characters, shot.type, shot.prompt, cfg.world.art_direction),
            ref.scene.time_of_day, ref.scene.mood)
        env.log(f"{ref.key}: prompt via {' → '.join(refinement.path)}")
        loras = self._loras(ref, env, adapters)
        negative = ", ".join([negative_prompt(style, characters), *refinement.negative_additions])
        base = ClipRequest(
            characters=tuple(characters), shot_type=shot.type,
            prompt=with_trigger_words(refinement.refined, [lora.character for lora in loras]),
            motion_prompt=shot.motion_prompt, negative_prompt=negative, seed=shot_seed(ref), width=video.width,
            height=video.height, fps=video.fps, n_frames=max(3, round(shot.duration * video.fps)),
            background=tuple(cfg.world.palette), steps=style.steps, first_frame=first,
            palette_overrides={s: m.palette for s, m in adapters.items() if m.palette},
        )
        out_dir = self.folder(ref, env.paths)
        timings = Timings()
        references = {slug: p for slug in shot.characters
                      for p in [front_panel(env.paths, f"{cfg.show.slug}/{slug}")] if p}
        clean_attempts(out_dir)
        with env.open_renderer(cfg, references, loras) as renderer:
            attempts, chosen, kept = render_attempts(ref, renderer, base, anchors, env.metrics, cfg.quality, timings,
                                                     out_dir, env.log)
        keep_attempt(kept, out_dir, first)
        info, n_frames = kept.video, base.n_frames
        manifest = ShotManifest(
            kind=self.artifact, key=ref.key, backend=renderer.backend, device=renderer.device,
            inputs_fingerprint=fingerprint, renderer_version=renderer.version, prompt=base.prompt,
            prompt_before_refinement=refinement.original, director=refinement.source,
            director_path=list(refinement.path), negative_additions=list(refinement.negative_additions),
            negative_prompt=negative, motion_prompt=shot.motion_prompt, shot_type=shot.type,
            characters=list(shot.characters), checkpoint=style.checkpoint, checkpoint_hash=None,
            sampler=style.sampler, scheduler=style.scheduler, cfg=style.cfg, resolution=(video.width, video.height),
            fps=video.fps, frames=n_frames, duration=round(n_frames / video.fps, 4),
            loras=_adapters_used(adapters, loras),
            ip_adapter=None, continuity_from=ref.previous_key if first is not None else None, attempts=attempts,
            chosen_attempt=chosen, metric_fallbacks=dict(env.metrics.unavailable), video_codec=info.video_codec,
            audio_codec=info.audio_codec, files=[FileEntry.of(out_dir / "clip.mp4", out_dir)], timings=timings.seconds,
        )
        manifest.write(out_dir)
        return manifest

    def metadata(self, manifest: ShotManifest, folder: Path) -> dict[str, MetadataValue]:
        s = manifest.scores
        return {"frames": manifest.frames, "duration_s": manifest.duration, "attempts": len(manifest.attempts),
                "chosen_attempt": manifest.chosen_attempt, "identity": Table(s.identity.per_character),
                "identity_backend": s.identity.backend, "motion_floor": s.motion_floor.value,
                "temporal_stability": s.temporal_stability.value, "temporal_flickering": s.temporal_flickering.value,
                "frame_timing": s.frame_timing.value, "motion_smoothness": s.motion_smoothness.value,
                "backend": manifest.backend, "device": manifest.device,
                "director": manifest.director, "director_path": " → ".join(manifest.director_path),
                "metric_fallbacks": Table(manifest.metric_fallbacks),
                "prompt_before_refinement": manifest.prompt_before_refinement, "prompt": manifest.prompt,
                "seed": manifest.chosen.seed, "clip": FileLink(folder / "clip.mp4"),
                "preview": Preview(frame_paths(folder)[0], "first frame")}

    def after_gates(self, ref: ShotRef, manifest: ShotManifest, results: list[GateResult], env: StepEnv) -> None:
        """The director learns from the shot's scores and gate verdicts (never fails the asset)."""
        sent = env.director(ref.config).send_feedback({
            "shot": manifest.key, "metrics": {r.name: r.value for r in results}, "prompt": manifest.prompt,
            "gates": {r.name: r.passed for r in results}, "seed": manifest.chosen.seed})
        if sent:
            env.log(f"{manifest.key}: gate results sent to the director")


def _adapters_used(adapters: dict[str, LoraManifest], loras: list[LoraRequest]) -> list[dict[str, Any]]:
    """The manifest's record of each character's adapter: the LoRA loaded (file, hash, strengths), or
    the previz palette applied."""
    loaded = {lora.character: lora for lora in loras}
    used: list[dict[str, Any]] = []
    for slug, manifest in adapters.items():
        if manifest.lora is not None:
            lora = loaded[slug]
            used.append({"character": slug, "adapter": f"LoRA ({manifest.trainer})", "file": manifest.lora.served_name,
                         "sha256": manifest.lora.sha256, "epoch": manifest.chosen_epoch, "weight": lora.weight,
                         "clip_weight": lora.weight if lora.clip_weight is None else lora.clip_weight})
        elif manifest.palette:
            used.append({"character": slug, "adapter": "previz palette adapter", "palette": manifest.palette})
    return used
