"""The show files as external assets, one partition per character / shot / scene / episode.

Their data version is a hash of that partition's own spec (reported by the sync sensor and
`anime-pipeline sync`), so editing one shot's prompt marks exactly that shot_clip stale.
"""

import dagster as dg

from anime_pipeline import partitions

GROUP = "show_config"

character_spec = dg.AssetSpec("character_spec", partitions_def=partitions.characters, group_name=GROUP,
                              description="A character's entry in the show file (design, appearance, dataset target).")
shot_spec = dg.AssetSpec("shot_spec", partitions_def=partitions.shots, group_name=GROUP,
                         description="A shot's entry in the show file (type, characters, prompts, duration, dialogue).")
scene_spec = dg.AssetSpec("scene_spec", partitions_def=partitions.scenes, group_name=GROUP,
                          description="A scene's entry: its shots in order, transitions, dialogue, music.")
episode_spec = dg.AssetSpec("episode_spec", partitions_def=partitions.episodes, group_name=GROUP,
                            description="An episode's entry: number, title, synopsis, scenes in order.")

SPECS = {"character": character_spec, "shot": shot_spec, "scene": scene_spec, "episode": episode_spec}
