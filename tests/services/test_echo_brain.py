"""The Echo Brain client against the in-process fake (the director chain that uses it: tests/planning)."""

from __future__ import annotations

import pytest

from anime_pipeline.services.echo_brain import (
    EchoBrainBadResponse,
    EchoBrainClient,
    EchoBrainUnavailable,
)
from tests.services.fake_echo_brain import LEARN, PLAN, REFINE, FakeEchoBrain
from tests.services.fake_ollama import unused_url

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
