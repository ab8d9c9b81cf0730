import os
import tracemalloc

import pytest
import yaml

from anime_pipeline.config import ConfigError, Project, load_show, parse_show
from anime_pipeline.config.errors import format_path
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
    assert (q.identity.palette, q.aesthetic, q.style_adherence) == (0.70, 5.5, 0.85)
    assert (q.temporal_lpips, q.motion_smoothness, q.subject_consistency, q.scene_continuity) == (0.15, 0.95, 0.90, 0.85)
    assert q.phase_pass_rate == 0.80 and q.max_attempts == 3
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
    assert "characters[0].appearance.key_colors.hair: not a colour: write it as #rrggbb (got 'red')" in problems
    assert any(p.startswith("episodes[0].scenes[0].shots[0].type:") for p in problems)


def test_not_yaml():
    (problem,) = _problems("show: [unclosed")
    assert "not valid YAML" in problem


def test_show_slugs_unique_across_files(configs_dir, sample_text):
    (configs_dir / "copy.yaml").write_text(sample_text)
    with pytest.raises(ConfigError, match="already used by"):
        Project.load(configs_dir)


def test_entity_keys_and_continuity_chain(configs_dir):
    project = Project.load(configs_dir)
    keys = list(project.shots)
    assert keys[0] == "lantern-post/ep01/sc01/sh01"
    chained = project.shots["lantern-post/ep01/sc02/sh02"]
    assert chained.shot.continuity and chained.previous_key == "lantern-post/ep01/sc02/sh01"
    assert project.scenes["lantern-post/ep01/sc02"].shot_keys == keys[3:]


def _specs(project) -> dict[str, dict[str, str]]:
    from anime_pipeline.config.project import (
        character_spec,
        episode_spec,
        scene_spec,
        shot_spec,
    )
    from anime_pipeline.storage import sha256_json

    levels = {"character": (project.characters, character_spec), "shot": (project.shots, shot_spec),
              "scene": (project.scenes, scene_spec), "episode": (project.episodes, episode_spec)}
    return {level: {k: sha256_json(spec(r)) for k, r in refs.items()} for level, (refs, spec) in levels.items()}


def test_editing_a_shot_changes_its_spec_and_its_scene_and_episode_entries_only(configs_dir):
    before = _specs(Project.load(configs_dir))
    path = configs_dir / "lantern_post.yaml"
    path.write_text(_mutate(path.read_text(), lambda d: d["episodes"][0]["scenes"][0]["shots"][1].update(prompt="new prompt")))
    after = _specs(Project.load(configs_dir))
    changed = {level: [k for k in after[level] if after[level][k] != before[level][k]] for level in after}
    assert changed == {"character": [], "shot": ["lantern-post/ep01/sc01/sh02"], "scene": ["lantern-post/ep01/sc01"],
                       "episode": ["lantern-post/ep01"]}


# --- hostile and broken show files (issue 14): each class fails the loader as it was before ---

SHOT = ("episodes", 0, "scenes", 0, "shots", 0)


def _set(data, loc, value):
    for part in loc[:-1]:
        data = data.setdefault(part, {}) if isinstance(data, dict) else data[part]
    data[loc[-1]] = value


