"""Vision-review overhead per image, excluding model time, against an in-process fake Ollama.

    .venv/bin/python benchmarks/review_overhead.py

The fake answers every request after a fixed delay; overhead = wall time per review − that
delay × requests per review. Also reports images/minute sustained at a fixed 0.5 s answer.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "services"))

from fake_ollama import FakeOllama  # noqa: E402

from anime_pipeline.config import Project  # noqa: E402
from anime_pipeline.render.base import StillRequest  # noqa: E402
from anime_pipeline.render.previz import PrevizRenderer  # noqa: E402
from anime_pipeline.review.vision import OllamaVisionReviewer  # noqa: E402
from anime_pipeline.services.ollama import OllamaClient  # noqa: E402


def answer(body: dict) -> dict:
    props = body["format"]["properties"]
    if "matches_species" in props:
        return {"matches_species": True, "looks_human": False, "reason": "fur"}
    return {"character_match": 0.9, "clarity": 0.9, "completeness": 0.9, "training_value": 8, "solo": True,
            "feature_checklist": {k: True for k in props["feature_checklist"]["properties"]}, "notes": []}


def measure(character_key: str, delay: float, runs: int) -> tuple[float, float]:
    project = Project.load(REPO / "project_configs")
    ref = project.characters[character_key]
    image = PrevizRenderer().render_still(StillRequest((ref.character,), "", "", 1, 512, 768)).image
    requests_per_review = 1 if ref.character.appearance.is_human else 2
    with FakeOllama(delay=delay) as fake:
        fake.responder = answer
        reviewer = OllamaVisionReviewer(OllamaClient(fake.url), "gemma3")
        thresholds = ref.config.quality.review
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            reviewer.review(image, ref.character, None, None, [], thresholds, 0.97)
            times.append(time.perf_counter() - start)
    per_review = statistics.median(times)
    return (per_review - delay * requests_per_review) * 1000, 60 / per_review


def main() -> None:
    for key in ("lantern-post/mio", "lantern-post/hoshi"):
        overhead, _ = measure(key, delay=0.05, runs=50)
        _, per_minute = measure(key, delay=0.5, runs=10)
        print(f"{key}: overhead {overhead:.1f} ms/image (median of 50); {per_minute:.0f} images/min at 0.5 s answers")


if __name__ == "__main__":
    main()
