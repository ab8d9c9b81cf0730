"""Where every artifact lives under the storage root — one place, so assets, the CLI and tests agree.

Layout mirrors the partition keys: `{root}/{show}/characters/{slug}/...` and
`{root}/{show}/episodes/{episode}/scenes/{scene}/shots/{shot}/...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoragePaths:
    root: Path

    def _under_root(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        # Keys come from validated slugs; this guards against a hand-made partition key.
        if ".." in parts or not path.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"refusing a path outside the storage root: {'/'.join(parts)!r}")
        return path

    def show(self, slug: str) -> Path:
        return self._under_root(slug)

    def character(self, key: str) -> Path:
        show, slug = _split(key, 2)
        return self._under_root(show, "characters", slug)

    def reference(self, key: str) -> Path:
        return self.character(key) / "reference"

    def embedding(self, key: str) -> Path:
        return self.character(key) / "embedding"

    def candidates(self, key: str) -> Path:
        return self.character(key) / "candidates"

    def decisions_log(self, key: str) -> Path:
        return self.character(key) / "decisions.jsonl"

    def replenishment_log(self, key: str) -> Path:
        """A person's resets of the replenishment sensor's consecutive-rejects guard, append-only."""
        return self.character(key) / "replenishment.jsonl"

    def dataset(self, key: str) -> Path:
        return self.character(key) / "dataset"

    def adapter(self, key: str) -> Path:
        return self.character(key) / "adapter"

    def episode(self, key: str) -> Path:
        show, episode = _split(key, 2)
        return self._under_root(show, "episodes", episode)

    def publication(self, key: str) -> Path:
        """Where the record of an episode's publication lives (the published files are in the library)."""
        return self.episode(key) / "publication"

    def scene(self, key: str) -> Path:
        show, episode, scene = _split(key, 3)
        return self._under_root(show, "episodes", episode, "scenes", scene)

    def shot(self, key: str) -> Path:
        show, episode, scene, shot = _split(key, 4)
        return self._under_root(show, "episodes", episode, "scenes", scene, "shots", shot)

def _split(key: str, parts: int) -> list[str]:
    pieces = key.split("/")
    if len(pieces) != parts or not all(pieces):
        raise ValueError(f"partition key {key!r} should have {parts} parts separated by '/'")
    return pieces