def _error(source, file="shows/bad.yaml", **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_show(source, file, **kwargs)
    return info.value


def _assert_clean(error: ConfigError, file="shows/bad.yaml") -> list[str]:
    lines = str(error).split("\n")
    for line in lines:
        assert line.startswith(f"{file}:") and line.isprintable() and len(line) <= 400, line[:500]
    return lines


@pytest.mark.parametrize(("loc", "value", "reason"), [
    (("show", "style", "steps"), True, "Input should be a valid integer (got True)"),
    (("characters", 0, "dataset_target"), True, "Input should be a valid integer (got True)"),
    ((*SHOT, "duration"), True, "Input should be a valid number (got True)"),
    ((*SHOT, "seed"), 1.5, "Input should be a valid integer (got 1.5)"),
    (("episodes", 0, "number"), "1", "Input should be a valid integer (got '1')"),
    ((*SHOT, "continuity"), "true", "Input should be a valid boolean (got 'true')"),
    (("show", "style", "resolution"), [512, True], "Input should be a valid integer (got True)"),
    (("quality", "identity", "palette"), float("nan"), "Input should be a finite number"),
])
def test_yaml_guesses_never_coerce(sample_text, loc, value, reason):
    text = _mutate(sample_text, lambda d: _set(d, loc, value))
    problems = _problems(text)
    assert len(problems) == 1 and reason in problems[0], problems


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("design_prompt: 1girl,", "design_prompt: " + "x" * 1_000_000 + " 1girl,", "at most 2000 characters"),
    ("style_tags: [anime,", "style_tags: [" + "anime, " * 200_000, "at most 64 items"),
    ("  storyline: >\n", "  storyline: " + "y" * 10_001 + "\n  synopsis_old: >\n", "at most 10000 characters"),
    ("              - {speaker: mio, line: \"Last bag of the night, Hoshi.\"}\n",
     "              - {speaker: mio, line: \"Hi.\"}\n" * 33, "at most 32 items"),
    ("poses: [sitting, leaping, curled up]", "poses: []", "at least 1 item"),
])
def test_texts_and_lists_are_bounded(sample_text, old, new, reason):
    assert old in sample_text
    problems = _error(sample_text.replace(old, new, 1)).problems
    assert any(reason in p.reason for p in problems), problems
    _assert_clean(ConfigError("shows/bad.yaml", problems))


def test_counts_of_characters_and_shots_are_bounded(sample_text):
    def many_characters(d):
        d["characters"] += [{**d["characters"][1], "slug": f"extra{i}"} for i in range(63)]
    assert "characters: List should have at most 64 items" in _problems(_mutate(sample_text, many_characters))[0]

    def many_shots(d):
        scene = d["episodes"][0]["scenes"][0]
        scene["shots"] = [{**scene["shots"][1], "slug": f"s{i}"} for i in range(200)]
        d["episodes"][0]["scenes"] = [{**scene, "slug": f"sc{i}"} for i in range(16)]
    assert _problems(_mutate(sample_text, many_shots)) == [
        "episodes: the show has 3200 shots; a show file may have at most 3000 (split the show into several files)"]


def test_file_size_is_refused_before_parsing(tmp_path, sample_text):
    big = tmp_path / "big.yaml"
    big.write_text(sample_text + ("# padding\n" * 500_000))
    with pytest.raises(ConfigError) as info:
        load_show(big)
    assert str(info.value) == (f"{big}: <file>: the file has {big.stat().st_size} bytes; a show file may have at "
                               "most 4194304 (split the show into several files)")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "show.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_show(fifo)


def test_duplicate_keys_are_rejected_with_both_lines(sample_text):
    text = sample_text.replace("  title: Lantern Post\n", "  title: Lantern Post\n  year: 2027\n  title: Other\n")
    problems = _error(text).problems
    assert [(p.field, p.line) for p in problems] == [("show.title", 7), ("show.year", 8)]
    assert problems[0].reason.startswith("duplicate key 'title' (first at line 5, again at line 7)")
    assert problems[1].reason.startswith("duplicate key 'year' (first at line 6, again at line 8)")


