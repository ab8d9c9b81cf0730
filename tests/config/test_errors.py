from anime_pipeline.config.errors import (
    MAX_SHOWN_PROBLEMS,
    ConfigError,
    ConfigProblem,
    one_line,
    shown,
)


def test_one_line_escapes_control_characters_and_caps_the_length():
    assert one_line("a\nb\x1b[31m\u2028c") == "a\\nb\\x1b[31m\\u2028c"
    assert len(one_line("x" * 10_000)) == 400 and one_line("x" * 10_000).endswith("...")
    assert one_line("ünïcode 山") == "ünïcode 山"


def test_shown_values_are_short_reprs():
    assert shown("x" * 1_000_000) == "'" + "x" * 56 + "..."
    assert shown(["a"] * 5) == "a list of 5 items" and shown(True) == "True"
    assert shown(10**5000) == "a number too long to show"


def test_rendered_errors_are_one_line_per_problem_and_capped():
    error = ConfigError("show\n.yaml", [ConfigProblem("f", f"bad\n{i}", i + 1) for i in range(MAX_SHOWN_PROBLEMS + 7)])
    lines = error.render().split("\n")
    assert len(lines) == MAX_SHOWN_PROBLEMS + 1
    assert lines[0] == "show\\n.yaml:1: f: bad\\n0"
    assert lines[-1] == "show\\n.yaml: <file>: 7 more problems not shown; fix the ones above first"
