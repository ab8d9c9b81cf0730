import pytest
import yaml

from anime_pipeline.config import ConfigError, Project, parse_show
from anime_pipeline.config.schema import Quality


def _mutate(text: str, change) -> str:
    data = yaml.safe_load(text)
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_show(text, "shows/bad.yaml")
    return [f"{p.field}: {p.reason}" for p in info.value.problems]


def test_sample_show_is_valid(sample_text):
    config = parse_show(sample_text)
    assert len(config.characters) >= 2
    assert any(not c.appearance.is_human for c in config.characters)
    shots = [s for e in config.episodes for sc in e.scenes for s in sc.shots]
    assert len(shots) >= 5 and sum(bool(s.dialogue) for s in shots) > len(shots) / 2
    assert sum(len(e.scenes) for e in config.episodes) >= 2


def test_quality_defaults_are_the_spec_thresholds():
    q = Quality()
    assert (q.identity, q.aesthetic, q.style_adherence) == (0.70, 5.5, 0.85)
    assert (q.temporal_lpips, q.motion_smoothness, q.subject_consistency, q.scene_continuity) == (0.15, 0.95, 0.90, 0.85)
    assert q.phase_pass_rate == 0.80 and q.retry_thresholds == [0.6, 0.45, 0.3]
    assert (q.review.auto_reject_below, q.review.auto_approve_at) == (0.4, 0.8)


def test_bad_duration_names_file_path_and_line(sample_text):
    text = _mutate(sample_text, lambda d: d["episodes"][0]["scenes"][1]["shots"].__getitem__(1).update(duration=-1))
    with pytest.raises(ConfigError) as info:
        parse_show(text, "shows/bad.yaml")
    message = str(info.value)
    assert "shows/bad.yaml:" in message
    assert "episodes[0].scenes[1].shots[1].duration" in message
    assert "greater than 0.5" in message
    assert info.value.problems[0].line is not None


def test_unknown_key_is_rejected(sample_text):
    text = _mutate(sample_text, lambda d: d["characters"][0].update(hair_colour="red"))
    assert _problems(text) == ["characters[0].hair_colour: unknown key (check the spelling; see the README's show file reference)"]


def test_unknown_character_in_shot(sample_text):
    text = _mutate(sample_text, lambda d: d["episodes"][0]["scenes"][0]["shots"][1].update(characters=["nobody"]))
    (problem,) = _problems(text)
    assert problem.startswith("episodes[0].scenes[0].shots[1].characters[0]: unknown character 'nobody'")


def test_unknown_speaker(sample_text):
    def change(d):
        d["episodes"][0]["scenes"][0]["shots"][0]["dialogue"][0]["speaker"] = "ghost"
    (problem,) = _problems(_mutate(sample_text, change))
    assert problem.startswith("episodes[0].scenes[0].shots[0].dialogue[0].speaker: unknown character 'ghost'")


def test_duplicate_character_slug(sample_text):
    def change(d):
        d["characters"][1]["slug"] = d["characters"][0]["slug"]
    problems = _problems(_mutate(sample_text, change))
    assert problems[0] == "characters[1].slug: duplicate character slug 'mio' (first at index 0)"


def test_duplicate_shot_slug(sample_text):
    def change(d):
        d["episodes"][0]["scenes"][0]["shots"][2]["slug"] = "sh01"
    (problem,) = _problems(_mutate(sample_text, change))
    assert problem.startswith("episodes[0].scenes[0].shots[2].slug: duplicate shot slug 'sh01'")


@pytest.mark.parametrize("slug", ["../escape", "a/b", "/abs", "Upper", "", "with space", ".."])
def test_slugs_that_would_escape_storage_are_rejected(sample_text, slug):
    def change(d):
        d["characters"][0]["slug"] = slug
    problems = _problems(_mutate(sample_text, change))
    assert any(p.startswith("characters[0].slug:") and "not a valid slug" in p for p in problems)


def test_bad_colour_and_shot_type(sample_text):
    def change(d):
        d["characters"][0]["appearance"]["key_colors"]["hair"] = "red"
        d["episodes"][0]["scenes"][0]["shots"][0]["type"] = "dolly"
    problems = _problems(_mutate(sample_text, change))
    assert any(p.startswith("characters[0].appearance.key_colors.hair: 'red' is not a colour") for p in problems)
    assert any(p.startswith("episodes[0].scenes[0].shots[0].type:") for p in problems)


def test_not_yaml():
    (problem,) = _problems("show: [unclosed")
    assert "not valid YAML" in problem


def test_show_slugs_unique_across_files(configs_dir, sample_text):
    (configs_dir / "copy.yaml").write_text(sample_text)
    with pytest.raises(ConfigError, match="already used by"):
        Project.load(configs_dir)


def test_partition_keys_and_continuity_chain(configs_dir):
    project = Project.load(configs_dir)
    keys = list(project.shots)
    assert keys[0] == "lantern-post/ep01/sc01/sh01"
    chained = project.shots["lantern-post/ep01/sc02/sh02"]
    assert chained.shot.continuity and chained.previous_key == "lantern-post/ep01/sc02/sh01"
    assert project.scenes["lantern-post/ep01/sc02"].shot_keys == keys[3:]


def test_fingerprint_changes_only_for_the_edited_shot(configs_dir):
    before = Project.load(configs_dir).fingerprints()
    path = configs_dir / "lantern_post.yaml"
    path.write_text(_mutate(path.read_text(), lambda d: d["episodes"][0]["scenes"][0]["shots"][1].update(prompt="new prompt")))
    after = Project.load(configs_dir).fingerprints()
    changed = {level: [k for k in after[level] if after[level][k] != before[level][k]] for level in after}
    assert changed == {"character": [], "shot": ["lantern-post/ep01/sc01/sh02"], "scene": [], "episode": []}
