"""The show file's gate thresholds: identity per backend, the motion floor's share, frame timing,
and the style's look; a threshold written the old way is one clear line, never a silent default."""

from __future__ import annotations

import pytest

from anime_pipeline.config import ConfigError
from anime_pipeline.config.loader import load_show
from anime_pipeline.config.schema import IdentityThresholds, Quality
from tests.worlds import write_show


def test_the_defaults_are_the_calibrated_thresholds():
    quality = Quality()
    assert (quality.identity.palette, quality.identity.arcface, quality.identity.ccip) == (0.70, 0.36, None)
    assert quality.min_moving_share == 0.25 and quality.frame_timing == 0.5
    assert quality.identity.threshold("ccip", 0.822) == 0.822  # unset: the model's own metrics.json
    assert IdentityThresholds(ccip=0.9).threshold("ccip", 0.822) == 0.9


def test_a_show_sets_its_own_per_backend_thresholds_and_look(tmp_path):
    path = write_show(tmp_path, {"show": {"style": {"look": "photoreal"}},
                                 "quality": {"identity": {"arcface": 0.42, "ccip": 0.8}, "min_moving_share": 0.5}})
    config = load_show(path)
    assert config.show.style.look == "photoreal"
    assert config.quality.identity == IdentityThresholds(palette=0.70, arcface=0.42, ccip=0.8)
    assert config.quality.min_moving_share == 0.5
    assert load_show(write_show(tmp_path / "default")).show.style.look == "drawn"


@pytest.mark.parametrize("quality, says", [
    # one number for every backend: their scales differ
    ({"identity": 0.7}, "quality.identity: one number (0.7) cannot be every identity backend's threshold"),
    ({"min_motion": 0.002}, "quality.min_motion: unknown key"),  # the mean-difference floor a noisy still passed
    ({"identity": {"dino": 0.5}}, "quality.identity.dino: unknown key"),
    ({"identity": {"palette": 1.5}}, "quality.identity.palette: Input should be less than or equal to 1"),
])
def test_old_or_unknown_thresholds_are_one_clear_line(tmp_path, quality, says):
    with pytest.raises(ConfigError) as raised:
        load_show(write_show(tmp_path, {"quality": quality}))
    rendered = raised.value.render()
    assert len(rendered.splitlines()) == 1 and says in rendered


def test_a_look_is_drawn_or_photoreal(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_show(write_show(tmp_path, {"show": {"style": {"look": "claymation"}}}))
    assert "show.style.look:" in raised.value.render()
