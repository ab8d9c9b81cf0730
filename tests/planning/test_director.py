"""The director chain (Echo Brain → Ollama → local planner) against the in-process fakes, for
prompt refinement, scene planning and feedback; what it records never holds a credential."""

from __future__ import annotations

import inspect
import logging

import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.planning.director import (
    OLLAMA_REFINE_SCHEMA,
    REASON_CHARS,
    Director,
    DirectorChain,
    redact_text,
    shot_type,
)
from anime_pipeline.planning.local import NAME as LOCAL_NAME
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.planning.plans import DialogueLine, PlannedShot
from anime_pipeline.planning.story import propose
from anime_pipeline.services.echo_brain import EchoBrainClient
from anime_pipeline.services.ollama import OllamaClient
from tests.services.fake_echo_brain import LEARN, PLAN, FakeEchoBrain
from tests.services.fake_ollama import FakeOllama, unused_url

PROMPT = "1girl, courier, lantern-lit street"
SCENE = "Mio delivers a letter at night."
SECRET = "s3cr3t-pa55"


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


@pytest.fixture
def echo():
    with FakeEchoBrain() as server:
        yield server


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


def echo_client(url: str) -> EchoBrainClient:
    return EchoBrainClient(url, timeout=2, retries=0)


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://director:{SECRET}@")


class BuggyEchoBrain(EchoBrainClient):
    """Echo Brain's client with a bug in its answer handling: an error that is not EchoBrainError."""

    def refine_prompt(self, prompt, context):
        raise KeyError("refined_prompt")

    def learn(self, scores):
        raise KeyError("patterns")


def test_the_chain_and_the_local_planner_fill_the_protocol():
    for director in (DirectorChain(None, None), LocalPlanner()):
        for method in ("refine_prompt", "plan_scene", "send_feedback"):
            assert inspect.signature(getattr(type(director), method)) == inspect.signature(getattr(Director, method))
        assert isinstance(director.name, str)


# --- prompt refinement ----------------------------------------------------------------------------

def test_echo_brain_answers_first(echo):
    refinement = DirectorChain(echo_client(echo.url), None).refine_prompt(PROMPT, "night", "hushed")
    assert refinement.path == ("echo_brain: ok",)
    assert refinement.refined.endswith("soft bloom") and refinement.negative_additions == ("overexposed",)
    assert refinement.source == f"echo brain ({echo.url})"


def test_echo_brain_down_falls_back_to_ollama(ollama):
    ollama.answer({"style_additions": ["moonlight", " "], "negative_additions": ["daylight"]})
    director = DirectorChain(echo_client(unused_url()), OllamaClient(ollama.url, timeout=2), "gemma3")
    refinement = director.refine_prompt(PROMPT, "night", "hushed")
    failed, answered = refinement.path
    assert failed.startswith("echo_brain: EchoBrainUnavailable: ") and failed.endswith("(connection refused)")
    assert answered == "ollama: ok" and refinement.source == "ollama (gemma3)"
    assert refinement.refined == f"{PROMPT}, moonlight" and refinement.negative_additions == ("daylight",)
    (body,) = ollama.chats
    assert body["format"] == OLLAMA_REFINE_SCHEMA and body["options"]["temperature"] == 0.0
    assert "night" in body["messages"][-1]["content"] and "hushed" in body["messages"][-1]["content"]


def test_both_down_fall_back_to_the_local_planner(echo):
    echo.status = 500
    director = DirectorChain(echo_client(echo.url), OllamaClient(unused_url()), "gemma3")
    refinement = director.refine_prompt(PROMPT, "night", "hushed")
    assert refinement.path[0].startswith("echo_brain: EchoBrainUnavailable") and "HTTP 500" in refinement.path[0]
    assert refinement.path[1].startswith("ollama: OllamaUnavailable") and "connection refused" in refinement.path[1]
    assert refinement.path[2:] == ("local: ok",) and refinement.source == LOCAL_NAME
    assert refinement.refined == LocalPlanner().refine_prompt(PROMPT, "night", "hushed").refined


def test_a_missing_ollama_model_and_unconfigured_services_are_recorded(ollama):
    refinement = DirectorChain(None, OllamaClient(ollama.url), "llava").refine_prompt(PROMPT, "dusk")
    assert refinement.path[0] == "echo_brain: not configured"
    assert refinement.path[1].startswith("ollama: ModelMissing") and "ollama pull llava" in refinement.path[1]
    assert refinement.path[2] == "local: ok"
    assert DirectorChain(None, None).refine_prompt(PROMPT).path == (
        "echo_brain: not configured", "ollama: not configured", "local: ok")


def test_a_long_failure_is_shortened_to_one_line(ollama):
    ollama.server_error = "out of memory\n" + "x" * 5000
    refinement = DirectorChain(None, OllamaClient(ollama.url, retries=0)).refine_prompt(PROMPT)
    entry = refinement.path[1]
    assert entry.startswith("ollama: OllamaServerError") and "out of memory" in entry
    assert len(entry) == len("ollama: ") + REASON_CHARS and entry.endswith("…") and "\n" not in entry


