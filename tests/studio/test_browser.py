"""The studio in a real browser: Debian's chromium driven by Playwright (never `playwright install`).

Without chromium or the playwright package these tests skip, saying why; in CI (CI=1, set by
.ci/run) a missing browser is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from anime_pipeline import cli
from anime_pipeline.config import Project
from anime_pipeline.production.candidates import DecisionLog, dataset_state
from anime_pipeline.production.shot_clip import GATES as SHOT_GATES
from anime_pipeline.storage import read_jsonl
from tests.studio.studio_data import HOSHI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "1":
            pytest.fail(f"CI needs the browser tests: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []  # no script error on any page


def _expect():
    from playwright.sync_api import expect

    return expect


def _human(served) -> list[tuple[str, str, str, str]]:
    return [(e["candidate"], e["decision"], e["decider"], e["reason"])
            for e in read_jsonl(served.paths.decisions_log(HOSHI)) if e["decider"].startswith("human:")]


def test_review_with_the_keyboard_and_a_click_and_the_decisions_are_kept(served, page, monkeypatch, capsys):
    expect = _expect()
    queue_url = f"{served.url}/characters/{HOSHI}"
    page.goto(queue_url)
    expect(page.locator(".card")).to_have_count(6)
    page.fill("#reviewer", "alice")
    page.click("#c0000 img")  # focus the first image
    page.keyboard.press("a")
    expect(page.locator("#c0000")).to_have_attribute("data-status", "approved")
    page.keyboard.press("a")  # the focus moved on to the next image
    expect(page.locator("#c0001")).to_have_attribute("data-status", "approved")
    page.click("#c0003 [data-decide=approved]")
    expect(page.locator("#c0003")).to_have_attribute("data-status", "approved")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("/")
    page.keyboard.type("tail glow missing")
    page.keyboard.press("Enter")  # back to the images, the reason kept for the next decision
    page.keyboard.press("r")
    expect(page.locator("#c0004")).to_have_attribute("data-status", "rejected")
    expect(page.locator("#c0004 [data-role=last]")).to_contain_text("reject by human:alice: “tail glow missing”")
    expect(page.locator("#status")).to_contain_text("c0004 rejected by alice")

    page.reload()
    expect(page.locator(".card")).to_have_count(2)  # what still awaits review
    assert page.locator(".card").evaluate_all("cards => cards.map(c => c.id)") == ["c0002", "c0005"]
    assert page.input_value("#reviewer") == "alice"  # remembered by this browser
    page.goto(f"{queue_url}?view=all")
    statuses = page.locator(".card").evaluate_all("cards => cards.map(c => [c.id, c.dataset.status])")
    assert statuses == [["c0000", "approved"], ["c0001", "approved"], ["c0002", "pending"], ["c0003", "approved"],
                        ["c0004", "rejected"], ["c0005", "pending"]]

    assert _human(served) == [("c0000", "approve", "human:alice", ""), ("c0001", "approve", "human:alice", ""),
                              ("c0003", "approve", "human:alice", ""),
                              ("c0004", "reject", "human:alice", "tail glow missing")]
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(served.config.storage_root))
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(served.config.configs_dir))
    assert cli.main(["review", "list", HOSHI]) == 0
    listed = capsys.readouterr().out
    assert "awaiting review: 2" in listed and "approved: 3" in listed and "rejected: 1" in listed
    state = dataset_state(served.paths.candidates(HOSHI), DecisionLog(served.paths.decisions_log(HOSHI)))
    assert [c.id for c in state.approved] == ["c0000", "c0001", "c0003"]  # what approved_dataset assembles next


def test_bulk_decisions_and_back_to_pending(served, page):
    expect = _expect()
    page.goto(f"{served.url}/characters/{HOSHI}")
    page.click("#c0000 img")
    page.keyboard.press("a")
    expect(page.locator("#status")).to_contain_text('Enter your name in "reviewer" first')
    assert _human(served) == []  # nothing recorded without a name
    page.fill("#reviewer", "bob")
    page.click("#c0000 img")
    page.keyboard.press(" ")
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    expect(page.locator("#selection")).to_have_text("2 selected")
    page.fill("#reason", "same pose twice")
    page.click("[data-bulk=rejected]")
    expect(page.locator("#c0001")).to_have_attribute("data-status", "rejected")
    expect(page.locator("#c0000")).to_have_attribute("data-status", "rejected")
    page.goto(f"{served.url}/characters/{HOSHI}?view=rejected")
    expect(page.locator(".card")).to_have_count(2)
    page.click("#select-all")
    page.click("[data-bulk=pending]")
    expect(page.locator("#c0000")).to_have_attribute("data-status", "pending")
    expect(page.locator("#c0001")).to_have_attribute("data-status", "pending")
    assert _human(served) == [("c0000", "reject", "human:bob", "same pose twice"),
                              ("c0001", "reject", "human:bob", "same pose twice"),
                              ("c0000", "human_review", "human:bob", ""), ("c0001", "human_review", "human:bob", "")]


def test_the_players_play_the_clip_and_the_episode_with_subtitles(served_episode, page):
    page.goto(f"{served_episode.url}/shots/lantern-post/ep01/sc01/sh02")
    metadata = page.evaluate("""() => new Promise((resolve, reject) => {
        const video = document.getElementById("player");
        const done = () => resolve({duration: video.duration, width: video.videoWidth, height: video.videoHeight});
        if (video.readyState >= 1) done();
        video.addEventListener("loadedmetadata", done);
        video.addEventListener("error", () => reject(new Error("video error " + video.error.code)));
    })""")
    duration = Project.load(served_episode.config.configs_dir).shots["lantern-post/ep01/sc01/sh02"].shot.duration
    assert metadata["width"] == 320 and metadata["height"] == 180 and abs(metadata["duration"] - duration) < 0.1
    _expect()(page.locator("tr[data-gate]")).to_have_count(len(SHOT_GATES.names))

    page.goto(f"{served_episode.url}/episodes/lantern-post/ep01")
    cues = page.evaluate("""() => new Promise((resolve, reject) => {
        const track = document.querySelector("#player track");
        const done = () => resolve([...track.track.cues].map(c => [c.startTime, c.endTime, c.text]));
        if (track.readyState === 2) done();
        track.addEventListener("load", done);
        track.addEventListener("error", () => reject(new Error("subtitle track failed to load")));
    })""")
    assert [text for _, _, text in cues] == ["Mio Kagari: This address... nobody has lived there for ten years.",
                                             "Hoshi: Kyu!"]
    assert cues[1][0] >= duration - 0.3  # the second line starts in the second shot (after the 0.3 s overlap)
