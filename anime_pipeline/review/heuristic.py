"""The embedded reviewer: scores a generated image from pixel statistics and colour evidence,
with no model weights, and fills the same Verdict a vision LLM would."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from anime_pipeline.config.schema import Character, ReviewThresholds
from anime_pipeline.drawings import find_faces
from anime_pipeline.imaging import Box, hex_to_rgb
from anime_pipeline.metrics import weightfree
from anime_pipeline.review.base import combined_score, duplicate_rejection, key_colors
from anime_pipeline.review.checklist import check_features
from anime_pipeline.review.verdict import Verdict, decide

PRESENT_SHARE = 5e-5  # ≈ 20 px of 512×768: the eyes of a full-body drawing still count
NOT_SOLO_TRAINING_FACTOR = 0.5  # other figures in a single-character dataset teach the wrong thing
# Below these a clarity component is named as a finding ("too dark", "blurry", …), so a person and the
# dataset learner see the cause, not only a low clarity; well-made previz stills sit well above them.
EXPOSURE_FINDING, SHARPNESS_FINDING, CONTRAST_FINDING = 0.4, 0.5, 0.2
SKIN_STOPS_FINDING = 0.4  # how far (in stops) the face's skin may read from the design before it is named
SKIN_CHROMA = 0.05  # the face's commonest colour counts as skin when its r:g:b is this close to the design's


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))


def _expand(box: Box, factor: float) -> Box:
    """The box grown by `factor` of its size on every side (hair lies around the face)."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * factor, (y1 - y0) * factor
    return round(x0 - dx), round(y0 - dy), round(x1 + dx), round(y1 + dy)


def character_match(image: np.ndarray, face: Box | None, anchor: np.ndarray | None,
                    roles: dict[str, str]) -> tuple[float, str]:
    """cosine(palette_signature(face crop), anchor) when both exist; otherwise the share of the
    face crop (whole image without a face) drawn in the character's key colours."""
    if anchor is not None and face is not None:
        return _clip01(weightfree.cosine(weightfree.palette_signature(image, face), anchor)), "palette signature vs anchor"
    region = weightfree.crop(image, face)
    where = "face" if face is not None else "whole image, no face found"
    return weightfree.palette_match(region, list(roles.values())), f"key-colour share of {where}"


