"""Dynamic partitions that follow the show files (kept in sync by the project_sync sensor and `anime-pipeline sync`)."""

import dagster as dg

characters = dg.DynamicPartitionsDefinition(name="characters")
shots = dg.DynamicPartitionsDefinition(name="shots")
scenes = dg.DynamicPartitionsDefinition(name="scenes")
episodes = dg.DynamicPartitionsDefinition(name="episodes")

BY_LEVEL = {"character": characters, "shot": shots, "scene": scenes, "episode": episodes}
