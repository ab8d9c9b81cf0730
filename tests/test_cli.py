from __future__ import annotations

import yaml

from anime_pipeline.cli import main
from tests.services.fake_ollama import unused_url


def test_validate_ok(configs_dir, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    assert main(["validate"]) == 0
    assert "ok — 'Lantern Post': 2 characters, 1 episodes, 5 shots" in capsys.readouterr().out


def test_validate_bad_file_is_one_clear_line(tmp_path, sample_text, capsys):
    data = yaml.safe_load(sample_text)
    data["episodes"][0]["scenes"][1]["shots"][0]["duration"] = 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"{bad}:") and "episodes[0].scenes[1].shots[0].duration: Input should be greater than 0.5" in err[0]
    assert "Traceback" not in err[0]


def test_validate_checks_and_reports_every_file(configs_dir, sample_text, monkeypatch, capsys):
    (configs_dir / "a_latin1.yaml").write_bytes(sample_text.replace("Lantern Post", "Lantern P\u00f6st").encode("latin-1"))
    (configs_dir / "b_deep.yaml").write_text("show: " + "[" * 1000 + "]" * 1000 + "\n")
    (configs_dir / "c_copy.yaml").write_text(sample_text)  # the same show slug as lantern_post.yaml
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    assert main(["validate"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in captured.err
    assert err[0].startswith(f"{configs_dir / 'a_latin1.yaml'}:5: <file>: byte 0xf6 at column 19 is not UTF-8")
    assert err[1].startswith(f"{configs_dir / 'b_deep.yaml'}:1: ") and "nest" in err[1]
    slug_line = (configs_dir / "lantern_post.yaml").read_text().splitlines().index("  slug: lantern-post") + 1
    assert err[2] == (f"{configs_dir / 'lantern_post.yaml'}:{slug_line}: show.slug: show slug 'lantern-post' is already used by "
                      f"{configs_dir / 'c_copy.yaml'}")
    assert captured.out == f"{configs_dir / 'c_copy.yaml'}: ok — 'Lantern Post': 2 characters, 1 episodes, 5 shots\n"


def test_unknown_character_for_review_names_the_fix(configs_dir, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    assert main(["review", "list", "lantern-post/nobody"]) == 2
    err = capsys.readouterr().err
    assert "unknown character 'lantern-post/nobody'" in err and "fix: choose one of" in err


def test_review_decisions_are_appended_and_survive(configs_dir, tmp_path, monkeypatch, capsys):
    from anime_pipeline.paths import StoragePaths
    from anime_pipeline.production.candidates import DecisionLog, dataset_state
    from tests.studio.studio_data import make_candidates

    storage = tmp_path / "storage"
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(storage))
    paths = StoragePaths(storage)
    key = "lantern-post/hoshi"
    make_candidates(configs_dir, storage, key, 2)  # hoshi is not human: both wait for a person
    assert [c.id for c in dataset_state(paths.candidates(key), DecisionLog(paths.decisions_log(key))).pending] == [
        "c0000", "c0001"]
    assert main(["review", "approve", key, "c0000", "--user", "ana"]) == 0
    assert main(["review", "reject", key, "--all-pending", "--user", "ana", "--reason", "off-model"]) == 0
    with open(paths.decisions_log(key), "a") as fh:
        fh.write('{"candidate": "c0001", "decis')  # a crash mid-append must not lose earlier decisions
    state = dataset_state(paths.candidates(key), DecisionLog(paths.decisions_log(key)))
    assert [c.id for c in state.approved] == ["c0000"] and [c.id for c in state.rejected] == ["c0001"]
    assert main(["review", "approve", key, "c9999"]) == 2


def test_sync_validates_and_reloads_then_status_lists_every_artifact(configs_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["sync", "--dagster-url", unused_url()]) == 0
    out = capsys.readouterr().out
    assert "valid — 2 characters, 5 shots, 2 scenes, 1 episodes in 1 show(s)" in out and "no Dagster UI answers" in out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:]]
    assert len(rows) == 21 and {row[1] for row in rows} >= {"shot_clip", "scene_video", "jellyfin_publish"}
    assert ["lantern-post/ep01/sc02/sh02", "shot_clip", "not", "materialized", "MISSING"] == rows[
        [row[:2] for row in rows].index(["lantern-post/ep01/sc02/sh02", "shot_clip"])][:5]
    assert (tmp_path / "home" / "dagster.yaml").exists()


def test_backfill_unknown_episode_is_a_clear_error(configs_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert main(["backfill", "lantern-post/ep09"]) == 2
    err = capsys.readouterr().err
    assert "unknown episode(s) ['lantern-post/ep09']" in err and "fix:" in err


def test_models_lists_every_metric_and_its_active_fallback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_MODELS", str(tmp_path / "models"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for metric in ("identity", "temporal_lpips", "motion_smoothness", "subject_consistency", "aesthetic"):
        assert f"  {metric} " in out
    assert "active: weight-free: palette signature" in out and "not found" in out


def test_bad_environment_is_one_clear_line_for_every_command(monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_COMFYUI_URLS", "bogus")
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "ANIME_PIPELINE_COMFYUI_URLS: 'bogus' should look like 0=http://127.0.0.1:8188" in err
    assert "Traceback" not in err


def test_reproduce_a_shot_never_rendered_says_what_to_do(configs_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANIME_PIPELINE_CONFIGS", str(configs_dir))
    monkeypatch.setenv("ANIME_PIPELINE_STORAGE", str(tmp_path / "storage"))
    assert main(["reproduce", "shot_clip", "lantern-post/ep01/sc01/sh01"]) == 2
    err = capsys.readouterr().err
    assert "lantern-post/ep01/sc01/sh01 has no recorded render" in err
    assert "fix: materialize its shot_clip first (anime-pipeline backfill lantern-post/ep01)" in err
