import json

import pytest

from anime_pipeline.config import Project
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.candidates import DecisionLog, dataset_state
from anime_pipeline.studio.queue import (
    DecisionRejected,
    build_queue,
    parse_decision,
    record_decision,
)
from tests.studio.studio_data import HOSHI


@pytest.fixture
def hoshi(configs_dir, hoshi_storage):
    return Project.load(configs_dir).characters[HOSHI], StoragePaths(hoshi_storage)


def _decide(ids, status, user="alice", reason=""):
    return parse_decision({"ids": ids, "status": status, "user": user, "reason": reason})


def test_the_queue_shows_every_candidate_with_its_verdict_and_the_reference_sheet(hoshi):
    ref, paths = hoshi
    queue = build_queue(ref, paths)
    assert [c.id for c in queue.cards] == [f"c{i:04d}" for i in range(6)]
    assert queue.count("pending") == 6 and not queue.is_human and queue.target == ref.character.dataset_target
    card = queue.cards[0]
    record = json.loads((paths.candidates(HOSHI) / "c0000.json").read_text())
    assert card.verdict.score == record["verdict"]["score"] and card.verdict.reasons == record["verdict"]["reasons"]
    assert card.verdict.feature_checklist == record["verdict"]["feature_checklist"]
    assert card.last.decider == "auto:heuristic (embedded, weight-free)" and card.last.decision == "human_review"
    assert (paths.root / card.image_path).is_file() and (paths.root / queue.sheet_path).name == "sheet.png"
    assert len(queue.panels) == 14 and queue.problems == []


def test_human_decisions_change_the_status_and_the_latest_wins(hoshi):
    ref, paths = hoshi
    entries = record_decision(ref, paths, _decide(["c0001", "c0002", "c0001"], "approved", reason="  good\n tail "))
    assert [e.candidate for e in entries] == ["c0001", "c0002"]  # a repeated id is recorded once
    assert entries[0].decider == "human:alice" and entries[0].reason == "good tail"
    record_decision(ref, paths, _decide(["c0002"], "rejected", user="bob"))
    record_decision(ref, paths, _decide(["c0001"], "pending"))
    status = {c.id: c.status for c in build_queue(ref, paths).cards}
    assert status["c0001"] == "pending" and status["c0002"] == "rejected"
    state = dataset_state(paths.candidates(HOSHI), DecisionLog(paths.decisions_log(HOSHI)))
    assert [c.id for c in state.rejected] == ["c0002"] and not state.approved  # what approved_dataset reads


def test_an_unknown_id_refuses_the_whole_request(hoshi):
    ref, paths = hoshi
    before = paths.decisions_log(HOSHI).read_bytes()
    with pytest.raises(DecisionRejected, match="ids: lantern-post/hoshi has no candidate.*c9999"):
        record_decision(ref, paths, _decide(["c0000", "c9999"], "approved"))
    assert paths.decisions_log(HOSHI).read_bytes() == before


@pytest.mark.parametrize("payload,field", [
    ([], "body"), ({"ids": [], "status": "approved", "user": "a"}, "ids"),
    ({"ids": "c0000", "status": "approved", "user": "a"}, "ids"),
    ({"ids": [1], "status": "approved", "user": "a"}, "ids"),
    ({"ids": ["c0000"] * 501, "status": "approved", "user": "a"}, "ids"),
    ({"ids": ["c0000"], "status": "approve", "user": "a"}, "status"),
    ({"ids": ["c0000"], "status": "approved"}, "user"),
    ({"ids": ["c0000"], "status": "approved", "user": "  "}, "user"),
    ({"ids": ["c0000"], "status": "approved", "user": "a\nb"}, "user"),
    ({"ids": ["c0000"], "status": "approved", "user": "a", "reason": "x" * 501}, "reason"),
    ({"ids": ["c0000"], "status": "approved", "user": "a", "reason": 3}, "reason"),
])
def test_a_bad_request_names_the_field(payload, field):
    with pytest.raises(DecisionRejected, match=f"^{field}: "):
        parse_decision(payload)


def test_an_unreadable_candidate_record_is_named_and_the_rest_still_shown(hoshi):
    ref, paths = hoshi
    record_path = paths.candidates(HOSHI) / "c0003.json"
    record = json.loads(record_path.read_text())
    record["verdict"]["score"] = 7
    record_path.write_text(json.dumps(record))
    queue = build_queue(ref, paths)
    assert "c0003" not in [c.id for c in queue.cards] and len(queue.cards) == 5
    assert queue.problems == [f"{record_path}: verdict.score: Input should be less than or equal to 1"]


def test_no_reference_sheet_yet(hoshi):
    ref, paths = hoshi
    (paths.reference(HOSHI) / "sheet.png").unlink()
    assert build_queue(ref, paths).sheet_path is None
