"""Assembly assets: one scene video per scene, one episode video per episode."""

from anime_pipeline.assets.factory import ArtifactAsset
from anime_pipeline.production.episode_video import EpisodeVideo
from anime_pipeline.production.scene_video import SceneVideo

scene_video = ArtifactAsset(SceneVideo(), frozenset({"video"}))
episode_video = ArtifactAsset(EpisodeVideo(), frozenset({"video"}))

ASSETS = (scene_video, episode_video)
