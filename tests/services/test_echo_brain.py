"""The Echo Brain client and the fallback Director against the in-process fakes."""

from __future__ import annotations

import pytest
from fake_echo_brain import LEARN, PLAN, REFINE, FakeEchoBrain
from fake_ollama import FakeOllama, unused_url

from anime_pipeline.planning.local import NAME as LOCAL_NAME
from anime_pipeline.planning.local import Refinement, refine_prompt
from anime_pipeline.services.echo_brain import (OLLAMA_REFINE_SCHEMA, Director, EchoBrainBadResponse,
                                                EchoBrainClient, EchoBrainUnavailable)
from anime_pipeline.services.ollama import OllamaClient

PROMPT = "1girl, courier, lantern-lit street"


@pytest.fixture
def echo():
    with FakeEchoBrain() as server:
        yield server


@pytest.fixture
def client(echo):
    brain = EchoBrainClient(echo.url, timeout=2, retries=1, backoff=0.01)
    yield brain
    brain.close()


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


def down_echo() -> EchoBrainClient:
    return EchoBrainClient(unused_url(), timeout=1, retries=0)


# --- the client -------------------------------------------------------------------------------------

def test_health(echo, client):
    assert client.health() is True
    echo.status = 500
    assert client.health() is False
    assert down_echo().health() is False


def test_plan_scene_parses_the_known_fields_and_keeps_the_rest(echo, client):
    plan = client.plan_scene("s-1", "Mio delivers a letter at night", ["mio", "hoshi"])
    assert [(s.shot_number, s.camera_angle, s.duration) for s in plan.shot_list] == [
        (1, "wide establishing", 4.0), (2, "medium close-up", 2.5)]
    assert plan.shot_list[0].extra == {"transition": "fade"} and plan.shot_list[1].extra == {"focus": "mio"}
    assert plan.overall_mood == "hushed, hopeful" and plan.lighting_suggestions == ["lantern glow", "deep blue shadows"]
    assert plan.extra == {"confidence": 0.82, "memory_ids": ["m-101", "m-207"]}
    assert echo.requests[-1].body == {"session_id": "s-1", "scene_description": "Mio delivers a letter at night",
                                      "characters": ["mio", "hoshi"]}


def test_a_single_lighting_suggestion_string_becomes_a_list(echo, client):
    echo.answers[PLAN]["lighting_suggestions"] = "golden dusk light"
    assert client.plan_scene("s", "d", []).lighting_suggestions == ["golden dusk light"]


def test_refine_prompt_parses_and_keeps_extras(echo, client):
    refined = client.refine_prompt(PROMPT, {"time_of_day": "night", "mood": "hushed"})
    assert refined.original == PROMPT and refined.refined.endswith("moonlight, soft bloom")
    assert (refined.style_additions, refined.negative_additions) == (["moonlight", "soft bloom"], ["overexposed"])
    assert refined.extra == {"model_used": "echo-director-7b"}
    assert echo.requests[-1].body == {"prompt": PROMPT, "context": {"time_of_day": "night", "mood": "hushed"}}


def test_refine_prompt_accepts_the_short_field_name(echo, client):
    echo.answers[REFINE] = {"refined": "a, b", "note": "x"}
    refined = client.refine_prompt("a", {})
    assert (refined.refined, refined.style_additions, refined.extra) == ("a, b", [], {"note": "x"})


def test_learn_parses_and_keeps_extras(echo, client):
    result = client.learn({"clarity": 0.61, "identity": 0.9})
    assert result.recommendations == ["raise steps for night scenes"] and result.patterns[0]["support"] == 4
    assert result.extra == {"stored": True}
    assert echo.requests[-1].body == {"scores": {"clarity": 0.61, "identity": 0.9}}


