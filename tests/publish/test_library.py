import xml.etree.ElementTree as ET

import pytest

from anime_pipeline.config import parse_show
from anime_pipeline.publish.library import library_paths, publish_episode, safe_name


@pytest.fixture
def show(sample_text):
    return parse_show(sample_text)


def test_jellyfin_naming(show, tmp_path):
    paths = library_paths(tmp_path, show.show, show.episodes[0])
    rel = paths.video.relative_to(tmp_path).as_posix()
    assert rel == "Shows/Lantern Post (2026)/Season 01/Lantern Post S01E01 - The Letter Past the Last Lantern.mp4"
    assert paths.nfo.name.endswith(" - The Letter Past the Last Lantern.nfo")
    assert paths.thumb.name.endswith("-thumb.jpg")


def test_reserved_characters_removed():
    assert safe_name('What? A "Show": <1/2>') == "What A Show 12"
    with pytest.raises(ValueError):
        safe_name("???")


def test_publish_writes_layout_and_nfo(show, tmp_path):
    video, thumb = tmp_path / "ep.mp4", tmp_path / "t.jpg"
    video.write_bytes(b"video")
    thumb.write_bytes(b"jpeg")
    paths = publish_episode(tmp_path / "lib", show.show, show.episodes[0], video, thumb, runtime_seconds=95)
    assert all(p.exists() for p in paths.all_files)
    assert paths.video.read_bytes() == b"video"
    tvshow = ET.parse(paths.series_dir / "tvshow.nfo").getroot()
    assert tvshow.tag == "tvshow" and tvshow.findtext("title") == "Lantern Post" and tvshow.findtext("year") == "2026"
    episode = ET.parse(paths.nfo).getroot()
    assert episode.tag == "episodedetails"
    assert (episode.findtext("season"), episode.findtext("episode"), episode.findtext("runtime")) == ("1", "1", "2")
    assert episode.findtext("aired") == "2026-12-01"
    season = ET.parse(paths.season_dir / "season.nfo").getroot()
    assert season.tag == "season" and season.findtext("seasonnumber") == "1"
    leftovers = [p for p in (tmp_path / "lib").rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_a_retitled_episode_replaces_its_old_files(show, tmp_path):
    video, thumb = tmp_path / "ep.mp4", tmp_path / "t.jpg"
    video.write_bytes(b"video")
    thumb.write_bytes(b"jpeg")
    old = publish_episode(tmp_path / "lib", show.show, show.episodes[0], video, thumb, runtime_seconds=95)
    renamed = show.episodes[0].model_copy(update={"title": "A New Title"})
    new = publish_episode(tmp_path / "lib", show.show, renamed, video, thumb, runtime_seconds=95)
    assert not old.video.exists() and not old.nfo.exists() and not old.thumb.exists()
    assert sorted(p.name for p in new.season_dir.iterdir()) == sorted(
        [new.video.name, new.nfo.name, new.thumb.name, "season.nfo"])


def test_a_failed_publication_leaves_the_library_as_it_was(show, tmp_path):
    video, thumb = tmp_path / "ep.mp4", tmp_path / "t.jpg"
    video.write_bytes(b"video v1")
    thumb.write_bytes(b"jpeg")
    old = publish_episode(tmp_path / "lib", show.show, show.episodes[0], video, thumb, runtime_seconds=95)
    before = {p: p.read_bytes() for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    video.write_bytes(b"video v2")
    with pytest.raises(FileNotFoundError):
        publish_episode(tmp_path / "lib", show.show, show.episodes[0], video, tmp_path / "missing.jpg",
                        runtime_seconds=120)
    after = {p: p.read_bytes() for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    assert after == before and old.video.read_bytes() == b"video v1"
