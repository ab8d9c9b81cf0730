"""The Dagster layer's asset declarations: one `ArtifactAsset` per artifact (built per show entity by
`factory.py`), the phase gates per show, and the story planner per show."""

from anime_pipeline.assets import assembly, characters, publish, shots

ARTIFACT_ASSETS = (*characters.ASSETS, *shots.ASSETS, *assembly.ASSETS, *publish.ASSETS)
