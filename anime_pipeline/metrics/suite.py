"""The metrics the gates run: each model-based one where its weights are installed, else its
weight-free fallback, with the backend that computed it in every Score.

Models are loaded on first use and kept for the process (one suite per `ModelStore`); a model
that cannot load (missing, corrupt) is remembered as unavailable, with the reason, and not
retried in the same process. Identity is the one choice that also depends on the frames and the
show (`identity_backend`): CCIP with an anime face/head detector on rendered frames of drawn
styles, ArcFace on rendered frames of photoreal ones, and the weight-free head palette signature
on previz drawings (detectors trained on illustrations and photos do not see flat previz faces;
the previz renderer knows its face boxes exactly) and wherever the models are missing.

`shot_measures` computes every shot gate's measure in one pass (`ShotMeasures`); each Score's
`value` is what its gate compares with its threshold (the worst moment for the temporal ones).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np

from anime_pipeline.drawings import find_face, find_faces, is_previz
from anime_pipeline.imaging import Box
from anime_pipeline.metrics import ccip, identity, motion, perceptual, temporal, vbench, weightfree
from anime_pipeline.metrics.character import (ARCFACE_RULE, PALETTE_RULE, IdentityRule, ccip_identity,
                                              ccip_reference, ccip_rule, ccip_similarity, ccip_tracks,
                                              cosine_matrix, tracked_consistency)
from anime_pipeline.metrics.models import ModelStore, ModelUnavailable
from anime_pipeline.metrics.scores import Score

LOADERS: dict[str, Callable[[ModelStore], Any]] = {
    "identity": identity.load_face_model,
    "temporal_lpips": perceptual.load_lpips,
    "motion_smoothness": vbench.load_amt,
    "subject_consistency": vbench.load_dino,
    "aesthetic": vbench.load_aesthetic,
    "ccip": lambda store: ccip.load_ccip(store.ccip_dir, store.device),
    "anime_detector": lambda store: ccip.load_detector(store.anime_detector_file, store.device),
}


@dataclass(frozen=True)
class PaletteIdentity:
    """The weight-free identity backend: `weightfree.character_signature` against the anchor."""

    rule: IdentityRule = PALETTE_RULE
    backend: str = weightfree.CHARACTER_BACKEND


@dataclass(frozen=True)
class ArcFaceIdentity:
    faces: identity.FaceModel
    rule: IdentityRule = ARCFACE_RULE

    @property
    def backend(self) -> str:
        return self.faces.backend


@dataclass(frozen=True)
class CcipIdentity:
    model: ccip.CcipModel
    detector: ccip.AnimeDetector

    @property
    def rule(self) -> IdentityRule:
        return ccip_rule(self.model)

    @property
    def backend(self) -> str:
        return f"{self.model.backend} + {self.detector.backend}"


IdentityBackend = PaletteIdentity | ArcFaceIdentity | CcipIdentity


@dataclass
class MetricSuite:
    """The gates' metrics over one ModelStore. `preloaded` hands in models by metric name (as
    LOADERS would return them), so tests run the model-based paths with tiny networks."""

    store: ModelStore
    preloaded: Mapping[str, Any] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)  # metric → why its model is not used
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    def model(self, metric: str) -> Any | None:
        """The metric's model, loaded once; None (reason in `unavailable`) when it cannot load."""
        if metric in self.preloaded:
            return self.preloaded[metric]
        if metric not in self._models and metric not in self.unavailable:
            try:
                self._models[metric] = LOADERS[metric](self.store)
            except ModelUnavailable as error:
                self.unavailable[metric] = str(error)
            except Exception as error:  # a corrupt or incompatible weight file: fall back, say why
                self.unavailable[metric] = f"{metric} model failed to load: {type(error).__name__}: {error}"
        return self._models.get(metric)

    def identity_backend(self, renderer_backend: str, photoreal: bool = False) -> IdentityBackend:
        """Who judges identity on a renderer's images (see the module doc): previz drawings always
        the palette signature; rendered frames CCIP (drawn styles) or ArcFace (`photoreal`) where
        installed, else the palette signature (the reason is in `unavailable`)."""
        if is_previz(renderer_backend):
            return PaletteIdentity()
        if photoreal:
            faces = self.model("identity")
            return ArcFaceIdentity(faces) if faces is not None else PaletteIdentity()
        model, detector = self.model("ccip"), self.model("anime_detector")
        return CcipIdentity(model, detector) if model is not None and detector is not None else PaletteIdentity()

    def motion_smoothness(self, frames: Iterable[np.ndarray]) -> Score:
        """VBench motion smoothness with AMT-S, else with the block-matching flow interpolator on
        frames area-resized to the flow's working size (`motion.working_rgb`; D is a mean
        absolute difference, so the scale barely moves it, and a 512² clip costs a quarter)."""
        meter = self._smoothness_meter()
        for frame in frames:
            meter.add(frame)
        return meter.result()

    def _smoothness_meter(self) -> _Smoothness:
        amt = self.model("motion_smoothness")
        return _Smoothness(weightfree.SmoothnessMeter(amt), False) if amt is not None else \
            _Smoothness(weightfree.SmoothnessMeter(weightfree.BLOCK_FLOW), True)

    def subject_consistency(self, frames: Sequence[np.ndarray]) -> Score:
        """VBench subject consistency on DINO ViT-B/16 features, else on palette signatures."""
        extract = self.model("subject_consistency")
        if extract is None:
            return vbench.weightfree_subject_consistency(frames)
        return vbench.subject_consistency(frames, extract, vbench.DINO_BACKEND)

    def aesthetic(self, images: Sequence[np.ndarray]) -> Score:
        """LAION aesthetic score (0–10), else the weight-free proxy on the same scale."""
        loaded = self.model("aesthetic")
        return vbench.aesthetic_quality(images, *loaded) if loaded else weightfree.aesthetic_proxy(images)

    def temporal_stability(self, frames: Sequence[np.ndarray], clip: temporal.ClipMotion) -> Score:
        """Worst-pair temporal LPIPS after motion compensation where AlexNet is installed, else the
        weight-free 1 − SSIM after the same compensation: one rule, one threshold."""
        model = self.model("temporal_lpips")
        return temporal.compensated_lpips(frames, clip, model) if model else temporal.temporal_stability(clip)

    def shot_measures(self, frames: Iterable[np.ndarray], fps: float, face_boxes: Iterable[Mapping[str, Box]],
                      anchors: Mapping[str, Anchor], backend: IdentityBackend) -> ShotMeasures:
        """Every shot gate's measure on one clip, the flow computed once; `frames` and their
        `face_boxes` may stream (`shot_meter`)."""
        meter = self.shot_meter(fps, anchors, backend)
        for frame, boxes in zip(frames, face_boxes, strict=True):
            meter.add(frame, boxes)
        return meter.result()

    def shot_meter(self, fps: float, anchors: Mapping[str, Anchor], backend: IdentityBackend) -> ShotMeter:
        """`shot_measures` one frame at a time, for clips that stream from the renderer or a file."""
        lpips = self.model("temporal_lpips")
        return ShotMeter(temporal.MotionMeter(fps), temporal.LpipsMeter(lpips) if lpips else None,
                         self._smoothness_meter(), IdentityMeter(anchors, backend))

    def tracked_subject_consistency(self, frames: Iterable[np.ndarray], characters: Mapping[str, Appearance],
                                    backend: IdentityBackend) -> Score:
        """Subject consistency on the identity of each character across `frames` (a scene; see
        `character.tracked_consistency`), found in every frame by the identity backend's detector,
        or by its key skin and eye colours on drawings (`drawings.find_faces`). Without
        characters, or when none is found in two frames, VBench's formula on whole frames
        (`subject_consistency`). `frames` may stream: they are judged IDENTITY_WINDOW at a time
        (the detectors and feature extractors take batches), and only each frame's features are
        kept, so a scene never has to fit in memory."""
        track, similarity, rule, name = self._tracker(characters, backend)
        extract = self.model("subject_consistency")
        tracks: dict[str, list[np.ndarray | None]] = {slug: [] for slug in characters}
        whole: list[np.ndarray] = []
        for window in _windows(frames, IDENTITY_WINDOW):
            for slug, found in track(window).items():
                tracks[slug] += found
            whole.append((extract or weightfree.palette_features)(window))
        tracked = tracked_consistency(tracks, similarity, rule, name) if characters else None
        if tracked is not None:
            return tracked
        return vbench.feature_consistency(np.concatenate(whole) if whole else np.zeros((0, 1)),
                                          vbench.DINO_BACKEND if extract else weightfree.PALETTE_CONSISTENCY_BACKEND)

    def _tracker(self, characters: Mapping[str, Appearance], backend: IdentityBackend
                 ) -> tuple[Callable[[list[np.ndarray]], dict[str, list[np.ndarray | None]]], Any, IdentityRule, str]:
        """How the identity backend follows the characters through a window of frames: per
        character, its feature in each frame (None where it is not found), the similarity and rule
        that compare features, and the backend's name."""
        if isinstance(backend, CcipIdentity) and all(a.anchor.ccip is not None for a in characters.values()):
            ccips = {slug: a.anchor.ccip for slug, a in characters.items()}

            def ccip_window(frames: list[np.ndarray]) -> dict[str, list[np.ndarray | None]]:
                found = ccip_tracks(frames, ccips, backend.model, backend.detector)
                return {slug: [None if f is None else f[0] for f in track] for slug, track in found.items()}
            return ccip_window, ccip_similarity(backend.model), backend.rule, backend.backend
        if isinstance(backend, ArcFaceIdentity) and all(a.anchor.arcface is not None for a in characters.values()):
            anchors = {slug: a.anchor.arcface for slug, a in characters.items()}

            def arcface_window(frames: list[np.ndarray]) -> dict[str, list[np.ndarray | None]]:
                per_frame = [identity.assign_faces(identity.detect_faces(backend.faces, f), anchors) for f in frames]
                return {slug: [None if faces[slug] is None else faces[slug].embedding for faces in per_frame]
                        for slug in anchors}
            return arcface_window, cosine_matrix, backend.rule, backend.backend

        def drawn_window(frames: list[np.ndarray]) -> dict[str, list[np.ndarray | None]]:
            return {slug: [_drawn_signature(frame, appearance) for frame in frames]
                    for slug, appearance in characters.items()}
        return drawn_window, cosine_matrix, PALETTE_RULE, weightfree.CHARACTER_BACKEND