@pytest.mark.parametrize(("path", "drop", "call", "field"), [
    (PLAN, ("shot_list", 1, "camera_angle"), lambda c: c.plan_scene("s", "d", []), "shot_list[1].camera_angle"),
    (PLAN, ("overall_mood",), lambda c: c.plan_scene("s", "d", []), "overall_mood"),
    (REFINE, ("refined_prompt",), lambda c: c.refine_prompt("p", {}), "refined_prompt"),
    (LEARN, ("recommendations",), lambda c: c.learn({}), "recommendations"),
])
def test_a_missing_field_is_a_bad_response_naming_endpoint_and_field(echo, client, path, drop, call, field):
    holder = echo.answers[path]
    for key in drop[:-1]:
        holder = holder[key]
    del holder[drop[-1]]
    with pytest.raises(EchoBrainBadResponse) as caught:
        call(client)
    assert (caught.value.endpoint, caught.value.field) == (path, field)
    assert path in str(caught.value) and field in str(caught.value)


def test_server_error_is_retried_then_unavailable(echo, client):
    echo.status = 500
    with pytest.raises(EchoBrainUnavailable, match="HTTP 500"):
        client.plan_scene("s", "d", [])
    assert len(echo.requests) == 2


def test_down_and_slow_are_unavailable(echo):
    with pytest.raises(EchoBrainUnavailable, match="connection refused"):
        down_echo().learn({})
    echo.delay = 30  # it would outlast the test
    with pytest.raises(EchoBrainUnavailable, match=r"no complete answer within 0\.5 s"):
        EchoBrainClient(echo.url, timeout=0.5, retries=0).learn({})


# --- the director ---------------------------------------------------------------------------------

def test_director_uses_echo_brain_when_it_answers(echo, client):
    refinement = Director(client, None).refine_prompt(PROMPT, "night", "hushed")
    assert isinstance(refinement, Refinement) and refinement.path == ["echo_brain: ok"]
    assert refinement.refined.endswith("soft bloom") and refinement.source == f"echo brain ({echo.url})"


def test_director_falls_back_to_ollama_when_echo_brain_is_down(ollama):
    ollama.answer({"style_additions": ["moonlight", " "], "negative_additions": ["daylight"]})
    director = Director(down_echo(), OllamaClient(ollama.url, timeout=2), "gemma3")
    refinement = director.refine_prompt(PROMPT, "night", "hushed")
    assert refinement.path == ["echo_brain: unavailable (connection refused)", "ollama: ok"]
    assert refinement.refined == f"{PROMPT}, moonlight" and refinement.negative_additions == ["daylight"]
    assert refinement.source == "ollama (gemma3)"
    (body,) = ollama.chats
    assert body["format"] == OLLAMA_REFINE_SCHEMA and body["options"]["temperature"] == 0.0
    assert "night" in body["messages"][-1]["content"] and "hushed" in body["messages"][-1]["content"]


def test_director_falls_back_to_the_local_planner_when_both_are_down(echo, client):
    echo.status = 500
    director = Director(client, OllamaClient(unused_url()), "gemma3")
    refinement = director.refine_prompt(PROMPT, "night", "hushed")
    assert refinement.path[0].startswith("echo_brain: unavailable (HTTP 500")
    assert refinement.path[1:] == ["ollama: unavailable (connection refused)", "local: ok"]
    assert refinement.refined == refine_prompt(PROMPT, "night", "hushed").refined
    assert refinement.source == LOCAL_NAME


def test_director_records_a_missing_ollama_model_and_unconfigured_services(ollama):
    refinement = Director(None, OllamaClient(ollama.url), "llava").refine_prompt(PROMPT, "dusk")
    assert refinement.path[0] == "echo_brain: not configured"
    assert refinement.path[1].startswith("ollama: ModelMissing") and "ollama pull llava" in refinement.path[1]
    assert refinement.path[2] == "local: ok"
    assert Director(None, None).refine_prompt(PROMPT).path == [
        "echo_brain: not configured", "ollama: not configured", "local: ok"]


def test_send_feedback_reports_success_and_never_raises(echo, client):
    assert Director(client, None).send_feedback({"clarity": 0.7}) is True
    del echo.answers[LEARN]["patterns"]
    assert Director(client, None).send_feedback({"clarity": 0.7}) is False
    assert Director(down_echo(), None).send_feedback({"clarity": 0.7}) is False
    assert Director(None, None).send_feedback({"clarity": 0.7}) is False
