"""Publication assets: one per episode, into the media library."""

from anime_pipeline.assets.factory import ArtifactAsset
from anime_pipeline.production.jellyfin_publish import JellyfinPublish

jellyfin_publish = ArtifactAsset(JellyfinPublish(), frozenset({"folder"}))

ASSETS = (jellyfin_publish,)