def skin_stops(image: np.ndarray, face: Box | None, skin: str) -> float | None:
    """How many stops brighter (+) or darker (−) than the design's skin colour the face's commonest
    colour reads, when that colour is the skin's hue; None when no face or it is not skin (hair, a back view)."""
    if face is None:
        return None
    pixels = weightfree.crop(image, face).reshape(-1, 3).astype(np.float32)
    if not len(pixels):
        return None
    bins = (pixels // 8).astype(np.int32) @ np.array([1024, 32, 1], dtype=np.int32)
    values, counts = np.unique(bins, return_counts=True)
    common = pixels[bins == values[np.argmax(counts)]].mean(axis=0)
    design = np.array(hex_to_rgb(skin), dtype=np.float32)
    if np.abs(common / max(common.sum(), 1.0) - design / max(design.sum(), 1.0)).max() > SKIN_CHROMA:
        return None
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return float(np.log2(max(float(common @ luma), 1.0) / max(float(design @ luma), 1.0)))


def clarity_findings(image: np.ndarray, sharp: float, exposed: float, contrasted: float,
                     skin: float | None) -> list[str]:
    """What makes the image unclear, in words: too dark / too bright (measured on the face's skin when it
    can be, which says by how much), blurry, low contrast."""
    findings = []
    luminance = weightfree.mean_luminance(image)
    if skin is not None and abs(skin) >= SKIN_STOPS_FINDING:
        findings.append(f"too {'dark' if skin < 0 else 'bright'}: the face's skin colour reads {skin:+.2f} stops "
                        f"from the design (mean luminance {luminance:.2f})")
    elif exposed < EXPOSURE_FINDING:
        findings.append(f"too {'dark' if luminance < 0.5 else 'bright'}: mean luminance {luminance:.2f} "
                        f"(exposure {exposed:.2f} < {EXPOSURE_FINDING})")
    if sharp < SHARPNESS_FINDING:
        findings.append(f"blurry: sharpness {sharp:.2f} < {SHARPNESS_FINDING}")
    if contrasted < CONTRAST_FINDING:
        findings.append(f"low contrast: {contrasted:.2f} < {CONTRAST_FINDING}")
    return findings


def present_roles(image: np.ndarray, roles: dict[str, str]) -> dict[str, bool]:
    """Role → its key colour covers ≥ PRESENT_SHARE of the image (within the colour tolerance)."""
    return {role: weightfree.palette_match(image, [color]) >= PRESENT_SHARE for role, color in roles.items()}


class HeuristicReviewer:
    """Weight-free triage: character match, clarity, completeness, checklist, duplicates → decide()."""

    name = "heuristic (embedded, weight-free)"
    backend = "heuristic"
    device = "cpu"

    def review(self, image: np.ndarray, character: Character, face_box: Box | None, anchor: np.ndarray | None,
               others: Sequence[np.ndarray], thresholds: ReviewThresholds, duplicate_threshold: float) -> Verdict:
        """score = (0.5·character_match + 0.3·completeness + 0.2·clarity) × share of checkable
        checks passed (checklist items judged by colour, plus the species check); clarity = mean
        of sharpness, exposure, contrast; completeness = share of key colours present; solo =
        exactly one face (find_faces with the skin/eye key colours; the given face_box when none
        is found); training_value = 10·score, halved when not solo, 0 for a near-duplicate of any
        of `others` (which is rejected whatever its score)."""
        appearance = character.appearance
        roles = key_colors(appearance.key_colors)
        faces = find_faces(image, roles["skin"], roles["eyes"])
        if face_box is not None and not faces:
            faces = [face_box]
        face = face_box if face_box is not None else (faces[0] if faces else None)
        solo = len(faces) == 1

        match, match_how = character_match(image, face, anchor, roles)
        sharp, exposed, contrasted = weightfree.sharpness(image), weightfree.exposure(image), weightfree.contrast(image)
        clarity = _clip01((sharp + exposed + contrasted) / 3)
        present = present_roles(image, roles)
        completeness = sum(present.values()) / len(present)
        face_region = weightfree.crop(image, _expand(face, 0.5)) if face is not None else None
        checklist = check_features(appearance, present, face_region)
        # Weak colour evidence; a person confirms every non-human image anyway (decide())
        species_check = None if appearance.is_human else bool(present["skin"] and face is not None)

        checks = checklist.checked + ([species_check] if species_check is not None else [])
        score = combined_score(match, completeness, clarity, checks)
        decision, why = decide(score, solo, appearance.is_human, thresholds)
        duplicate = duplicate_rejection(image, others, duplicate_threshold)
        if duplicate:
            decision, why = "reject", duplicate
        training_value = 0.0 if duplicate else 10 * score * (1.0 if solo else NOT_SOLO_TRAINING_FACTOR)

        reasons = [
            f"character match {match:.2f} ({match_how})",
            f"clarity {clarity:.2f} (sharpness {sharp:.2f}, exposure {exposed:.2f}, contrast {contrasted:.2f})",
            *clarity_findings(image, sharp, exposed, contrasted, skin_stops(image, face, roles["skin"])),
            f"completeness {sum(present.values())}/{len(present)} key colours present"
            + "".join(f"; missing {role}" for role, ok in present.items() if not ok),
            "solo" if solo else f"not solo: {len(faces)} faces found",
        ]
        reasons += [f"failed check: {item}" for item, ok in checklist.items.items() if not ok]
        if checklist.unchecked:
            reasons.append("not checkable weight-free (entered as passed, left to a person): "
                           + ", ".join(checklist.unchecked))
        if species_check is not None:
            reasons.append(f"species check {'passed' if species_check else 'failed'} "
                           f"({appearance.species}: body colour and a face of it, colour evidence only)")
        reasons.append(why)
        return Verdict(character_match=match, clarity=clarity, training_value=min(10.0, training_value), solo=solo,
                       completeness=completeness, feature_checklist=checklist.items, species_check=species_check,
                       score=score, decision=decision, reasons=reasons, reviewer=self.name)
