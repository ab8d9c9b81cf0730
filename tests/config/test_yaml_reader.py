import pytest

from anime_pipeline.config.errors import ConfigError
from anime_pipeline.config.yaml_reader import MAX_DEPTH, read_yaml


def _error(source) -> list[tuple[str, str, int | None]]:
    with pytest.raises(ConfigError) as info:
        read_yaml(source, "x.yaml")
    return [(p.field, p.reason, p.line) for p in info.value.problems]


def test_plain_yaml_reads_as_the_safe_loader_reads_it_but_dates_stay_text():
    document = read_yaml("a: 1\nb: 1.5\nc: yes\nd: ~\ne: 1:30\nf: 2026-02-30\ng: '7'\nh: =\n", "x.yaml")
    assert document.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": 90, "f": "2026-02-30", "g": "7", "h": "="}
    assert document.root.value[1][1].start_mark.line == 1


def test_byte_order_mark_crlf_and_tabs_are_fine():
    assert read_yaml("\ufeffa: 'x\ty'\r\nb: 2\r\n".encode(), "x.yaml").data == {"a": "x\ty", "b": 2}


def test_an_alias_inside_its_own_anchor_is_refused():
    assert _error("a: &a [1, *a]\n") == [("a[1]", "alias *a refers to a value that contains it", 1)]


def test_an_undefined_alias_is_refused():
    assert _error("a: 1\nb: *nowhere\n") == [("b", "alias *nowhere names no anchor defined before it", 2)]


def test_aliases_count_towards_the_depth():
    levels = MAX_DEPTH - 2  # the top mapping, these mappings and the scalar inside: as deep as allowed
    text = "deep: &deep " + "{k: " * levels + "v" + "}" * levels + "\nagain: {x: *deep}\n"
    ((field, reason, line),) = _error(text)
    assert (field, line) == ("again.x", 2) and reason == f"nested more than {MAX_DEPTH} levels deep"


def test_one_document_per_file():
    assert _error("a: 1\n---\nb: 2\n") == [("", "a show file holds one YAML document; remove the second '---'", 2)]


def test_keys_must_be_text():
    problems = _error("1: a\n? [x]\n: b\nnull: c\n")
    assert [(f, line) for f, _, line in problems] == [("", 1), ("", 2), ("", 4)]
    assert problems[0][1] == "keys must be text; '1' is not (quote it)"


def test_a_merge_key_must_merge_a_mapping():
    ((field, reason, line),) = _error("a: {<<: 3}\n")
    assert line == 1 and reason.startswith("not valid YAML: expected a mapping or list of mappings for merging")


def test_overlong_numbers_and_foreign_tags_are_refused():
    problems = _error("a: " + "9" * 101 + "\nb: !!binary aGk=\nc: !!set {x}\nd: !!float abc\ne: !!bool 1\n")
    assert [(f, r) for f, r, _ in problems] == [
        ("a", "a number of 101 characters is too long"),
        ("b", "the YAML tag 'tag:yaml.org,2002:binary' is not allowed in a show file"),
        ("c", "the YAML tag 'tag:yaml.org,2002:set' is not allowed in a show file"),
        ("d", "'abc' is not a valid float"),
        ("e", "'1' is not a valid bool"),
    ]


def test_explicit_tags_that_fit_their_value_are_kept():
    assert read_yaml("a: !!float 1\nb: !!str 2\nc: !!int '3'\n", "x.yaml").data == {"a": 1.0, "b": "2", "c": 3}


def test_a_lone_surrogate_in_text_is_refused():
    assert _error("a: '\ud800'\n")[0][1:] == ("character U+D800 at column 5 is not allowed in a show file", 1)


def test_many_bad_characters_are_reported_in_bounded_lines():
    problems = _error("a: '" + "\x00" * 10_000 + "'\n")
    assert len(problems) == 21 and problems[-1][1:] == ("more control characters follow from here; remove them all", 1)


def test_text_over_the_size_limit_is_refused_before_parsing():
    ((_, reason, line),) = _error("a: [" + "1," * 2_200_000 + "]")
    assert line == 1 and reason.startswith("the file has 4400005 characters; a show file may have at most 4194304")


def test_an_expansion_of_text_over_budget_is_refused():
    text = "a: &a '" + "x" * 1_000_000 + "'\nb: [" + ", ".join(["*a"] * 17) + "]\n"
    ((field, reason, _),) = _error(text)
    assert field == "b[15]" and "characters of text once its aliases are expanded" in reason


def test_exponent_numbers_without_a_dot_are_numbers_as_in_yaml_1_2():
    from anime_pipeline.config.yaml_reader import read_yaml

    data = read_yaml(b"lr: 1e-4\nbig: 2.5E+3\nname: 1e4x\n", "numbers.yaml").data
    assert data == {"lr": 0.0001, "big": 2500.0, "name": "1e4x"}
