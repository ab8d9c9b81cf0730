"""Show configuration: schema, loading with precise errors, and the project of all shows."""

from anime_pipeline.config.loader import ConfigError, load_show, parse_show
from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import Character, Shot, ShowConfig

__all__ = ["ConfigError", "Character", "Project", "Shot", "ShowConfig", "load_show", "parse_show"]
