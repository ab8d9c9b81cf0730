"""The ACE-Step 1.5 client against a fake task API: queued → running → done / failed."""

from __future__ import annotations

import pytest

from anime_pipeline.services.ace_step import (
    AceStepBusy,
    AceStepClient,
    AceStepError,
    AceStepProtocolError,
    AceStepTaskFailed,
    AceStepTimeout,
    AceStepUnauthorized,
    AceStepUnavailable,
    MusicTask,
    parse_state,
)
from anime_pipeline.services.http import Deadline
from tests.services.fake_ace_step import FakeAceStep
from tests.services.fake_ollama import unused_url

TASK = MusicTask("instrumental anime background score, calm", 12.0, seed=1234)


def client(url: str, **kwargs) -> AceStepClient:
    return AceStepClient(url, poll_interval=0.01, **kwargs)


def test_release_poll_download() -> None:
    with FakeAceStep(queued_polls=2, running_polls=3) as server:
        track = client(server.url).generate(TASK)
    assert track.format == "wav" and track.data[:4] == b"RIFF"
    assert track.seed == "1234" and track.metas["duration"] == 12.0
    assert server.polls == 6  # 2 queued, 3 running, then done
    sent = server.released[0]
    assert (sent["use_random_seed"], sent["seed"], sent["lyrics"], sent["audio_duration"]) == (False, 1234, "", 12.0)
    assert sent["audio_format"] == "wav" and sent["task_type"] == "text2music"


def test_polls_start_fast_and_back_off_to_the_interval(monkeypatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(Deadline, "sleep", lambda self, seconds: waits.append(seconds))
    with FakeAceStep(queued_polls=3, running_polls=3) as server:
        AceStepClient(server.url, poll_interval=3.0).generate(TASK)
    assert waits == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]  # a short track is fetched early, a long one polled gently


def test_a_failed_task_names_its_error() -> None:
    with FakeAceStep(fail_with="CUDA out of memory") as server:
        with pytest.raises(AceStepTaskFailed, match="failed: CUDA out of memory"):
            client(server.url).generate(TASK)


def test_a_task_that_never_finishes_hits_the_total_deadline() -> None:
    with FakeAceStep(queued_polls=10_000) as server:
        with pytest.raises(AceStepTimeout, match=r"not finished within 0\.3 s \(queued\)"):
            AceStepClient(server.url, total_timeout=0.3, poll_interval=0.05).generate(TASK)


def test_bearer_key() -> None:
    with FakeAceStep(api_key="k3y-secret") as server:
        assert client(server.url, api_key="k3y-secret").generate(TASK).data
        with pytest.raises(AceStepUnauthorized, match="Invalid API key") as caught:
            client(server.url, api_key="wrong").generate(TASK)
    assert "wrong" not in str(caught.value) and "k3y" not in str(caught.value)


def test_queue_full_is_busy() -> None:
    with FakeAceStep(queue_full=True) as server:
        with pytest.raises(AceStepBusy, match="HTTP 429: Server busy: queue is full"):
            client(server.url).generate(TASK)


def test_validation_errors_name_the_field() -> None:
    detail = [{"loc": ["body", "inference_steps"], "msg": "Input should be less than or equal to 20"}]
    with FakeAceStep(reject_detail=detail) as server:
        with pytest.raises(AceStepError, match=r"HTTP 422: body\.inference_steps: Input should be less than"):
            client(server.url).generate(TASK)


def test_durations_outside_the_server_range_are_refused_before_sending() -> None:
    with pytest.raises(ValueError, match="10-600 s, not 5 s"):
        MusicTask("x", 5.0, 1).body()


def test_wrong_audio_bytes_are_refused() -> None:
    with FakeAceStep(wrong_audio=b'{"error": "not really audio"}' + b" " * 100) as server:
        with pytest.raises(AceStepProtocolError, match="is not audio"):
            client(server.url).generate(TASK)


def test_unreachable() -> None:
    with pytest.raises(AceStepUnavailable, match="connection refused"):
        client(unused_url()).generate(TASK)


@pytest.mark.parametrize("item,problem", [
    ({"task_id": "t", "status": 7}, "no status 0/1/2"),
    ({"task_id": "t", "status": 1, "result": "{not json"}, "not JSON"),
    ({"task_id": "t", "status": 1, "result": '{"file": "x"}'}, "not a list of objects"),
])
def test_malformed_query_results_are_protocol_errors(item, problem) -> None:
    with pytest.raises(AceStepProtocolError, match=problem):
        parse_state(item, "http://acestep")