def test_alias_bomb_in_comfyui_overrides_fails_in_bounded_memory(sample_text):
    levels = [f"      l0: &l0 [{', '.join(['lol'] * 9)}]"]
    levels += [f"      l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = sample_text + "backends:\n  comfyui_overrides:\n    still:\n" + "\n".join(levels) + "\n"
    tracemalloc.start()
    try:
        error = _error(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (line,) = _assert_clean(error)
    assert "backends.comfyui_overrides.still.l" in line and "once its aliases are expanded" in line
    assert peak < 20 * 2**20  # the expansion (9**10 values) is counted, never built


def test_aliases_and_merge_keys_within_budget_still_work(sample_text):
    text = sample_text.replace("  video: {width: 640, height: 360, fps: 24}",
                               "  video: &video {width: 640, height: 360, fps: 24}\n"
                               "  style_video_copy: &copy {<<: *video, fps: 12}")
    assert "show.style_video_copy: unknown key" in _problems(text)[0]  # the merged mapping was built
    aliased = sample_text.replace("location: hill road beyond the town", "location: &place hill road").replace(
        "mood: hushed, hopeful", "mood: *place")
    assert parse_show(aliased).episodes[0].scenes[1].mood == "hill road"


@pytest.mark.parametrize("style", ["block", "flow"])
def test_nesting_1000_deep_is_a_clear_error(sample_text, style):
    if style == "block":
        deep = "".join("  " * (i + 1) + f"k{i}:\n" for i in range(1000)) + "  " * 1001 + "leaf\n"
    else:
        deep = "  storyline: " + "[" * 1000 + "]" * 1000 + "\n"
    (line,) = _assert_clean(_error(sample_text.replace("show:\n", "show:\n" + deep, 1)))
    assert "nest" in line and "RecursionError" not in line


def test_undecodable_bytes_name_the_line(tmp_path, sample_text):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(sample_text.replace("Mio Kagari", "Mio K\u00e4gari").encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_show(path)
    (problem,) = info.value.problems
    line = next(i for i, text in enumerate(sample_text.splitlines(), 1) if "Mio Kagari" in text)
    column = sample_text.splitlines()[line - 1].index("Mio Kagari") + len("Mio K") + 1
    assert (problem.line, problem.reason) == (line, f"byte 0xe4 at column {column} is not UTF-8; save the show "
                                                    "file as UTF-8")


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x07", "\x9b", "\x7f"])
def test_control_characters_are_refused_by_line_and_never_printed(sample_text, control):
    raw = _error(sample_text.replace("title: Lantern Post", f"title: Lantern{control}[31m Post"))
    (line,) = _assert_clean(raw)
    assert line.startswith("shows/bad.yaml:5: <file>: control character U+00")
    escaped = _error(sample_text.replace("title: Lantern Post", f'title: "Lantern\\x{ord(control):02x} Post"'))
    (line,) = _assert_clean(escaped)
    assert line.startswith("shows/bad.yaml:5: show.title: control character") and control not in line


@pytest.mark.parametrize("loc", [
    ("show", "slug"), ("characters", 0, "slug"), ("episodes", 0, "slug"), ("episodes", 0, "scenes", 0, "slug"),
    (*SHOT, "slug"), (*SHOT, "characters", 0), (*SHOT, "dialogue", 0, "speaker"),
])
def test_a_slug_with_a_trailing_newline_is_invalid_everywhere(sample_text, loc):
    def change(d):
        parent = d
        for part in loc[:-1]:
            parent = parent[part]
        parent[loc[-1]] += "\n"
    problems = _problems(_mutate(sample_text, change))
    assert any(p.startswith(f"{format_path(loc)}: not a valid slug") and "\\n'" in p for p in problems), problems


@pytest.mark.parametrize("aired", ["2026-02-30", "'2026-02-30'", "2026-13-01", "'1 May 2026'"])
def test_impossible_dates_are_errors(sample_text, aired):
    (problem,) = _problems(sample_text.replace('aired: "2026-12-01"', f"aired: {aired}"))
    assert problem.startswith("episodes[0].aired: not a date")


def test_an_unquoted_date_is_read_as_the_date_text(sample_text):
    assert parse_show(sample_text.replace('aired: "2026-12-01"', "aired: 2026-12-01")).episodes[0].aired == "2026-12-01"


@pytest.mark.parametrize(("loc", "value", "reason"), [
    (("episodes", 0, "scenes", 0, "music"), "/etc/shadow", "must be a path relative to"),
    (("episodes", 0, "scenes", 0, "music"), "../../secret.ogg", "'..' is not allowed"),
    (("episodes", 0, "scenes", 0, "music"), "beds\\..\\..\\x.ogg", "write '/' between folder names"),
    (("characters", 0, "reference_images"), ["refs/../../etc/passwd"], "'..' is not allowed"),
    (("characters", 0, "reference_images"), ["/etc/passwd"], "must be a path relative to"),
])
def test_file_references_stay_inside_their_folders(sample_text, loc, value, reason):
    (problem,) = _problems(_mutate(sample_text, lambda d: _set(d, loc, value)))
    assert problem.startswith(format_path(loc)) and reason in problem


def test_a_symbolic_link_out_of_the_music_folder_is_refused(tmp_path, sample_text):
    music = tmp_path / "music"
    music.mkdir()
    (music / "beds").symlink_to("/etc")
    (music / "night.ogg").write_bytes(b"OggS")
    text = _mutate(sample_text, lambda d: _set(d, ("episodes", 0, "scenes", 0, "music"), "beds/passwd"))
    (problem,) = _error(text, tmp_path / "show.yaml").problems
    assert problem.field == "episodes[0].scenes[0].music" and f"leads outside {music}" in problem.reason
    good = _mutate(sample_text, lambda d: _set(d, ("episodes", 0, "scenes", 0, "music"), "night.ogg"))
    (tmp_path / "show.yaml").write_text(good)
    project = Project.load(tmp_path)
    assert project.music_file(project.scenes["lantern-post/ep01/sc01"].scene) == music / "night.ogg"


@pytest.mark.parametrize("name", ["../evil", "a/b", "txt2img_sdxl.json", "..", "x\n"])
def test_workflow_names_are_plain_template_names(sample_text, name):
    problems = _problems(_mutate(sample_text, lambda d: d.update(backends={"comfyui_workflows": {"still": name}})))
    assert len(problems) == 1 and problems[0].startswith("backends.comfyui_workflows.still: not a template name")


def test_dialogue_that_cannot_fit_its_shot_is_reported(sample_text):
    def change(d):
        _set(d, (*SHOT, "duration"), 0.51)
        _set(d, (*SHOT, "dialogue"), [{"speaker": "mio", "line": " ".join(["go"] * 200)},
                                      {"speaker": "hoshi", "line": " ".join(["kyu"] * 200)}])
    (problem,) = _problems(_mutate(sample_text, change))
    assert problem == ("episodes[0].scenes[0].shots[0].dialogue: 400 words (1000 letters) of dialogue cannot be "
                       "spoken in 0.51 s (at most 5 words and 20 letters a second); lengthen the shot or move "
                       "lines to another shot")


def test_continuity_never_crosses_episodes(sample_text):
    def change(d):
        second = yaml.safe_load(yaml.safe_dump(d["episodes"][0]))
        second.update(slug="ep02", number=2)
        second["scenes"][0]["shots"][0]["continuity"] = True
        d["episodes"].append(second)
    (problem,) = _problems(_mutate(sample_text, change))
    assert problem.startswith("episodes[1].scenes[0].shots[0].continuity: the first shot of an episode")


def test_yaml_tags_are_refused_not_crashed_on(sample_text):
    text = sample_text.replace("steps: 28", "steps: !!int abc").replace("cfg: 7.0", "cfg: !!python/object:os.system x")
    problems = _error(text).problems
    assert [(p.field, p.reason) for p in problems] == [
        ("show.style.steps", "'abc' is not a valid int"),
        ("show.style.cfg", "the YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed in a show file")]


def test_every_error_is_one_short_line_with_the_value_shortened(sample_text):
    (line,) = _assert_clean(_error(sample_text.replace("slug: lantern-post", 'slug: "' + "x\\n" * 500_000 + '"')))
    assert line.startswith("shows/bad.yaml:4: show.slug: not a valid slug") and "(got 'x\\nx\\n" in line


def test_the_old_retry_thresholds_key_says_what_replaced_it(sample_text, tmp_path):
    import yaml

    data = yaml.safe_load(sample_text)
    data["quality"] = {"retry_thresholds": [0.6, 0.45, 0.3]}
    with pytest.raises(ConfigError, match="retry_thresholds was replaced by max_attempts"):
        parse_show(yaml.safe_dump(data, sort_keys=False), tmp_path / "old.yaml")
