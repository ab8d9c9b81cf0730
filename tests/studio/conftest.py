"""Studio fixtures: real candidates (previz renderer + heuristic reviewer), a real rendered episode,
and the studio served on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from anime_pipeline.paths import StoragePaths
from anime_pipeline.studio.app import StudioConfig
from tests.studio.studio_data import (
    CSRF,
    HOSHI,
    make_candidates,
    render_episode,
    serve_in_thread,
)


@dataclass
class Served:
    url: str
    config: StudioConfig

    @property
    def paths(self) -> StoragePaths:
        return StoragePaths(self.config.storage_root)

    def browser_session(self, path: str = "/") -> tuple[requests.Session, str]:
        """A client that behaves like the studio's own page: session cookie, CSRF token, Origin."""
        session = requests.Session()
        page = session.get(self.url + path, timeout=10)
        page.raise_for_status()
        session.headers["Origin"] = self.url
        return session, CSRF.search(page.text).group(1)


@pytest.fixture
def hoshi_storage(tmp_path: Path, configs_dir: Path) -> Path:
    """Hoshi's reference sheet, anchor and six reviewed candidates, all awaiting a person."""
    root = tmp_path / "storage"
    make_candidates(configs_dir, root, HOSHI, 6)
    return root


@pytest.fixture
def studio_config(hoshi_storage: Path, configs_dir: Path) -> StudioConfig:
    return StudioConfig(storage_root=hoshi_storage, configs_dir=configs_dir)


@pytest.fixture
def served(studio_config: StudioConfig) -> Iterator[Served]:
    with serve_in_thread(studio_config) as url:
        yield Served(url, studio_config)


@pytest.fixture(scope="session")
def episode_storage(tmp_path_factory) -> tuple[Path, Path]:
    """(configs dir, storage root) of a short show rendered end to end: shots, a scene, an episode."""
    return render_episode(tmp_path_factory.mktemp("episode"))


@pytest.fixture
def served_episode(episode_storage) -> Iterator[Served]:
    configs, root = episode_storage
    config = StudioConfig(storage_root=root, configs_dir=configs)
    with serve_in_thread(config) as url:
        yield Served(url, config)