def test_an_error_that_is_not_the_clients_root_error_is_a_bug_and_propagates(echo):
    director = DirectorChain(BuggyEchoBrain(echo.url), None)
    with pytest.raises(KeyError, match="refined_prompt"):
        director.refine_prompt(PROMPT)
    with pytest.raises(KeyError, match="patterns"):
        director.send_feedback({"clarity": 0.7})


# --- scene planning -------------------------------------------------------------------------------

def test_echo_brain_plans_the_scene(echo, show):
    plan = DirectorChain(echo_client(echo.url), None).plan_scene(show, SCENE, ["mio"])
    assert plan.shots == (PlannedShot("establishing", 4.0, ("mio",)), PlannedShot("close-up", 2.5, ("mio",)))
    assert plan.path == ("echo_brain: ok",) and plan.source == f"echo brain ({echo.url})"
    assert echo.requests[-1].body == {"session_id": show.show.slug, "scene_description": SCENE,
                                      "characters": ["mio"]}


def test_an_empty_shot_list_moves_on_like_a_failure(echo, ollama, show):
    echo.answers[PLAN]["shot_list"] = []
    ollama.answer({"shots": [{"type": "wide", "duration": 3, "characters": [], "dialogue": []},
                             {"type": "medium", "duration": 2.5, "characters": ["mio"],
                              "dialogue": [{"speaker": "mio", "line": "Another night."},
                                           {"speaker": "hoshi", "line": "(not in this shot)"}]}]})
    director = DirectorChain(echo_client(echo.url), OllamaClient(ollama.url))
    plan = director.plan_scene(show, SCENE, ["mio", "hoshi"])
    assert plan.path == ("echo_brain: no shots returned", "ollama: ok")
    assert plan.shots == (PlannedShot("wide", 3.0, ("mio", "hoshi")),  # no cast given: the scene's
                          PlannedShot("medium", 2.5, ("mio",), (DialogueLine("mio", "Another night."),)))


def test_scene_planning_falls_back_to_local_coverage(show):
    plan = DirectorChain(echo_client(unused_url()), OllamaClient(unused_url())).plan_scene(show, SCENE, ["mio"])
    assert [entry.split(":")[0] for entry in plan.path] == ["echo_brain", "ollama", "local"]
    assert plan.shots == LocalPlanner().plan_scene(show, SCENE, ["mio"]).shots and plan.source == LOCAL_NAME


def test_camera_angles_map_to_motion_presets():
    assert shot_type("Extreme close-up on the eyes") == "extreme_close-up"
    assert shot_type("over-the-shoulder") == "medium"
    assert shot_type("dynamic action tracking") == "action"


# --- feedback -------------------------------------------------------------------------------------

def test_feedback_reports_whether_echo_brain_took_it(echo):
    assert DirectorChain(echo_client(echo.url), None).send_feedback({"clarity": 0.7}) is True
    assert echo.requests[-1].body == {"scores": {"clarity": 0.7}}
    del echo.answers[LEARN]["patterns"]
    assert DirectorChain(echo_client(echo.url), None).send_feedback({"clarity": 0.7}) is False
    assert DirectorChain(echo_client(unused_url()), None).send_feedback({"clarity": 0.7}) is False
    assert DirectorChain(None, None).send_feedback({"clarity": 0.7}) is False


# --- secrets --------------------------------------------------------------------------------------

def test_redact_text_removes_the_credentials_of_every_url():
    text = ("Echo Brain at http://u:p@ss@host:8309/api is down; retried https://tok@10.0.0.2:1 and "
            "http://plain:80/x (user@example is no URL)")
    assert redact_text(text) == ("Echo Brain at http://host:8309/api is down; retried https://10.0.0.2:1 and "
                                 "http://plain:80/x (user@example is no URL)")


def logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def test_no_credential_reaches_a_path_a_proposal_or_a_log(echo, ollama, show, caplog):
    """Echo Brain refuses (HTTP 400) and Ollama lacks the model: both errors' messages name the
    server's URL, credentials and all; the director records them without."""
    caplog.set_level(logging.DEBUG)
    echo.status = 400
    ollama.models = []
    director = DirectorChain(echo_client(with_credentials(echo.url)), OllamaClient(with_credentials(ollama.url)))

    refinement = director.refine_prompt(PROMPT, "night", "hushed")
    breakdown = propose(show, director)
    sent = director.send_feedback({"clarity": 0.7})

    assert [entry.split(":")[0] for entry in refinement.path] == ["echo_brain", "ollama", "local"]
    assert echo.url in refinement.path[0] and ollama.url in refinement.path[1]  # the server is still named
    assert sent is False and echo.requests[-1].path == LEARN
    recorded = [*refinement.path, refinement.source, *breakdown.path, breakdown.text]
    assert all(SECRET not in text for text in recorded), recorded
    assert "director: feedback to Echo Brain failed" in logged(caplog)
    assert SECRET not in logged(caplog)


def test_the_echo_brain_source_names_the_server_without_credentials(echo):
    refinement = DirectorChain(echo_client(with_credentials(echo.url)), None).refine_prompt(PROMPT)
    assert refinement.source == f"echo brain ({echo.url})" and refinement.path == ("echo_brain: ok",)
