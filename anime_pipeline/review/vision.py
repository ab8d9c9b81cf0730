"""The vision-LLM reviewer: an Ollama vision model judges a generated image against the
character's design and fills the same Verdict as the heuristic reviewer, decided by the same
rule (`decide()`), so a score means the same thing whichever reviewer produced it.

The model answers a JSON schema built from the character's appearance; non-human characters get
a second, focused species question, because "a human with fox ears" is the typical failure and
a broad review question lets it pass.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from anime_pipeline.config.schema import Appearance, Character, ReviewThresholds
from anime_pipeline.imaging import Box, hex_to_rgb
from anime_pipeline.review.base import combined_score, duplicate_rejection, key_colors
from anime_pipeline.review.checklist import NAMED_COLORS
from anime_pipeline.review.verdict import Verdict, decide
from anime_pipeline.services.ollama import OllamaClient

SEED = 0
UNIT = {"type": "number", "minimum": 0, "maximum": 1}
SYSTEM = ("You review generated anime images for one character's LoRA training dataset. Judge only what is "
          "visible in the image and be strict. Answer with JSON only.")
INSTRUCTIONS = """Fill in:
- character_match (0-1): how well the figure matches this design: colours, features, species
- clarity (0-1): sharp, well exposed, clean linework, no artefacts
- completeness (0-1): how much of the design is visible and not cropped away
- training_value (0-10): how much this image would teach a model about this character
- solo: true only if exactly one character is in the image
- feature_checklist: true for each item the image satisfies;
  an item starting with "no " is true when that error is absent
