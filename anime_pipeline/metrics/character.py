"""Character identity, whichever backend measures it, judged by one "same character" rule.

Every backend reports a *similarity* per frame (higher = more alike): the cosine to the anchor for
the palette signature and ArcFace, 1 − the learned difference for CCIP. Each backend has its own
calibrated threshold (`IdentityRule`; the defaults of the show file's `quality.identity`, where a
show may set its own), so the decision is backend-independent: the character is the same in a
frame when similarity ≥ rule.threshold, and in a clip when it is in every frame.

- palette (weight-free `weightfree.character_signature`): 0.70, SPEC §3's identity threshold; the
  adversarial suite measures the margins it leaves (README, BENCHMARKS.md);
- ArcFace: 0.36, deepface's verification threshold for ArcFace (euclidean_l2 1.13 on unit
  embeddings, i.e. cosine 1 − 1.13²/2 ≈ 0.36; its cosine-distance threshold 0.68 gives 0.32),
  in line with published same-person ArcFace cosines of about 0.3–0.5 and above: the roadmap's
  0.70 would reject most true matches;
- CCIP: 1 − the threshold in the model's own metrics.json (0.178 for ccip-caformer-24-randaug-
  pruned: same character when the difference is ≤ 0.178, imgutils' ccip_same).

Subject consistency across a scene (`tracked_consistency`) follows VBench's formula with the
similarity replaced by this decision, over the frames in which the character is found (x_0 …
x_{n−1}; a frame where the detector finds no one is no evidence either way: a wide shot, a blink,
a turn): per found frame i ≥ 1, ½·[same(x_{i−1}, x_i) + same(x_0, x_i)]; value = the mean. A
character whose colours (or whole design) swap halfway scores about 0.75; one that stays itself
scores 1. A character found in fewer than two frames is not measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from anime_pipeline.config.schema import IdentityBackendName, IdentityThresholds
from anime_pipeline.metrics.ccip import AnimeDetector, CcipModel
from anime_pipeline.metrics.scores import Score

Similarity = Callable[[np.ndarray], np.ndarray]  # stacked features (N × D) → N × N similarities
SUBJECT_BACKEND = "VBench subject consistency formula with the identity backend's same-character decision"


@dataclass(frozen=True)
class IdentityRule:
    """A backend's same-character decision: similarity ≥ threshold, and where the number comes from."""

    backend: IdentityBackendName
    threshold: float
    source: str

    def same(self, similarity: float) -> bool:
        return similarity >= self.threshold


PALETTE_RULE = IdentityRule("palette", IdentityThresholds().palette,
                            "SPEC §3 identity threshold; margins measured by the adversarial suite")
ARCFACE_RULE = IdentityRule("arcface", IdentityThresholds().arcface,
                            "deepface ArcFace euclidean_l2 threshold 1.13: cosine 1 - 1.13²/2")


def ccip_rule(model: CcipModel) -> IdentityRule:
    return IdentityRule("ccip", 1.0 - model.threshold, f"{model.name}/metrics.json: difference ≤ {model.threshold}")


def cosine_matrix(features: np.ndarray) -> np.ndarray:
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def ccip_similarity(model: CcipModel) -> Similarity:
    return lambda features: 1.0 - model.differences(features)


# --- CCIP on clips --------------------------------------------------------------------------------

def _heads(frames: Sequence[np.ndarray], detector: AnimeDetector) -> tuple[list[np.ndarray], list[int]]:
    """Every detected head crop of every frame, and the frame each came from."""
    crops, owners = [], []
    for index, frame in enumerate(frames):
        for detection in detector.detect(frame):
            x0, y0, x1, y1 = detector.head_box(detection, frame.shape)
            if x1 > x0 and y1 > y0:
                crops.append(frame[y0:y1, x0:x1])
                owners.append(index)
    return crops, owners