def _windows(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """Consecutive lists of `size` frames (the last one shorter)."""
    stream = iter(frames)
    while window := list(itertools.islice(stream, size)):
        yield window


@cache
def suite_for(store: ModelStore) -> MetricSuite:
    """The process-wide suite of a store, so each model loads once per process."""
    return MetricSuite(store)


@dataclass(frozen=True)
class Anchor:
    """A character's identity anchors: the palette signature's always, the head palette
    signature's (`weightfree.character_signature`, the palette backend's) where computed,
    ArcFace's where the reference renders were measured with a face pack, CCIP's (`ccip.merge`
    of the references' head features) where CCIP is installed."""

    palette: np.ndarray
    arcface: np.ndarray | None = None
    signature: np.ndarray | None = None
    ccip: np.ndarray | None = None

    def as_lists(self) -> dict[str, list[float] | None]:
        def listed(vector: np.ndarray | None) -> list[float] | None:
            return None if vector is None else vector.tolist()

        return {"palette": self.palette.tolist(), "arcface": listed(self.arcface), "signature": listed(self.signature),
                "ccip": listed(self.ccip)}


@dataclass(frozen=True)
class Appearance:
    """How to find a character in frames that come without face boxes (an assembled scene): its
    anchors, and its key skin and eye colours for drawings."""

    anchor: Anchor
    skin: str
    eyes: str


FIND_SHORT_SIDE = 128  # px: drawn faces are looked for on frames subsampled to about this short side


def find_drawn_face(frame: np.ndarray, skin: str, eyes: str) -> Box | None:
    """The largest drawn face of a character with these key colours, found on the frame
    subsampled to a short side of about FIND_SHORT_SIDE (flat fills keep their exact colours; a
    face too small to be found there is too small to judge), in the frame's pixels; or None."""
    step = max(1, min(frame.shape[:2]) // FIND_SHORT_SIDE)
    face = find_face(frame[::step, ::step], skin, eyes)
    if face is None:
        return None
    x0, y0, x1, y1 = face
    return x0 * step, y0 * step, x1 * step, y1 * step


SMALL_FACE_SHARE = 0.0005  # of the frame: a wide shot's face (~20 px in 640 × 360) is still looked for


def drawn_face_boxes(frames: Sequence[np.ndarray], characters: Mapping[str, Appearance]) -> list[dict[str, Box]]:
    """Per frame, each character's largest drawn face where one is found, at full resolution and
    down to SMALL_FACE_SHARE of the frame (`drawings.find_faces`): the face boxes of a clip that
    came without them (a file scored from outside the pipeline)."""
    found = []
    for frame in frames:
        boxes = {}
        for slug, look in characters.items():
            faces = find_faces(frame, look.skin, look.eyes, min_share=SMALL_FACE_SHARE)
            if faces:
                boxes[slug] = faces[0]
        found.append(boxes)
    return found


def _drawn_signature(frame: np.ndarray, appearance: Appearance) -> np.ndarray | None:
    """The head signature of the character's largest drawn face (`find_drawn_face`), or None."""
    face = find_drawn_face(frame, appearance.skin, appearance.eyes)
    return None if face is None else weightfree.character_signature(frame, face)


def largest_face(image: np.ndarray, backend: IdentityBackend, skin: str, eyes: str) -> Box | None:
    """The largest face in a still, found the way `backend` finds faces in frames: its anime
    face/head detector (CCIP), ArcFace's face detector, else the drawn-face finder that knows the
    character's key colours (`drawings.find_face`, previz drawings)."""
    if isinstance(backend, CcipIdentity):
        found = backend.detector.detect(image)
        return max((d.box for d in found), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), default=None)
    if isinstance(backend, ArcFaceIdentity):
        box = identity.largest_face_box(backend.faces, image)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
    return find_face(image, skin, eyes)


def face_finder(backend: IdentityBackend) -> str | None:
    """The detector `largest_face` uses with `backend`; None for the drawn-face colour finder."""
    if isinstance(backend, CcipIdentity):
        return backend.detector.backend
    return backend.faces.backend if isinstance(backend, ArcFaceIdentity) else None


@dataclass(frozen=True)
class IdentityResult:
    """Per character its identity Score (per-frame similarity; value = the worst frame) and the
    backend's same-character rule: the character is itself when value ≥ rule.threshold."""

    scores: Mapping[str, Score]
    rule: IdentityRule
    note: str = ""  # why a lesser backend judged, when one did

    def same_character(self, slug: str) -> bool:
        return self.rule.same(self.scores[slug].value)

    @property
    def value(self) -> float:
        """The least similar character's worst frame (1.0 for a shot without characters)."""
        return min((score.value for score in self.scores.values()), default=1.0)

    @property
    def passed(self) -> bool:
        return self.rule.same(self.value)


@dataclass(frozen=True)
class ShotMeasures:
    """Every shot gate's measure on one clip; each Score's value is what its gate compares."""

    motion_floor: Score  # ≥ temporal.MIN_MOVING_SHARE
    temporal_stability: Score  # ≤ quality.temporal_lpips
    temporal_flickering: Score  # ≥ quality.temporal_flickering
    frame_timing: Score  # ≤ temporal.FRAME_TIMING_TOLERANCE
    motion_smoothness: Score  # ≥ quality.motion_smoothness, on the worst interpolated frame
    identity: IdentityResult  # ≥ identity.rule.threshold


IDENTITY_WINDOW = 16  # frames a model-based identity backend judges together (one batch of head crops)


class IdentityMeter:
    """`character_identity` one frame at a time. The palette signatures judge each frame as it
    comes; CCIP and ArcFace judge windows of IDENTITY_WINDOW frames (their detector and features
    run on a batch), so at most that many frames are held."""

    def __init__(self, anchors: Mapping[str, Anchor], backend: IdentityBackend) -> None:
        self.anchors = anchors
        self.rule, self.note = backend.rule, ""
        self._judge: Callable[[list[np.ndarray]], dict[str, Score]] | None = None
        self._window: list[np.ndarray] = []
        self._windows: list[dict[str, Score]] = []
        self._palette: dict[str, weightfree.IdentityMeter] = {}
        if not anchors:
            return
        if isinstance(backend, CcipIdentity) and all(a.ccip is not None for a in anchors.values()):
            ccips = {s: a.ccip for s, a in anchors.items()}
            self._judge = lambda frames: ccip_identity(frames, ccips, backend.model, backend.detector)
        elif isinstance(backend, ArcFaceIdentity) and all(a.arcface is not None for a in anchors.values()):
            arcfaces = {s: a.arcface for s, a in anchors.items()}
            self._judge = lambda frames: identity.arcface_identity(frames, arcfaces, backend.faces)
        else:
            self.rule = PALETTE_RULE
            if not isinstance(backend, PaletteIdentity):
                self.note = f"no {backend.rule.backend} anchor for every character"
            self._palette = {slug: weightfree.IdentityMeter(anchor.signature, weightfree.character_signature,
                                                            weightfree.CHARACTER_BACKEND)
                             if anchor.signature is not None else weightfree.IdentityMeter(anchor.palette)
                             for slug, anchor in anchors.items()}

    def add(self, frame: np.ndarray, boxes: Mapping[str, Box]) -> None:
        for slug, meter in self._palette.items():
            meter.add(frame, boxes.get(slug))
        if self._judge is not None:
            self._window.append(frame)
            if len(self._window) == IDENTITY_WINDOW:
                self._flush()

    def _flush(self) -> None:
        if self._window and self._judge is not None:
            self._windows.append(self._judge(self._window))
            self._window = []

    def result(self) -> IdentityResult:
        if not self.anchors:
            return IdentityResult({}, self.rule)
        if self._judge is None:
            return IdentityResult({slug: meter.result() for slug, meter in self._palette.items()}, self.rule, self.note)
        self._flush()
        if not self._windows:
            raise ValueError("need at least one frame and one anchor")
        return IdentityResult({slug: _joined([window[slug] for window in self._windows]) for slug in self.anchors},
                              self.rule, self.note)


def _joined(windows: Sequence[Score]) -> Score:
    """One character's identity Score over consecutive windows: their frames in order, value = the
    worst frame, frame numbers counted from the clip's start."""
    values: tuple[float, ...] = ()
    missing: list[int] = []
    for window in windows:
        missing += [len(values) + i for i in window.details.get("frames_without_face", [])]
        values += window.per_frame
    first = windows[0]
    return replace(first, value=min(values), per_frame=values, details={**first.details, "frames_without_face": missing})


def character_identity(frames: Iterable[np.ndarray], face_boxes: Iterable[Mapping[str, Box]],
                       anchors: Mapping[str, Anchor], backend: IdentityBackend) -> IdentityResult:
    """Per character, its identity over the clip by `backend`, when every character has that
    backend's anchor; else by the palette signature inside the renderer's face boxes
    (`IdentityMeter` computes it as frames stream)."""
    meter = IdentityMeter(anchors, backend)
    for frame, boxes in zip(frames, face_boxes, strict=True):
        meter.add(frame, boxes)
    return meter.result()


class _Smoothness:
    """The smoothness meter, reading frames at the flow's working size for the block-matching
    interpolator (the size goes into the Score's details)."""

    def __init__(self, meter: weightfree.SmoothnessMeter, working: bool) -> None:
        self.meter, self.working = meter, working
        self._size: list[int] | None = None

    def add(self, frame: np.ndarray) -> None:
        if self.working:
            frame = motion.working_rgb(frame)
            self._size = self._size or list(frame.shape[:2])
        self.meter.add(frame)

    def result(self) -> Score:
        score = self.meter.result()
        return replace(score, details={**score.details, "size": self._size}) if self.working else score


@dataclass
class ShotMeter:
    """Every shot gate's measure (`MetricSuite.shot_measures`) over frames that stream: each frame
    goes to every measure once and is then let go. What it holds, whatever the clip's length: two
    frames for temporal LPIPS (and its batch of compensated pairs), the smoothness window (E_k,
    O_k) at the flow's working size, the identity window of a model-based backend; per pair and
    frame, the small summaries of `temporal.MotionMeter`."""

    motion: temporal.MotionMeter
    lpips: temporal.LpipsMeter | None
    smoothness: _Smoothness
    identity: IdentityMeter

    def add(self, frame: np.ndarray, boxes: Mapping[str, Box]) -> None:
        pair = self.motion.add(frame)
        if self.lpips is not None:
            self.lpips.add(frame, None if pair is None else pair.flow)
        self.smoothness.add(frame)
        self.identity.add(frame, boxes)

    def result(self) -> ShotMeasures:
        clip = self.motion.result()
        stability = self.lpips.result() if self.lpips is not None else temporal.temporal_stability(clip)
        return ShotMeasures(temporal.motion_floor(clip), stability, temporal.temporal_flickering(clip),
                            temporal.frame_timing(clip), temporal.worst_moment(self.smoothness.result()),
                            self.identity.result())


@dataclass(frozen=True)
class StillIdentity:
    """One still's identity: its similarity to the anchor, the backend's rule, the backend."""

    similarity: float
    rule: IdentityRule
    backend: str

    @property
    def same_character(self) -> bool:
        return self.rule.same(self.similarity)


def still_identity(image: np.ndarray, face_box: Box | None, anchor: Anchor, backend: IdentityBackend) -> StillIdentity:
    """A still's identity (dataset candidates, LoRA checks) by `backend` where the anchor has its
    vector: CCIP on the largest detected head, ArcFace on the largest face (0 when none is found),
    else the head palette signature around `face_box` (the whole image without a box), else the
    palette signature."""
    if isinstance(backend, CcipIdentity) and anchor.ccip is not None:
        feature = ccip_reference(backend.model, backend.detector, image)
        similarity = 0.0 if feature is None else 1.0 - float(backend.model.differences_to(feature, anchor.ccip)[0, 0])
        return StillIdentity(similarity, backend.rule, backend.backend)
    if isinstance(backend, ArcFaceIdentity) and anchor.arcface is not None:
        embedding = identity.reference_embedding(backend.faces, image)
        similarity = 0.0 if embedding is None else weightfree.cosine(embedding, anchor.arcface)
        return StillIdentity(similarity, backend.rule, backend.backend)
    if anchor.signature is not None:
        box = face_box or (0, 0, image.shape[1], image.shape[0])
        return StillIdentity(weightfree.cosine(weightfree.character_signature(image, box), anchor.signature),
                             PALETTE_RULE, weightfree.CHARACTER_BACKEND)
    return StillIdentity(weightfree.cosine(weightfree.palette_signature(image, face_box), anchor.palette), PALETTE_RULE,
                         weightfree.PALETTE_BACKEND)
