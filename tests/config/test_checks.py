from pathlib import Path

import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.config.checks import (
    MAX_LETTERS_PER_SECOND,
    MAX_WORDS_PER_SECOND,
    dialogue_problem,
    outside_problem,
)
from anime_pipeline.config.schema import DialogueLine, Shot


def _shot(duration: float, *lines: str) -> Shot:
    return Shot(slug="s", type="medium", prompt="p", duration=duration,
                dialogue=[DialogueLine(speaker="mio", line=line) for line in lines])


def test_every_line_of_the_sample_show_fits_its_shot(sample_text):
    shots = [s for e in parse_show(sample_text).episodes for sc in e.scenes for s in sc.shots]
    assert all(dialogue_problem(shot) is None for shot in shots)


def test_the_speaking_rate_bound_counts_words_and_letters():
    assert dialogue_problem(_shot(2.0, " ".join(["go"] * 2 * MAX_WORDS_PER_SECOND))) is None
    assert dialogue_problem(_shot(2.0, " ".join(["go"] * (2 * MAX_WORDS_PER_SECOND + 1)))).startswith("11 words (22 ")
    assert dialogue_problem(_shot(1.0, "x" * MAX_LETTERS_PER_SECOND + "...!")) is None
    assert dialogue_problem(_shot(1.0, "あ" * (MAX_LETTERS_PER_SECOND + 1))).startswith("1 words (21 letters)")
    assert dialogue_problem(_shot(1.0, "a b c", "d e f")).startswith("6 words")


@pytest.mark.parametrize(("value", "reason"), [
    ("beds/night.ogg", None),
    ("./night.ogg", None),
    ("/etc/shadow", "must be a path relative to"),
    ("beds/../../x", "'..' is not allowed"),
    (".", "must name a file inside"),
    ("a\\b", "write '/' between folder names"),
])
def test_outside_problem_on_the_text(tmp_path: Path, value, reason):
    found = outside_problem(value, tmp_path)
    assert found is None if reason is None else reason in found


def test_outside_problem_follows_symbolic_links(tmp_path: Path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "in_link").symlink_to(tmp_path / "inside")
    (tmp_path / "out_link").symlink_to("/")
    assert outside_problem("in_link/x.ogg", tmp_path) is None
    assert outside_problem("out_link/etc/shadow", tmp_path) == f"leads outside {tmp_path} through a symbolic link"


def _uhd(sample_text: str) -> str:
    import yaml

    data = yaml.safe_load(sample_text)
    data["show"]["video"] = {"width": 3840, "height": 2160, "fps": 60}
    data["episodes"][0]["scenes"][0]["shots"][0]["duration"] = 30
    return yaml.safe_dump(data, sort_keys=False)


def test_the_largest_video_the_schema_accepts_fits_the_shot_memory_budget(sample_text, tmp_path):
    """3840×2160 at 60 fps, a 30 s shot: frames stream, so its duration costs no memory and the
    frame size fits the measured budget (BENCHMARKS.md, "Shot memory")."""
    from anime_pipeline.config import checks

    config = parse_show(_uhd(sample_text), tmp_path / "uhd.yaml")
    assert checks.shot_memory(config) <= checks.SHOT_MEMORY_BUDGET


def test_a_frame_size_over_the_shot_memory_budget_is_refused_with_the_reason(sample_text, tmp_path, monkeypatch):
    from anime_pipeline.config import ConfigError, checks

    monkeypatch.setattr(checks, "SHOT_MEMORY_BUDGET", 1024**3)  # a smaller machine's budget
    with pytest.raises(ConfigError) as caught:
        parse_show(_uhd(sample_text), tmp_path / "uhd.yaml")
    lines = [line for line in str(caught.value).splitlines() if ": show.video:" in line]
    assert len(lines) == 1 and "show.video: 3840×2160 frames need 1.5 GiB a shot (256 MiB + 56 frames of 23.7 MiB), " \
        "more than the 1 GiB budget: lower show.video's width and height" in lines[0]
