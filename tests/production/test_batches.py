"""Batch records: one per batch, numbered past every batch a candidate names (a batch cut short by a crash
leaves candidates but no record), with the learner's plan and the reviewer's decisions."""

from __future__ import annotations

from anime_pipeline.config import Project
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.batches import (
    batch_records,
    latest_batch_record,
    next_batch,
    run_batch,
)
from anime_pipeline.production.candidates import DecisionLog, list_candidates
from anime_pipeline.production.character_embedding import load_anchor
from anime_pipeline.render.previz import PrevizRenderer
from anime_pipeline.review.heuristic import HeuristicReviewer
from anime_pipeline.storage import read_json, write_json

KEY = "lantern-post/mio"


def test_a_batch_is_planned_rendered_reviewed_and_recorded(characters):
    paths = StoragePaths(characters.storage)
    folder = paths.candidates(KEY)
    before = list_candidates(folder)
    numbered = [c.record.batch for c in before]
    assert numbered and None not in numbered  # the session's characters were made in recorded batches
    assert next_batch(folder) == max(numbered) + 1 == len(batch_records(folder)) + 1

    # a batch cut short: a candidate of batch 7 on disk, no record of it
    write_json(folder / "c0900.json", {**read_json(before[0].image_path.with_suffix(".json")), "id": "c0900",
                                       "batch": 7})
    (folder / "c0900.png").write_bytes(before[0].image_path.read_bytes())
    assert next_batch(folder) == 8

    ref = Project.load(characters.configs).characters[KEY]
    record = run_batch(ref, PrevizRenderer(), HeuristicReviewer(), load_anchor(paths.embedding(KEY)), folder,
                       DecisionLog(paths.decisions_log(KEY)), batch_size=2)
    assert record.batch == 8 and len(record.made) == 2 and set(record.automatic) == set(record.made)
    assert batch_records(folder)[-1] == record
    assert all(c.record.batch == 8 and c.record.steering == record.plan.steering
               for c in list_candidates(folder) if c.id in record.made)
    (folder / "batches" / "b0099.json").write_text("{damaged")
    assert batch_records(folder)[-1] == record == latest_batch_record(folder)
