"""Story to shots: the proposed episode, planned by whichever director the show has."""


import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.planning.director import DirectorChain
from anime_pipeline.planning.local import LocalPlanner
from anime_pipeline.planning.story import propose, split_scenes
from anime_pipeline.services.echo_brain import EchoBrainClient
from anime_pipeline.services.ollama import OllamaClient
from tests.services.fake_echo_brain import FakeEchoBrain
from tests.services.fake_ollama import FakeOllama, unused_url


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


def test_local_breakdown_of_the_sample_storyline_validates(show):
    breakdown = propose(show, LocalPlanner())
    new = breakdown.config.episodes[-1]
    assert (new.slug, new.number) == ("ep02", 2)
    assert len(new.scenes) == len(split_scenes(show.show.storyline)) == 2
    assert all(shot.type in {"establishing", "medium", "close-up", "action"} for s in new.scenes for shot in s.shots)
    assert breakdown.config.episodes[0] == show.episodes[0]  # the user's episodes are kept as they are
    assert breakdown.path == ("scene 1: local: ok", "scene 2: local: ok")
    assert parse_show(breakdown.text) == breakdown.config


def test_echo_brain_shot_lists_are_used(show):
    with FakeEchoBrain() as echo:
        breakdown = propose(show, DirectorChain(EchoBrainClient(echo.url), None))
    shots = breakdown.config.episodes[-1].scenes[0].shots
    assert [s.type for s in shots] == ["establishing", "close-up"]  # "wide establishing", "medium close-up"
    assert [s.duration for s in shots] == [4.0, 2.5]
    assert breakdown.path[0] == "scene 1: echo_brain: ok"


def test_echo_brain_down_falls_back_to_ollama_with_dialogue(show):
    def answer(body):
        return {"shots": [{"type": "wide", "duration": 3, "characters": ["mio"],
                           "dialogue": [{"speaker": "mio", "line": "Another night, another letter."}]}]}

    with FakeOllama() as ollama:
        ollama.responder = answer
        director = DirectorChain(EchoBrainClient(unused_url(), retries=0), OllamaClient(ollama.url))
        breakdown = propose(show, director)
    shot = breakdown.config.episodes[-1].scenes[0].shots[0]
    assert shot.type == "wide" and shot.dialogue[0].line == "Another night, another letter."
    assert "echo_brain: EchoBrainUnavailable" in breakdown.path[0] and breakdown.path[0].endswith("ollama: ok")


def test_show_without_storyline_is_refused(show):
    bare = show.model_copy(update={"show": show.show.model_copy(update={"storyline": ""})})
    with pytest.raises(ValueError, match="show.storyline"):
        propose(bare, LocalPlanner())
