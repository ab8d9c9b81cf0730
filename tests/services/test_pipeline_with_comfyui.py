"""`renderer: comfyui` end to end: shots render through two in-process ComfyUI servers, one per GPU,
each step leasing its GPU's pool slot on a SQLite instance — two shots at once, never two on one card."""

from __future__ import annotations

import dataclasses
import multiprocessing
import time

import dagster as dg
import pytest
import yaml

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.definitions import build_definitions, characters_job_name
from anime_pipeline.paths import StoragePaths
from anime_pipeline.storage import read_json
from tests.deploy.services import wait_for
from tests.services.fake_comfyui import FakeComfyUI, provision
from tests.worlds import SAMPLE

RENDER_SECONDS = 0.5  # per prompt; the overlap comes from each card waiting for the other (first_waits_for)
SHOTS = ["lantern-post/ep01/sc01/sh02", "lantern-post/ep01/sc01/sh03"]
EPISODE_JOB = "lantern_post__episode_01"


def _write_show(configs, renderer: str) -> None:
    data = yaml.safe_load(SAMPLE.read_text())
    data["backends"] = {"renderer": renderer}
    data["quality"] = {"max_attempts": 1}  # one attempt per shot: the test is about where it renders
    (configs / SAMPLE.name).write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def studio(characters):
    """The characters built on previz (anchors, adapters: the suite's shared world), then the show switched to
    ComfyUI on two GPUs."""
    with FakeComfyUI(render_time=RENDER_SECONDS, video_frames=9, video_size=(64, 36)) as gpu0, \
            FakeComfyUI(render_time=RENDER_SECONDS, video_frames=9, video_size=(64, 36)) as gpu1:
        for fake in (gpu0, gpu1):
            provision(fake)
            fake.progress_steps = 10
        _write_show(characters.configs, "comfyui")
        yield characters.settings(comfyui_urls=(("0", gpu0.url), ("1", gpu1.url))), characters.home, (gpu0, gpu1)


def _render(settings, home, shot, results):
    """One run in its own process, as the run launcher would start it (in-process runs are not thread-safe)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = build_definitions(settings).resolve_job_def(EPISODE_JOB).execute_in_process(
            asset_selection=[asset_key("shot_clip", shot)], instance=instance, raise_on_error=False)
        results[shot] = (result.run_id, [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()])


def _busy_interval(fake: FakeComfyUI) -> tuple[float, float]:
    """From the server's own history: first execution start to last success, in seconds."""
    stamps = [data["timestamp"] / 1000 for entry in fake.history.values()
              for kind, data in entry["status"]["messages"] if kind in ("execution_start", "execution_success")]
    return min(stamps), max(stamps)


def test_two_shots_render_at_once_on_two_gpus(studio):
    settings, home, fakes = studio
    # each card's first render waits until the other card has started one: busy at once, whatever the timing
    fakes[0].first_waits_for, fakes[1].first_waits_for = fakes[1].started, fakes[0].started
    processes = multiprocessing.get_context("fork")
    with processes.Manager() as manager:
        shared = manager.dict()
        start = time.perf_counter()
        workers = [processes.Process(target=_render, args=(settings, home, shot, shared)) for shot in SHOTS]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        elapsed = time.perf_counter() - start
        results = dict(shared)
    assert all(results[s][1] == [f"{s}/shot_clip"] for s in SHOTS), results

    paths = StoragePaths(settings.storage_root)
    manifests = [read_json(paths.shot(s) / "manifest.json") for s in SHOTS]
    assert sorted(m["device"] for m in manifests) == ["0", "1"]  # one shot per card
    for manifest in manifests:
        params = manifest["attempts"][manifest["chosen_attempt"] - 1]["renderer_params"]
        assert manifest["backend"].startswith("comfyui 0.3.64")
        assert params["graph_sha256"] and params["graph"] and params["template"] == "i2v_wan22"
        assert params["keyframe"]["params"]["template"] == "txt2img_sdxl"
    # The two cards were busy at the same time: their render intervals overlap.
    busy = [_busy_interval(fake) for fake in fakes]
    overlap = min(busy[0][1], busy[1][1]) - max(busy[0][0], busy[1][0])
    assert overlap > RENDER_SECONDS / 2, f"cards busy {busy}: not parallel ({elapsed:.1f} s in all)"
    for fake in fakes:
        assert max(fake.queued.values()) == 1  # every prompt queued exactly once

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = results[SHOTS[0]][0]
        logs = [e.user_message for e in instance.all_logs(run_id)]
    assert any("claimed gpu-" in m for m in logs), logs
    assert any("ComfyUI node" in m and "%" in m for m in logs), logs  # sampler progress in the Dagster logs


