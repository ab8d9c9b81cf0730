import pytest

from anime_pipeline.config import Project
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.shot_clip import ShotManifest
from anime_pipeline.studio.manifests import RecordError, load_record

SHOT, SCENE, EPISODE = "lantern-post/ep01/sc01/sh02", "lantern-post/ep01/sc01", "lantern-post/ep01"


@pytest.fixture
def rendered(episode_storage):
    configs, root = episode_storage
    project = Project.load(configs)
    return project, StoragePaths(root)


def _load(kind, key, project, paths):
    cfg = project.shows["lantern-post"]
    return load_record(kind, key, paths, cfg.quality)


def test_a_shot_record_has_every_attempt_and_the_chosen_attempts_gates(rendered):
    project, paths = rendered
    record = _load("shot", SHOT, project, paths)
    manifest = ShotManifest.require(paths.shot(SHOT), SHOT)
    assert [a.number for a in record.attempts] == [a.attempt for a in manifest.attempts]
    chosen = manifest.chosen
    assert record.seed == chosen.seed and [a.chosen for a in record.attempts].count(True) == 1
    gates = {g.name: g for g in record.gates}
    assert set(gates) == {"identity", "temporal_stability", "motion_smoothness", "temporal_flickering", "not_a_still",
                          "frame_timing"}
    q = project.shows["lantern-post"].quality
    assert gates["temporal_stability"].value == round(chosen.scores.temporal_stability.value, 4)
    assert gates["temporal_stability"].threshold == q.temporal_lpips
    assert gates["temporal_stability"].passed == (chosen.scores.temporal_stability.value <= q.temporal_lpips)
    assert gates["identity"].value == round(chosen.scores.identity.value, 4)
    # the page shows what the checks recorded: the same gates, the same verdicts
    assert {g.name: g.passed for g in record.gates} == {r.name: r.passed for r in chosen.gates}
    assert (paths.root / record.video_path).is_file()


def test_a_stricter_threshold_fails_the_gate(rendered):
    project, paths = rendered
    strict = project.shows["lantern-post"].quality.model_copy(update={"motion_smoothness": 1.0})
    record = load_record("shot", SHOT, paths, strict)
    assert not next(g for g in record.gates if g.name == "motion_smoothness").passed


def test_scene_and_episode_records(rendered):
    project, paths = rendered
    scene = _load("scene", SCENE, project, paths)
    assert scene.parts == [f"{SCENE}/sh02", f"{SCENE}/sh03"] and scene.chapters == []
    from anime_pipeline.production.episode_video import GATES as EPISODE_GATES
    from anime_pipeline.production.scene_video import GATES as SCENE_GATES

    assert [g.name for g in scene.gates] == list(SCENE_GATES.names)  # the page shows the step's own gates
    assert next(g for g in scene.gates if g.name == "duration_exact").passed
    episode = _load("episode", EPISODE, project, paths)
    assert [c.key for c in episode.chapters] == [SCENE] and episode.chapters[0].start == 0.0
    assert [g.name for g in episode.gates] == list(EPISODE_GATES.names) and all(g.passed for g in episode.gates)
    assert (paths.root / episode.poster_path).is_file()


def test_never_rendered_is_none(rendered, tmp_path):
    project, _ = rendered
    assert _load("shot", SHOT, project, StoragePaths(tmp_path)) is None


@pytest.mark.parametrize("content", ["{not json", '{"kind": "shot_clip"}'])
def test_a_broken_manifest_names_the_file(rendered, tmp_path, content):
    project, _ = rendered
    paths = StoragePaths(tmp_path)
    paths.shot(SHOT).mkdir(parents=True)
    (paths.shot(SHOT) / "manifest.json").write_text(content)
    with pytest.raises(RecordError, match=f"{paths.shot(SHOT)}/manifest.json: not a shot manifest"):
        _load("shot", SHOT, project, paths)