- notes: short reasons for any low value; empty when there are none"""
SPECIES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"matches_species": {"type": "boolean"}, "looks_human": {"type": "boolean"},
                   "reason": {"type": "string"}},
    "required": ["matches_species", "looks_human", "reason"],
    "additionalProperties": False,
}


def color_name(color: str) -> str:
    """The nearest colour word: vision models understand "brown", not "#7a4a2a"."""
    rgb = np.array(hex_to_rgb(color))
    return min(NAMED_COLORS, key=lambda name: float(np.sum((np.array(hex_to_rgb(NAMED_COLORS[name])) - rgb) ** 2)))


def _role_label(role: str, appearance: Appearance) -> str:
    return "fur/body" if role == "skin" and not appearance.is_human else role


def checklist_items(appearance: Appearance) -> list[str]:
    """Species, one item per key colour, the key features, and "no <error>" per common error
    (the heuristic reviewer's wording, so checklists from both reviewers line up)."""
    items = [f"species: {appearance.species}"]
    items += [f"{_role_label(role, appearance)} colour: {color_name(color)} ({color})"
              for role, color in key_colors(appearance.key_colors).items()]
    items += appearance.key_features
    items += [f"no {error}" for error in appearance.common_errors]
    return list(dict.fromkeys(items))


def review_schema(items: Sequence[str]) -> dict[str, Any]:
    properties = {
        "character_match": UNIT, "clarity": UNIT, "completeness": UNIT,
        "training_value": {"type": "number", "minimum": 0, "maximum": 10},
        "solo": {"type": "boolean"},
        "feature_checklist": {"type": "object", "properties": {item: {"type": "boolean"} for item in items},
                              "required": list(items), "additionalProperties": False},
        "notes": {"type": "array", "items": {"type": "string"}},
    }
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def describe(character: Character, face_box: Box | None, image: np.ndarray) -> str:
    appearance = character.appearance
    colors = ", ".join(f"{_role_label(role, appearance)} {color_name(color)} ({color})"
                       for role, color in key_colors(appearance.key_colors).items())
    lines = [f"Character: {character.name}, species: {appearance.species}.", f"Design: {character.design_prompt}",
             f"Key colours: {colors}."]
    if appearance.key_features:
        lines.append("Key features: " + ", ".join(appearance.key_features) + ".")
    if appearance.common_errors:
        lines.append("Common generation errors to look for: " + ", ".join(appearance.common_errors) + ".")
    if face_box is not None:
        height, width = image.shape[:2]
        lines.append(f"The face is expected near the pixel box {tuple(face_box)} (x0, y0, x1, y1) of this "
                     f"{width}x{height} image.")
    return "\n".join(lines)


def species_question(appearance: Appearance) -> str:
    features = f" Its design has: {', '.join(appearance.key_features)}." if appearance.key_features else ""
    return (f"Look only at the species of the main figure. It should be a {appearance.species}, "
            f"not a human.{features}\n"
            f"- matches_species: true if the figure is clearly a {appearance.species}\n"
            "- looks_human: true if it has a human face, human skin or human body proportions\n"
            "- reason: one sentence")


def encode_png(image: np.ndarray) -> bytes:
    """Lossless so the model sees the exact key colours; level 1 because compression is overhead here."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class OllamaVisionReviewer:
    """A Reviewer like HeuristicReviewer; the judgement comes from a vision model asked at
    temperature 0 with a fixed seed, so a re-review gives the same answer. `device` is the GPU
    the Ollama server runs the model on (the client cannot see it; the deployment says it)."""

    backend = "ollama"

    def __init__(self, client: OllamaClient, model: str = "gemma3", seed: int = SEED,
                 repair_attempts: int = 1, device: str = "cpu") -> None:
        self.client, self.model, self.seed, self.repair_attempts = client, model, seed, repair_attempts
        self.name, self.device = f"ollama vision ({model})", device

    def review(self, image: np.ndarray, character: Character, face_box: Box | None, anchor: np.ndarray | None,
               others: Sequence[np.ndarray], thresholds: ReviewThresholds, duplicate_threshold: float) -> Verdict:
        """score = (0.5·character_match + 0.3·completeness + 0.2·clarity) × share of checklist items
        (and the species check) passed — the heuristic reviewer's formula over the model's judgements.
        A near-duplicate of any of `others` is rejected with training value 0. `anchor` is unused: a
        palette vector means nothing to a vision model."""
        appearance = character.appearance
        png = encode_png(image)
        items = checklist_items(appearance)
        answer = self._ask(describe(character, face_box, image) + "\n\n" + INSTRUCTIONS, review_schema(items), png)
        species = None if appearance.is_human else self._ask(species_question(appearance), SPECIES_SCHEMA, png)
        species_check = None if species is None else species["matches_species"] and not species["looks_human"]

        checklist = {item: answer["feature_checklist"][item] for item in items}
        checks = list(checklist.values()) + ([species_check] if species_check is not None else [])
        score = combined_score(answer["character_match"], answer["completeness"], answer["clarity"], checks)
        decision, why = decide(score, answer["solo"], appearance.is_human, thresholds)
        duplicate = duplicate_rejection(image, others, duplicate_threshold)
        if duplicate:
            decision, why = "reject", duplicate

        reasons = [f"{self.name}: character match {answer['character_match']:.2f}, clarity {answer['clarity']:.2f}, "
                   f"completeness {answer['completeness']:.2f}, training value {answer['training_value']:.1f}/10",
                   "solo" if answer["solo"] else "not solo (the model sees more than one character)"]
        reasons += [f"failed check: {item}" for item, ok in checklist.items() if not ok]
        reasons += [f"model: {note}" for note in answer["notes"]]
        if species is not None:
            reasons.append(f"species check {'passed' if species_check else 'failed'} ({appearance.species}; "
                           f"matches: {species['matches_species']}, looks human: {species['looks_human']}): "
                           f"{species['reason']}")
        reasons.append(why)
        return Verdict(character_match=answer["character_match"], clarity=answer["clarity"],
                       training_value=0.0 if duplicate else answer["training_value"], solo=answer["solo"],
                       completeness=answer["completeness"], feature_checklist=checklist, species_check=species_check,
                       score=score, decision=decision, reasons=reasons, reviewer=self.name)

    def _ask(self, question: str, schema: dict[str, Any], png: bytes) -> dict[str, Any]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        return self.client.chat_json(self.model, messages, schema, images=[png], seed=self.seed, temperature=0.0,
                                     repair_attempts=self.repair_attempts)
