import pytest

from anime_pipeline.studio.urls import BASE_ENV, studio_base, studio_path, studio_url


def test_each_asset_links_to_its_entity_page():
    assert studio_path("shot_clip", "lantern-post/ep01/sc01/sh02") == "/shots/lantern-post/ep01/sc01/sh02"
    assert studio_path("scene_video", "lantern-post/ep01/sc01") == "/scenes/lantern-post/ep01/sc01"
    assert studio_path("episode_video", "lantern-post/ep01") == "/episodes/lantern-post/ep01"
    assert studio_path("jellyfin_publish", "lantern-post/ep01") == "/episodes/lantern-post/ep01"
    assert studio_path("approved_dataset", "lantern-post/hoshi") == "/characters/lantern-post/hoshi#dataset"
    assert studio_path("character_reference", "lantern-post/hoshi") == "/characters/lantern-post/hoshi#reference"
    assert studio_path("candidate", "lantern-post/hoshi/c0003") == "/characters/lantern-post/hoshi?view=all#c0003"


def test_the_url_depends_on_kind_key_and_base_only():
    assert studio_url("shot", "a/b/c/d", studio_base("https://studio.example:8443/")) == \
        "https://studio.example:8443/shots/a/b/c/d"
    assert studio_url("shot", "a/b/c/d", base="http://127.0.0.1:9000") == "http://127.0.0.1:9000/shots/a/b/c/d"
    assert studio_url("episode", "a/b", studio_base("")) == "http://127.0.0.1:3100/episodes/a/b"


@pytest.mark.parametrize("kind,key", [("shot", "a/b/c"), ("episode", "a/../b"), ("scene", "a/b/C"),
                                      ("character", "a/b%2f"), ("character", "a//b"), ("nonsense", "a/b")])
def test_a_key_that_is_not_the_kinds_slugs_is_refused(kind, key):
    with pytest.raises(ValueError, match="studio_url"):
        studio_path(kind, key)


@pytest.mark.parametrize("base", ["http://user:pw@host:1", "http://host:1/?token=x", "ftp://host", "host:1"])
def test_a_base_url_with_a_credential_or_no_scheme_is_refused(base):
    with pytest.raises(ValueError, match=BASE_ENV):
        studio_base(base)
