"""Training dataset: generate candidates, review them, keep decisions in an audit log, assemble the approved set.

Decisions are an append-only, fsync'd JSONL log: a human approval is never lost, survives
crashes and restarts, and the latest decision for a candidate wins (a human can overrule
the reviewer, and change their mind, with every step kept).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anime_pipeline.config.project import CharacterRef
from anime_pipeline.imaging import load_png, save_png
from anime_pipeline.manifest import base_manifest, write_manifest
from anime_pipeline.metrics import weightfree
from anime_pipeline.metrics.suite import Anchor, MetricSuite, image_identity
from anime_pipeline.prompts import caption, negative_prompt, still_prompt
from anime_pipeline.render.base import Renderer, StillRequest
from anime_pipeline.storage import append_jsonl, outputs, read_json, read_jsonl, write_json, write_text

DECISIONS = ("approve", "reject", "human_review")


@dataclass(frozen=True)
class Candidate:
    id: str
    image_path: Path
    record: dict[str, Any]  # prompt, seed, variation, face box, verdict

    @property
    def face_box(self) -> tuple[int, int, int, int] | None:
        box = self.record.get("face_box")
        return tuple(box) if box else None


class DecisionLog:
    """Approve / reject / human_review decisions per candidate, append-only."""

    def __init__(self, path: Path):
        self.path = path

    def record(self, candidate_id: str, decision: str, decider: str, reason: str = "") -> dict[str, Any]:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        entry = {"candidate": candidate_id, "decision": decision, "decider": decider, "reason": reason,
                 "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        append_jsonl(self.path, entry)
        return entry

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

    def latest(self) -> dict[str, dict[str, Any]]:
        return {entry["candidate"]: entry for entry in self.history()}


def list_candidates(candidates_dir: Path) -> list[Candidate]:
    out = []
    for record_path in outputs(candidates_dir, "*.json"):
        image_path = record_path.with_suffix(".png")
        if image_path.exists():
            out.append(Candidate(record_path.stem, image_path, read_json(record_path)))
    return out


def _variation(character, index: int) -> tuple[str, str, str, str]:
    v = character.variations
    outfit = v.outfits[index % len(v.outfits)]
    expression = v.expressions[(index // len(v.outfits)) % len(v.expressions)]
    pose = v.poses[(index // (len(v.outfits) * len(v.expressions))) % len(v.poses)]
    framing = "full_body" if index % 2 == 0 else "portrait"
    return outfit, expression, pose, framing


def generate_batch(ref: CharacterRef, renderer: Renderer, reviewer, anchor: Anchor, candidates_dir: Path,
                   log: DecisionLog, batch_size: int, seed: int) -> list[Candidate]:
    """Render `batch_size` new candidates, review each, and log the reviewer's decision."""
    cfg, character = ref.config, ref.character
    style = cfg.show.style
    existing = list_candidates(candidates_dir)
    others = [load_png(c.image_path) for c in existing]
    width, height = style.resolution
    made = []
    for offset in range(batch_size):
        index = len(existing) + offset
        outfit, expression, pose, framing = _variation(character, index)
        request = StillRequest(
            characters=(character,), prompt=still_prompt(style, character, framing, outfit, expression, pose),
            negative_prompt=negative_prompt(style, [character]), seed=seed + index, width=width // 2,
            height=height // 2, framing=framing, pose=pose, expression=expression, outfit=outfit,
            background=tuple(cfg.world.palette), steps=style.steps,
        )
        result = renderer.render_still(request)
        box = result.face_boxes.get(character.slug)
        verdict = reviewer.review(result.image, character, box, anchor.palette, others, cfg.quality.review,
                                  cfg.quality.near_duplicate_similarity)
        candidate_id = f"c{index:04d}"
        image_path = save_png(candidates_dir / f"{candidate_id}.png", result.image)
        record = {"id": candidate_id, "prompt": request.prompt, "negative_prompt": request.negative_prompt,
                  "seed": request.seed, "outfit": outfit, "expression": expression, "pose": pose, "framing": framing,
                  "resolution": [request.width, request.height], "face_box": list(box) if box else None,
                  "caption": caption(character, outfit, expression, pose), "verdict": verdict.model_dump(),
                  "renderer": {"backend": renderer.backend, "device": renderer.device, "params": result.params}}
        write_json(candidates_dir / f"{candidate_id}.json", record)
        log.record(candidate_id, verdict.decision, f"auto:{verdict.reviewer}", "; ".join(verdict.reasons))
        others.append(result.image)
        made.append(Candidate(candidate_id, image_path, record))
    return made