def _render_scoring_until(settings, home, shot, results, other_rendered):
    """`_render`, with the shot's gates still scoring until the card's server has started the other shot's
    render (or 30 s went by): recorded per shot, whether it did."""
    import anime_pipeline.production.shot_clip as shot_clip

    score = shot_clip.clip_scores

    def slow_scoring(measures):
        results[f"{shot} saw the other render"] = other_rendered.wait(30)
        return score(measures)

    shot_clip.clip_scores = slow_scoring
    _render(settings, home, shot, results)


def test_a_card_renders_the_next_shot_while_the_previous_one_scores(studio):
    settings, home, (card, _) = studio
    one_card = dataclasses.replace(settings, comfyui_urls=(("0", card.url),))
    processes = multiprocessing.get_context("fork")
    with processes.Manager() as manager:
        shared, other_rendered = manager.dict(), manager.Event()
        workers = [processes.Process(target=_render_scoring_until, args=(one_card, home, shot, shared, other_rendered))
                   for shot in SHOTS]
        for worker in workers:
            worker.start()
        # a shot is a keyframe and a clip: the third prompt is the second shot's, on the card the first one lent out
        wait_for(lambda: len(card.history) >= 3 or not any(w.is_alive() for w in workers), "a second shot's render",
                 90)
        other_rendered.set()
        for worker in workers:
            worker.join(timeout=120)
        results = dict(shared)
    assert all(results[s][1] == [f"{s}/shot_clip"] for s in SHOTS), results
    paths, order = StoragePaths(settings.storage_root), list(card.history)

    def clip_prompt(shot: str) -> str:
        return read_json(paths.shot(shot) / "manifest.json")["attempts"][0]["renderer_params"]["prompt_id"]

    first = next(s for s in SHOTS if clip_prompt(s) in order[:2])
    assert results[f"{first} saw the other render"], "the card stayed idle while the first shot scored"
    assert max(card.queued.values()) == 1


def test_reproduce_resubmits_the_recorded_graph(studio, monkeypatch, capsys):
    from anime_pipeline.cli import main

    settings, home, fakes = studio
    shot = SHOTS[0]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        build_definitions(settings).resolve_job_def(EPISODE_JOB).execute_in_process(
            asset_selection=[asset_key("shot_clip", shot)], instance=instance, raise_on_error=False)
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(settings.configs_dir))
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(settings.storage_root))
    monkeypatch.setenv("ANIME_PIPELINE_COMFYUI_URLS", f"0={fakes[0].url},1={fakes[1].url}")
    queued = [sum(f.queued.values()) for f in fakes]
    assert main(["reproduce", "shot_clip", shot]) == 0
    out = capsys.readouterr().out
    assert "frames identical" in out and "submitted graph identical" in out
    assert [sum(f.queued.values()) for f in fakes] != queued  # the recorded graphs really went to a server again


def test_reference_and_dataset_render_through_comfyui(studio):
    settings, home, fakes = studio
    key = "lantern-post/mio"
    show_file = settings.configs_dir / SAMPLE.name
    data = yaml.safe_load(show_file.read_text())
    data["characters"][0]["dataset_target"] = 9  # more than the previz run approved: new candidates are needed
    show_file.write_text(yaml.safe_dump(data, sort_keys=False))
    for fake in fakes:
        fake.render_time = 0.05
    with dg.DagsterInstance.from_config(str(home)) as instance:
        job = build_definitions(settings).resolve_job_def(characters_job_name("lantern-post"))
        reference = job.execute_in_process(instance=instance, raise_on_error=False,
                                           asset_selection=[asset_key("character_reference", key)])
        dataset = job.execute_in_process(instance=instance, raise_on_error=False,
                                         asset_selection=[asset_key("approved_dataset", key)])
    for result, asset in ((reference, "character_reference"), (dataset, "approved_dataset")):
        assert [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()] == [f"{key}/{asset}"]
    paths = StoragePaths(settings.storage_root)
    panel = read_json(paths.reference(key) / "manifest.json")["panels"][0]["renderer_params"]
    assert panel["template"] == "txt2img_sdxl" and panel["graph_sha256"] and panel["server"]["comfyui_version"]
    candidate = read_json(sorted(paths.candidates(key).glob("c*.json"))[-1])
    assert candidate["renderer"]["backend"].startswith("comfyui 0.3.64")
    assert candidate["renderer"]["params"]["ip_adapter"]  # the reference sheet's front pose conditions new images
    # The fake's flat images show no face: the gate says so instead of passing them.
    checks = {e.check_name: e.passed for e in reference.get_asset_check_evaluations()}
    assert checks["faces_found"] is False
