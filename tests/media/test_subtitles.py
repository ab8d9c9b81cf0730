from __future__ import annotations

from pathlib import Path

import pytest

from anime_pipeline.media import Cue, format_srt, format_webvtt, parse_srt, write_srt

CUES = [
    Cue(0.0, 1.5, "Hello."),
    Cue(61.25, 63.007, "Two lines\nof dialogue"),
    Cue(3725.5, 3727.0, "An hour in."),
]


def test_format_srt_layout() -> None:
    assert format_srt(CUES) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello.\n"
        "\n"
        "2\n00:01:01,250 --> 00:01:03,007\nTwo lines\nof dialogue\n"
        "\n"
        "3\n01:02:05,500 --> 01:02:07,000\nAn hour in.\n"
    )


def test_round_trip() -> None:
    assert parse_srt(format_srt(CUES)) == CUES


def test_timestamps_round_to_milliseconds() -> None:
    assert "00:00:01,235 --> 00:00:02,000" in format_srt([Cue(1.2346, 1.9996, "x")])


def test_blank_lines_inside_text_cannot_split_a_cue() -> None:
    assert parse_srt(format_srt([Cue(0, 1, "a\n\nb")])) == [Cue(0, 1, "a\nb")]


def test_parse_tolerates_bom_crlf_and_loose_numbering() -> None:
    text = "\ufeff7\r\n00:00:01,000 --> 00:00:02.500\r\nHi\r\n\r\n\r\n00:00:03,000 --> 00:00:04,000\r\nBye\r\n"
    assert parse_srt(text) == [Cue(1.0, 2.5, "Hi"), Cue(3.0, 4.0, "Bye")]
    assert parse_srt("") == []


def test_parse_rejects_block_without_timing() -> None:
    with pytest.raises(ValueError, match="start --> end"):
        parse_srt("1\nnot a timestamp\nHi\n")


@pytest.mark.parametrize(("start", "end"), [(1.0, 1.0), (2.0, 1.0), (-0.5, 1.0)])
def test_cue_validates_times(start: float, end: float) -> None:
    with pytest.raises(ValueError):
        Cue(start, end, "x")


def test_write_srt_is_atomic(tmp_path: Path) -> None:
    path = write_srt(CUES, tmp_path / "subs" / "ep01.srt")
    assert path.read_text(encoding="utf-8") == format_srt(CUES)
    assert [p.name for p in path.parent.iterdir()] == ["ep01.srt"]


def test_format_webvtt_layout_and_escaping() -> None:
    cues = [*CUES[:2], Cue(70.0, 71.0, "<b>Kyu</b> & --> \"hi\"")]
    assert format_webvtt(cues) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\nHello.\n"
        "\n"
        "00:01:01.250 --> 00:01:03.007\nTwo lines\nof dialogue\n"
        "\n"
        "00:01:10.000 --> 00:01:11.000\n&lt;b&gt;Kyu&lt;/b&gt; &amp; --&gt; \"hi\"\n"
    )
