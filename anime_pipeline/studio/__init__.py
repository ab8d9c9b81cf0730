"""The studio: a small web app beside the Dagster UI where a person reviews dataset candidates
(grid, verdicts, keyboard and bulk decisions into the decision log) and plays shots, scenes and
episodes with their gates. It reads storage and the decision log only; no Dagster in its handlers.

`studio_url(kind, key)` is the stable link Dagster metadata carries to each artifact's page.
"""

from anime_pipeline.studio.urls import studio_url

__all__ = ["studio_url"]
