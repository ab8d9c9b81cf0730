"""Show configuration: schema, loading with precise errors, and the project of all shows."""

from anime_pipeline.config.errors import ConfigError
from anime_pipeline.config.loader import check_files, load_show, parse_show
from anime_pipeline.config.project import Project
from anime_pipeline.config.schema import Character, Shot, ShowConfig

__all__ = ["ConfigError", "Character", "Project", "Shot", "ShowConfig", "check_files", "load_show", "parse_show"]
