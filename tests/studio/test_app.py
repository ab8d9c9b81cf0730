"""The studio over real HTTP (uvicorn on a loopback port): pages, decisions, guards, files, players."""

import dataclasses
import http.client
import json
import os
import re
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
import requests

from anime_pipeline.config import Project
from anime_pipeline.media.subtitles import format_webvtt, parse_srt
from anime_pipeline.production.replenishment import (
    CharacterReplenishment,
    Counts,
    GuardState,
    LastBatch,
)
from anime_pipeline.production.shot_clip import GATES as SHOT_GATES
from anime_pipeline.storage import read_jsonl
from anime_pipeline.studio.models import ReplenishmentView
from anime_pipeline.studio.security import Secret
from anime_pipeline.studio.urls import PAGES, studio_url
from tests.studio.studio_data import CSRF, HOSHI, serve_in_thread

TOKEN = "a-long-random-studio-token-42"
API = f"/api/decisions/{HOSHI}"


def _post(session, url, csrf, payload, **headers):
    return session.post(url + API, data=json.dumps(payload), timeout=10,
                        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf, **headers})


def _log(served):
    return read_jsonl(served.paths.decisions_log(HOSHI))


def _raw_get(url: str, path: str, host: str | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("GET", path, skip_host=host is not None)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def test_the_queue_page_shows_each_candidate_its_verdict_and_the_reference_sheet(served):
    page = requests.get(f"{served.url}/characters/{HOSHI}", timeout=10)
    assert page.status_code == 200
    html = page.text
    for i in range(6):
        record = json.loads((served.paths.candidates(HOSHI) / f"c{i:04d}.json").read_text())
        assert f'data-id="c{i:04d}"' in html and f"score {record['verdict']['score']:.2f}" in html
    assert "no human hands" in html and "glowing tail" in html and "species" in html
    assert f"/files/{HOSHI.replace('/', '/characters/')}/reference/sheet.png" in html
    assert "<kbd>a</kbd> approve" in html and "replenishment not configured" in html
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_a_decision_from_the_studio_page_lands_in_the_decision_log(served):
    session, csrf = served.browser_session(f"/characters/{HOSHI}")
    response = _post(session, served.url, csrf, {"ids": ["c0001", "c0004"], "status": "approved", "user": "alice",
                                                 "reason": "species right"})
    assert response.status_code == 200, response.text
    human = [e for e in _log(served) if e["decider"].startswith("human:")]
    assert [(e["candidate"], e["decision"], e["decider"], e["reason"]) for e in human] == [
        ("c0001", "approve", "human:alice", "species right"), ("c0004", "approve", "human:alice", "species right")]
    approved = session.get(f"{served.url}/characters/{HOSHI}?view=approved", timeout=10).text
    assert 'data-id="c0001"' in approved and 'data-id="c0002"' not in approved


@pytest.mark.parametrize("change", ["no origin", "other port", "other site", "no csrf", "other session's csrf"])
def test_a_write_from_anywhere_but_the_studios_own_page_is_refused(served, change):
    session, csrf = served.browser_session()
    headers = {}
    if change == "no origin":
        del session.headers["Origin"]
    elif change == "other port":
        headers["Origin"] = served.url.rsplit(":", 1)[0] + ":3000"  # e.g. the Dagster UI
    elif change == "other site":
        headers["Origin"] = "http://evil.example"
    elif change == "no csrf":
        csrf = ""
    else:
        csrf = served.browser_session()[1]
    before = _log(served)
    response = _post(session, served.url, csrf, {"ids": ["c0000"], "status": "approved", "user": "mallory"}, **headers)
    assert response.status_code == 403 and "refused" in response.json()["error"]
    assert _log(served) == before


def test_with_a_token_writing_needs_sign_in_or_the_bearer_token(studio_config):
    config = dataclasses.replace(studio_config, token=Secret(TOKEN))
    with serve_in_thread(config) as url:
        responses = []
        session = requests.Session()
        csrf = CSRF.search(session.get(f"{url}/characters/{HOSHI}", timeout=10).text).group(1)
        session.headers["Origin"] = url
        payload = {"ids": ["c0000"], "status": "approved", "user": "alice"}
        responses.append(_post(session, url, csrf, payload))
        assert responses[-1].status_code == 401 and "sign in" in responses[-1].json()["error"]
        responses.append(session.post(f"{url}/login", data={"csrf": csrf, "token": "wrong-token-wrong-token", "next": "/x"},
                                      allow_redirects=False, timeout=10))
        assert responses[-1].status_code == 401 and "ap_studio_auth" not in session.cookies
        responses.append(session.post(f"{url}/login", data={"token": TOKEN}, allow_redirects=False, timeout=10))
        assert responses[-1].status_code == 403  # sign-in form without its CSRF token
        responses.append(session.post(f"{url}/login", data={"csrf": csrf, "token": TOKEN, "next": "//evil.example/"},
                                      allow_redirects=False, timeout=10))
        assert responses[-1].status_code == 303 and responses[-1].headers["location"] == "/"  # no open redirect
        responses.append(_post(session, url, csrf, payload))
        assert responses[-1].status_code == 200
        script = requests.post(url + API, json={**payload, "ids": ["c0001"]}, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        wrong = requests.post(url + API, json=payload, timeout=10, headers={"Authorization": "Bearer nope"})
        responses += [script, wrong]
        assert script.status_code == 200 and wrong.status_code == 401
        for response in responses:
            assert TOKEN not in response.text and TOKEN not in str(response.headers)
    log = read_jsonl(config.storage_root / HOSHI.replace("/", "/characters/") / "decisions.jsonl")
    assert [e["candidate"] for e in log if e["decider"] == "human:alice"] == ["c0000", "c0001"]
    assert TOKEN not in json.dumps(log)


@pytest.mark.parametrize("payload,status,error", [
    ({"ids": ["c0000", "c9999"], "status": "approved", "user": "a"}, 400, "no candidate.*c9999"),
    ({"ids": ["c0000"], "status": "maybe", "user": "a"}, 400, "^status: "),
    ({"ids": ["c0000"], "status": "approved"}, 400, "^user: "),
    ("not json", 400, "not valid JSON"),
    ({"ids": ["c0000"], "status": "approved", "user": "a", "reason": "x" * 70_000}, 413, "over 65536 bytes"),
])
def test_a_bad_decision_request_is_refused_whole_and_names_the_field(served, payload, status, error):
    session, csrf = served.browser_session()
    before = _log(served)
    body = payload if isinstance(payload, str) else json.dumps(payload)
    response = session.post(served.url + API, data=body, timeout=10,
                            headers={"Content-Type": "application/json", "X-CSRF-Token": csrf})
    assert response.status_code == status and re.search(error, response.json()["error"])
    assert _log(served) == before


def test_unknown_pages_and_views(served):
    assert requests.get(f"{served.url}/characters/lantern-post/nobody", timeout=10).status_code == 404
    assert requests.get(f"{served.url}/characters/lantern-post/Hoshi", timeout=10).status_code == 404
    bad_view = requests.get(f"{served.url}/characters/{HOSHI}?view=everything", timeout=10)
    assert bad_view.status_code == 400 and "view: expected one of" in bad_view.text


def test_a_request_for_a_foreign_host_name_is_refused(served):
    """A page on another site whose name resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    port = urlsplit(served.url).port
    assert _raw_get(served.url, f"/characters/{HOSHI}", host=f"evil.example:{port}")[0] == 421
    assert _raw_get(served.url, f"/characters/{HOSHI}", host=f"localhost:{port}")[0] == 200


SECRET = b"outside the storage root"
ESCAPES = [
    "/files/../secret.png", "/files/%2e%2e/secret.png", "/files/%2E%2E%2Fsecret.png", "/files/..%2fsecret.png",
    "/files/lantern-post/../../secret.png", "/files/lantern-post/%2e%2e/%2e%2e/secret.png",
    "/files/%252e%252e/secret.png", "/files//%2e%2e/secret.png", "/files/%2Fsecret.png", "/files/..\\secret.png",
    "/files/{outside}", "/files/%2F{outside}", "/files/lantern-post/out/secret.png", "/files/lantern-post/link.png",
    "/files/lantern-post/.c0000.tmp.png", "/files/lantern-post/secret.png%00.png",
]


def test_a_file_url_never_escapes_the_storage_root(served):
    root = served.config.storage_root
    outside = root.parent / "secret.png"
    outside.write_bytes(SECRET)
    os.symlink(root.parent, root / "lantern-post" / "out")
    os.symlink(outside, root / "lantern-post" / "link.png")
    (root / "lantern-post" / ".c0000.tmp.png").write_bytes(SECRET)  # an atomic writer's temporary
    for path in ESCAPES:
        status, body = _raw_get(served.url, path.replace("{outside}", str(outside)))
        assert status == 404 and SECRET not in body, path
    inside = _raw_get(served.url, f"/files/{HOSHI.replace('/', '/characters/')}/candidates/c0000.png")
    assert inside[0] == 200 and inside[1].startswith(b"\x89PNG")


def _view() -> ReplenishmentView:
    at = datetime(2026, 5, 1, 12, 4, 10, tzinfo=timezone.utc).timestamp()
    guards = (GuardState(guard="cooldown", holds=True, detail="last batch 20 s ago; 60 s apart", until=at),
              GuardState(guard="awaiting_review", holds=False, detail="2 of 3 awaiting review"))
    last = LastBatch(batch=3, started_at="2026-05-01T12:03:10Z", finished_at="2026-05-01T12:03:40Z",
                     made=("c0006", "c0007", "c0008"), automatic={"c0006": "approve", "c0007": "human_review"},
                     learner="poses first: leaping is under-represented")
    state = CharacterReplenishment(
        key=HOSHI, name="Hoshi", counts=Counts(target=4, approved=1, awaiting_review=2, rejected=0,
                                               consecutive_rejects=0, has_anchor=True),
        batches_today=3, in_flight=("run-abc",), guards=guards, held_by="cooldown", next_eligible_at=at,
        last_batch=last, latest=None)
    return ReplenishmentView(True, state)


def test_the_replenishment_state_is_shown_as_the_sensor_gives_it(studio_config):
    calls = []

    def source(key):
        calls.append(key)
        return _view()

    with serve_in_thread(dataclasses.replace(studio_config, replenishment=source)) as url:
        html = requests.get(f"{url}/characters/{HOSHI}", timeout=10).text
    assert calls == [HOSHI]
    for text in ("sensor <b>on</b>", "3 batches today", "1 in flight", "held by cooldown until 2026-05-01T12:04:10+00:00",
                 "holding: last batch 20 s ago; 60 s apart", "clear: 2 of 3 awaiting review",
                 "last batch 3", "c0006 approve", "poses first: leaping is under-represented"):
        assert text in html


@pytest.mark.parametrize("source,shown", [(lambda key: None, "Hoshi is not replenished"),
                                          (lambda key: 1 / 0, "replenishment state unavailable: ZeroDivisionError")])
def test_the_review_queue_works_whatever_the_replenishment_source_says(studio_config, source, shown):
    with serve_in_thread(dataclasses.replace(studio_config, replenishment=source)) as url:
        page = requests.get(f"{url}/characters/{HOSHI}", timeout=10)
    assert page.status_code == 200 and shown in page.text and 'data-id="c0005"' in page.text


def test_every_studio_url_opens_its_page(served_episode):
    project = Project.load(served_episode.config.configs_dir)
    keys = {"characters": "lantern-post/hoshi", "shots": next(iter(project.shots)),
            "scenes": next(iter(project.scenes)), "episodes": next(iter(project.episodes))}
    for kind, page in PAGES.items():
        key = keys[page.prefix] + ("/c0000" if kind == "candidate" else "")
        response = requests.get(studio_url(kind, key, base=served_episode.url), timeout=10)
        assert response.status_code == 200, (kind, response.text[:300])
    index = requests.get(served_episode.url, timeout=10).text
    assert all(f'href="/shots/{k}"' in index for k in project.shots)


def test_the_shot_page_shows_the_clip_every_attempt_and_each_gate(served_episode):
    key = "lantern-post/ep01/sc01/sh02"
    html = requests.get(f"{served_episode.url}/shots/{key}", timeout=10).text
    manifest = json.loads((served_episode.paths.shot(key) / "manifest.json").read_text())
    assert f'src="/files/{key.replace("/ep01", "/episodes/ep01").replace("/sc01", "/scenes/sc01").replace("/sh02", "/shots/sh02")}/clip.mp4"' in html
    for gate in SHOT_GATES.names:
        assert f'data-gate="{gate}"' in html
    for attempt in manifest["attempts"]:
        assert f'data-attempt="{attempt["attempt"]}"' in html and f"<td>{attempt['seed']}</td>" in html


def test_subtitles_are_webvtt_from_the_srt_files(served_episode):
    scene_dir = served_episode.paths.scene("lantern-post/ep01/sc01")
    expected = format_webvtt(parse_srt((scene_dir / "scene.srt").read_text()))
    for path in ("/subtitles/scenes/lantern-post/ep01/sc01.vtt", "/subtitles/episodes/lantern-post/ep01.vtt"):
        response = requests.get(served_episode.url + path, timeout=10)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/vtt")
        assert response.text == expected  # one scene, from 0 s: the same cues
    assert "Kyu!" in expected


def test_an_unrendered_or_broken_artifact_says_so(served_episode, tmp_path):
    configs, root = served_episode.config.configs_dir, tmp_path / "empty"
    key = "lantern-post/ep01/sc01/sh02"
    with serve_in_thread(dataclasses.replace(served_episode.config, storage_root=root)) as url:
        page = requests.get(f"{url}/shots/{key}", timeout=10)
        assert page.status_code == 200 and f"Not rendered yet: materialize shot_clip for {key}" in page.text
        assert requests.get(f"{url}/subtitles/episodes/lantern-post/ep01.vtt", timeout=10).status_code == 404
        broken = root / "lantern-post/episodes/ep01/scenes/sc01/shots/sh02/manifest.json"
        broken.parent.mkdir(parents=True)
        broken.write_text('{"kind": "shot_clip"}')
        page = requests.get(f"{url}/shots/{key}", timeout=10)
        assert page.status_code == 500 and f"{broken}: not a shot manifest" in page.text
    assert configs.exists()
