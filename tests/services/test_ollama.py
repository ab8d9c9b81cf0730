"""The Ollama client and the vision reviewer against the in-process fake Ollama."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from anime_pipeline.config.schema import Character, ReviewThresholds
from anime_pipeline.review.vision import (
    SPECIES_SCHEMA,
    OllamaVisionReviewer,
    checklist_items,
)
from anime_pipeline.services.ollama import (
    BadRequest,
    InvalidModelOutput,
    ModelMissing,
    OllamaBusy,
    OllamaClient,
    OllamaServerError,
    OllamaTimeout,
    OllamaUnavailable,
    check_schema,
    schema_problems,
)
from tests.services.fake_ollama import FakeOllama, unused_url

SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1},
                   "label": {"type": "string", "enum": ["cat", "fox"]}},
    "required": ["score", "label"],
    "additionalProperties": False,
}
MESSAGES = [{"role": "system", "content": "Judge the image."}, {"role": "user", "content": "Rate it."}]
GOOD = {"score": 0.7, "label": "fox"}


@pytest.fixture
def fake():
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake):
    ollama = OllamaClient(fake.url, timeout=5, retries=2, backoff=0.01)
    yield ollama
    ollama.close()


# --- models --------------------------------------------------------------------------------------

def test_tags_and_untagged_name_resolves_to_latest(client):
    assert [m.name for m in client.tags()] == ["gemma3:latest"]
    info = client.ensure_model("gemma3")
    assert (info.name, info.family, info.quantization_level) == ("gemma3:latest", "gemma3", "Q4_K_M")


def test_ensure_model_missing_names_the_pull_command(client):
    with pytest.raises(ModelMissing) as caught:
        client.ensure_model("llava:13b")
    assert caught.value.model == "llava:13b"
    assert "ollama pull llava:13b" in str(caught.value) and "installed: gemma3:latest" in str(caught.value)


def test_chat_with_a_missing_model_is_model_missing(client):
    with pytest.raises(ModelMissing, match=r'ollama pull llava$') as caught:
        client.chat_json("llava", MESSAGES, SCHEMA)
    assert 'model "llava" not found' in str(caught.value)


# --- the request -----------------------------------------------------------------------------------

def test_request_carries_schema_seed_temperature_zero_and_plain_base64_images(fake, client):
    fake.answer(GOOD)
    image = b"\x89PNG\r\n\x1a\nnot-really-a-png"
    assert client.chat_json("gemma3", MESSAGES, SCHEMA, images=[image], seed=7) == GOOD
    body = fake.chats[0]
    assert body["options"] == {"temperature": 0.0, "seed": 7}
    assert body["format"] == SCHEMA and body["stream"] is False and body["keep_alive"] == "5m"
    sent = body["messages"][-1]["images"]
    assert base64.b64decode(sent[0]) == image and not sent[0].startswith("data:")
    assert "images" not in body["messages"][0] and "images" not in MESSAGES[-1]  # caller's list untouched


# --- bad answers and repair --------------------------------------------------------------------------

def test_malformed_json_gets_one_repair_round_then_succeeds(fake, client):
    fake.answer('{"score": 0.7, "label": ', GOOD)
    assert client.chat_json("gemma3", MESSAGES, SCHEMA) == GOOD
    repair = fake.chats[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"score": 0.7, "label": '}
    assert repair[-1]["role"] == "user" and "not valid JSON" in repair[-1]["content"]


def test_fenced_json_needs_no_repair(fake, client):
    fake.answer('```json\n{"score": 0.2, "label": "cat"}\n```')
    assert client.chat_json("gemma3", MESSAGES, SCHEMA) == {"score": 0.2, "label": "cat"}
    assert len(fake.chats) == 1


def test_schema_violation_twice_is_invalid_model_output(fake, client):
    fake.answer({"score": 7, "label": "fox"}, {"score": 7, "label": "wolf"})
    with pytest.raises(InvalidModelOutput) as caught:
        client.chat_json("gemma3", MESSAGES, SCHEMA)
    error = caught.value
    assert error.model == "gemma3" and "'gemma3'" in str(error)
    assert "$.score: 7 > maximum 1" in error.problem and "'wolf' is not one of" in error.problem
    assert "after 2 attempts" in error.problem and error.raw_excerpt.startswith('{"score": 7')
    assert "$.score: 7 > maximum 1" in fake.chats[1]["messages"][-1]["content"]


def test_no_repair_when_repair_attempts_is_zero(fake, client):
    fake.answer("[1, 2]")
    with pytest.raises(InvalidModelOutput, match="expected a JSON object, got array"):
        client.chat_json("gemma3", MESSAGES, SCHEMA, repair_attempts=0)
    assert len(fake.chats) == 1


# --- transport and server errors --------------------------------------------------------------------

def test_timeout_is_a_clear_error(fake):
    fake.delay = 30  # it would outlast the test
    with pytest.raises(OllamaTimeout) as caught:
        OllamaClient(fake.url, timeout=0.5).chat_json("gemma3", MESSAGES, SCHEMA)
    assert fake.url in str(caught.value) and "'gemma3'" in str(caught.value) and "0.5 s" in str(caught.value)


def test_busy_twice_then_ok_succeeds(fake, client):
    fake.busy = 2
    fake.answer(GOOD)
    assert client.chat_json("gemma3", MESSAGES, SCHEMA) == GOOD
    assert len(fake.chats) == 3


def test_busy_forever_is_ollama_busy(fake, client):
    fake.busy = -1
    with pytest.raises(OllamaBusy, match="through 3 attempts") as caught:
        client.chat_json("gemma3", MESSAGES, SCHEMA)
    assert "maximum pending requests exceeded" in str(caught.value)
    assert len(fake.chats) == 3


def test_streamed_answer_is_assembled(fake, client):
    fake.answer(GOOD)
    assert client.chat_json("gemma3", MESSAGES, SCHEMA, stream=True) == GOOD
    assert fake.chats[0]["stream"] is True


def test_mid_stream_error_after_http_200(fake, client):
    fake.stream_error = "llama runner process has terminated: signal: killed"
    fake.answer(GOOD)
    with pytest.raises(OllamaServerError, match="mid-stream error after 1 chunks: llama runner process") as caught:
        client.chat_json("gemma3", MESSAGES, SCHEMA, stream=True)
    assert caught.value.status == 200


def test_server_error_500_carries_the_text(fake, client):
    fake.server_error = "out of memory allocating KV cache"
    with pytest.raises(OllamaServerError, match="HTTP 500.*out of memory allocating KV cache"):
        client.chat_json("gemma3", MESSAGES, SCHEMA)
    assert len(fake.chats) == 1  # a 500 is not retried: unlike a full queue it does not clear by itself


def test_bad_request_400_carries_the_server_text(client):
    with pytest.raises(BadRequest, match="model is required"):
        client.chat_json("", MESSAGES, SCHEMA)


def test_connection_refused_is_unavailable():
    url = unused_url()
    with pytest.raises(OllamaUnavailable, match="connection refused") as caught:
        OllamaClient(url).tags()
    assert caught.value.url == url and url in str(caught.value)


# --- the schema validator --------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "problem"), [
    ({"score": True, "label": "fox"}, "$.score: expected number, got boolean"),
    ({"score": 0.5}, "$: missing required key 'label'"),
    ({"score": 0.5, "label": "fox", "why": "x"}, "$: unexpected key 'why'"),
    ({"score": -0.1, "label": "fox"}, "$.score: -0.1 < minimum 0"),
])
def test_schema_problems(value, problem):
    assert schema_problems(value, SCHEMA) == [problem]


def test_schema_problems_nested_items_and_integers():
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
                                               "n": {"type": "integer"}}}
    assert schema_problems({"tags": ["a", ""], "n": 2.0}, schema) == ["$.tags[1]: shorter than 1 characters"]
    assert schema_problems({"n": 2.5}, schema) == ["$.n: expected integer, got number"]


def test_schema_keywords_the_validator_cannot_check_are_refused():
    with pytest.raises(ValueError, match=r"\$\.label uses keywords .*'pattern'"):
        check_schema({"type": "object", "properties": {"label": {"type": "string", "pattern": "^a"}}})


# --- the vision reviewer --------------------------------------------------------------------------

MIO = Character.model_validate({
    "slug": "mio", "name": "Mio", "design_prompt": "1girl, courier",
    "appearance": {"species": "human",
                   "key_colors": {"hair": "#7a4a2a", "skin": "#f3d3bd", "eyes": "#d08a1e", "outfit": "#24305e"},
                   "key_features": ["short bob", "satchel"], "common_errors": ["green eyes"]},
})
HOSHI = Character.model_validate({
    "slug": "hoshi", "name": "Hoshi", "design_prompt": "star-fox spirit",
    "appearance": {"species": "star-fox spirit",
                   "key_colors": {"hair": "#e8eef7", "skin": "#dfe6f0", "eyes": "#3aa7c9", "outfit": "#dfe6f0",
                                  "accent": "#ffd45c"},
                   "key_features": ["fox ears", "glowing tail"], "common_errors": ["human face"]},
})
IMAGE = np.random.default_rng(0).integers(0, 256, (768, 512, 3), dtype=np.uint8)
FACE = (200, 100, 300, 200)
SPECIES_OK = {"matches_species": True, "looks_human": False, "reason": "fox ears, white fur and a glowing tail"}


def judged(character: Character, value: float, solo: bool = True, failed: tuple[str, ...] = ()) -> dict:
    return {"character_match": value, "clarity": value, "completeness": value, "training_value": 10 * value,
            "solo": solo,
            "feature_checklist": {item: item not in failed for item in checklist_items(character.appearance)},
            "notes": [] if value > 0.5 else ["washed-out colours"]}


def review(client: OllamaClient, character: Character, others=()):
    return OllamaVisionReviewer(client).review(IMAGE, character, FACE, None, list(others), ReviewThresholds(), 0.97)


def test_non_human_at_095_goes_to_a_person_after_a_species_check(fake, client):
    fake.answer(judged(HOSHI, 0.95), SPECIES_OK)
    verdict = review(client, HOSHI)
    assert verdict.decision == "human_review" and verdict.score == pytest.approx(0.95)
    assert verdict.species_check is True and verdict.reviewer == "ollama vision (gemma3)"
    assert "never auto-approve" in verdict.reasons[-1]
    main, species = fake.chats
    assert species["format"] == SPECIES_SCHEMA and "star-fox spirit" in species["messages"][-1]["content"]
    assert species["messages"][-1]["images"] == main["messages"][-1]["images"]
    assert species["options"] == main["options"] == {"temperature": 0.0, "seed": 0}


def test_failed_species_check_lowers_the_score(fake, client):
    fake.answer(judged(HOSHI, 0.95), {**SPECIES_OK, "looks_human": True, "reason": "a human face with fox ears"})
    verdict = review(client, HOSHI)
    checks = len(checklist_items(HOSHI.appearance)) + 1
    assert verdict.species_check is False and verdict.score == pytest.approx(0.95 * (checks - 1) / checks)
    assert any("species check failed" in reason and "human face" in reason for reason in verdict.reasons)


def test_human_at_09_solo_is_approved_with_one_request(fake, client):
    fake.answer(judged(MIO, 0.9))
    verdict = review(client, MIO)
    assert (verdict.decision, verdict.species_check) == ("approve", None)
    assert verdict.score == pytest.approx(0.9) and verdict.training_value == pytest.approx(9.0)
    (body,) = fake.chats
    checklist = body["format"]["properties"]["feature_checklist"]
    assert checklist["required"] == checklist_items(MIO.appearance)
    expected = {"species: human", "hair colour: brown (#7a4a2a)", "short bob", "no green eyes"}
    assert expected <= set(checklist["required"])
    assert body["options"] == {"temperature": 0.0, "seed": 0} and body["messages"][-1]["images"]
    assert "(200, 100, 300, 200)" in body["messages"][-1]["content"]


def test_human_at_09_not_solo_goes_to_a_person(fake, client):
    fake.answer(judged(MIO, 0.9, solo=False))
    assert review(client, MIO).decision == "human_review"


def test_score_03_is_rejected(fake, client):
    fake.answer(judged(MIO, 0.3))
    verdict = review(client, MIO)
    assert verdict.decision == "reject" and "model: washed-out colours" in verdict.reasons


def test_failed_checklist_item_scales_the_score_and_is_reported(fake, client):
    fake.answer(judged(MIO, 0.9, failed=("satchel",)))
    verdict = review(client, MIO)
    items = len(checklist_items(MIO.appearance))
    assert verdict.score == pytest.approx(0.9 * (items - 1) / items) and verdict.decision == "human_review"
    assert "failed check: satchel" in verdict.reasons


def test_near_duplicate_is_rejected_whatever_the_model_says(fake, client):
    fake.answer(judged(MIO, 0.95))
    verdict = review(client, MIO, others=[IMAGE.copy()])
    assert verdict.decision == "reject" and verdict.training_value == 0.0
    assert verdict.reasons[-1].startswith("near-duplicate of others[0]")