def ccip_tracks(frames: Sequence[np.ndarray], anchors: Mapping[str, np.ndarray], model: CcipModel,
                detector: AnimeDetector) -> dict[str, list[tuple[np.ndarray, float] | None]]:
    """Per character and frame, (CCIP feature, difference to its anchor) of the head assigned to
    it, or None: heads go to characters one to one per frame, minimising the summed difference."""
    # imported here, not with the module: scipy.optimize costs the code location 0.3 s
    from scipy.optimize import linear_sum_assignment

    slugs = list(anchors)
    crops, owners = _heads(frames, detector)
    features = model.features(crops)
    differences = model.differences_to(features, np.stack([anchors[slug] for slug in slugs]))
    owners_array = np.array(owners, dtype=int)
    tracks: dict[str, list[tuple[np.ndarray, float] | None]] = {slug: [None] * len(frames) for slug in slugs}
    for index in range(len(frames)):
        rows = np.flatnonzero(owners_array == index)
        if not rows.size:
            continue
        for row, column in zip(*linear_sum_assignment(differences[rows])):
            tracks[slugs[column]][index] = (features[rows[row]], float(differences[rows[row], column]))
    return tracks


def ccip_identity(frames: Sequence[np.ndarray], anchors: Mapping[str, np.ndarray], model: CcipModel,
                  detector: AnimeDetector) -> dict[str, Score]:
    """Per character: per_frame[i] = 1 − CCIP difference of its head in frame i to its anchor (0
    where none is found); value = the worst frame."""
    if not frames or not anchors:
        raise ValueError("need at least one frame and one anchor")
    backend = f"{model.backend} + {detector.backend}"
    scores = {}
    for slug, track in ccip_tracks(frames, anchors, model, detector).items():
        values = tuple(0.0 if found is None else 1.0 - found[1] for found in track)
        scores[slug] = Score("identity", min(values), backend, values,
                             {"frames_without_face": [i for i, found in enumerate(track) if found is None],
                              "threshold_difference": model.threshold})
    return scores


def ccip_reference(model: CcipModel, detector: AnimeDetector, image: np.ndarray) -> np.ndarray | None:
    """The CCIP feature of the largest detected head in a reference image, or None."""
    detections = detector.detect(image)
    if not detections:
        return None
    largest = max(detections, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    x0, y0, x1, y1 = detector.head_box(largest, image.shape)
    return model.features([image[y0:y1, x0:x1]])[0] if x1 > x0 and y1 > y0 else None


# --- subject consistency on identity ------------------------------------------------------------

def _track_consistency(track: Sequence[np.ndarray | None], similarity: Similarity,
                       rule: IdentityRule) -> tuple[float, ...] | None:
    found = [feature for feature in track if feature is not None]
    if len(found) < 2:
        return None
    same = similarity(np.stack(found)) >= rule.threshold
    return tuple(0.5 * (float(same[i - 1, i]) + float(same[0, i])) for i in range(1, len(found)))


def tracked_consistency(tracks: Mapping[str, Sequence[np.ndarray | None]], similarity: Similarity,
                        rule: IdentityRule, backend: str) -> Score | None:
    """Subject consistency of each character's identity track (see the module doc); value = the
    least consistent character; per_frame = that character's values per found frame after its
    first. None when no character is found in two frames."""
    per_character = {slug: values for slug, track in tracks.items()
                     if (values := _track_consistency(track, similarity, rule)) is not None}
    if not per_character:
        return None
    means = {slug: float(np.mean(values)) for slug, values in per_character.items()}
    worst = min(means, key=means.__getitem__)
    return Score("subject_consistency", means[worst], f"{SUBJECT_BACKEND} ({backend})", per_character[worst],
                 {"per_character": means, "rule": {"backend": rule.backend, "threshold": rule.threshold},
                  "frames_without_character": {slug: [i for i, f in enumerate(track) if f is None]
                                               for slug, track in tracks.items()},
                  "not_measured": sorted(set(tracks) - set(per_character))})
