import pytest

from anime_pipeline.media.subtitles import Cue, format_srt
from anime_pipeline.studio.subtitles import placed_cues


def test_an_episodes_cues_follow_its_scenes_chapter_starts(tmp_path):
    one, two = tmp_path / "one.srt", tmp_path / "two.srt"
    one.write_text(format_srt([Cue(0.0, 1.0, "first"), Cue(1.5, 2.0, "second")]))
    two.write_text(format_srt([Cue(0.25, 1.0, "third")]))
    cues = placed_cues([(one, 0.0), (tmp_path / "no-dialogue.srt", 2.5), (two, 4.0)])
    assert cues == [Cue(0.0, 1.0, "first"), Cue(1.5, 2.0, "second"), Cue(4.25, 5.0, "third")]


def test_a_broken_srt_names_its_file(tmp_path):
    broken = tmp_path / "scene.srt"
    broken.write_text("1\nno timing here\n")
    with pytest.raises(ValueError, match=f"^{broken}: SRT block without"):
        placed_cues([(broken, 0.0)])