@dataclass(frozen=True)
class DatasetState:
    approved: list[Candidate]
    pending: list[Candidate]
    rejected: list[Candidate]


def dataset_state(candidates_dir: Path, log: DecisionLog) -> DatasetState:
    latest = log.latest()
    groups: dict[str, list[Candidate]] = {d: [] for d in DECISIONS}
    for candidate in list_candidates(candidates_dir):
        decision = latest.get(candidate.id, {}).get("decision", "human_review")
        groups.get(decision, groups["human_review"]).append(candidate)  # a hand-edited, unknown decision waits for review
    return DatasetState(groups["approve"], groups["human_review"], groups["reject"])


@dataclass(frozen=True)
class DatasetResult:
    state: DatasetState
    identities: dict[str, float]
    aesthetic: dict[str, float]  # 0-10
    style: dict[str, float]
    identity_backend: str
    aesthetic_backend: str
    style_backend: str
    duplicates: list[tuple[str, str, float]]
    manifest: dict[str, Any]


def assemble_dataset(ref: CharacterRef, state: DatasetState, log: DecisionLog, anchor: Anchor,
                     dataset_dir: Path, reviewer_name: str, batches_this_run: int,
                     suite: MetricSuite) -> DatasetResult:
    """Score the approved images (identity with ArcFace on a real renderer's images when a pack is
    installed, aesthetic with the suite's model or proxy), write them with caption files and a
    manifest; swap the folder in whole."""
    images = {c.id: load_png(c.image_path) for c in state.approved}
    faces = {c.id: suite.face_model(c.record["renderer"]["backend"]) for c in state.approved}  # by who drew it
    measured = {c.id: image_identity(images[c.id], c.face_box, anchor, faces[c.id]) for c in state.approved}
    identities = {cid: round(value, 4) for cid, (value, _) in measured.items()}
    aesthetic = {c.id: suite.aesthetic([images[c.id]]) for c in state.approved}
    palette = [*ref.config.world.palette, *ref.character.appearance.key_colors.model_dump(exclude_none=True).values()]
    style = {c.id: weightfree.style_adherence(images[c.id], palette, ref.config.show.style.style_tags)
             for c in state.approved}
    ids = [c.id for c in state.approved]
    duplicates = [(ids[i], ids[j], round(s, 4)) for i, j, s in
                  weightfree.near_duplicates([images[i] for i in ids], ref.config.quality.near_duplicate_similarity)]
    latest = log.latest()
    manifest = base_manifest(
        "approved_dataset", ref.key, reviewer_name, "cpu", target=ref.character.dataset_target,
        approved=[{"id": c.id, "image": f"{c.id}.png", "caption": c.record["caption"], "seed": c.record["seed"],
                   "prompt": c.record["prompt"], "face_box": c.record["face_box"], "identity": identities[c.id],
                   "aesthetic": round(aesthetic[c.id].value, 3), "style_adherence": round(style[c.id].value, 4),
                   "decision": latest.get(c.id)}
                  for c in state.approved],
        pending=[c.id for c in state.pending], rejected=[c.id for c in state.rejected],
        duplicates=duplicates, batches_this_run=batches_this_run,
    )
    _replace_dir(dataset_dir, lambda tmp: _write_dataset(tmp, state.approved, images, manifest))
    return DatasetResult(state, identities, {k: round(v.value, 3) for k, v in aesthetic.items()},
                         {k: round(v.value, 4) for k, v in style.items()},
                         _backend(backend for _, backend in measured.values()),
                         _backend(score.backend for score in aesthetic.values()),
                         weightfree.STYLE_BACKEND, duplicates, manifest)


def _backend(used: Iterable[str]) -> str:
    """The backend(s) that measured a dataset, or what to say when nothing was measured."""
    return ", ".join(sorted(set(used))) or "none (no approved images)"


def _write_dataset(folder: Path, approved: Sequence[Candidate], images: dict[str, np.ndarray], manifest: dict) -> None:
    for candidate in approved:
        save_png(folder / f"{candidate.id}.png", images[candidate.id])
        write_text(folder / f"{candidate.id}.txt", candidate.record["caption"] + "\n")
    write_manifest(folder, manifest)


def _replace_dir(target: Path, fill) -> None:
    """Build a folder beside `target`, then swap it in, so a reader sees the old set or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(staging)
        if target.exists():
            retired = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
