"""Shot assets, one per shot of every episode: the clip, rendered with progressive gates."""

from anime_pipeline.assets.factory import ArtifactAsset
from anime_pipeline.production.shot_clip import ShotClip

shot_clip = ArtifactAsset(ShotClip(), frozenset({"video"}))

ASSETS = (shot_clip,)
