"""Stable studio URLs for every artifact, so Dagster metadata can link to the page that shows it.

The Dagster UI cannot show images or play video inline; each asset's metadata carries
`MetadataValue.url(studio_url(asset_name, partition_key))` instead. URLs depend only on the
kind and the key, never on a run, so a link recorded months ago still opens the artifact's page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

DEFAULT_PORT = 3100
DEFAULT_BASE = f"http://127.0.0.1:{DEFAULT_PORT}"
BASE_ENV = "ANIME_PIPELINE_STUDIO_URL"
KEY_PART = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # the config's slug rule: keys are slugs joined by '/'


@dataclass(frozen=True)
class Page:
    prefix: str  # the route's first segment
    parts: int  # how many slugs the key has
    section: str = ""  # the page's anchor for this kind, if it is one part of a larger page


# Entity kinds and the asset names that live on their pages.
PAGES: dict[str, Page] = {
    "character": Page("characters", 2),
    "character_reference": Page("characters", 2, "reference"),
    "character_embedding": Page("characters", 2, "reference"),
    "approved_dataset": Page("characters", 2, "dataset"),
    "character_lora": Page("characters", 2, "dataset"),
    "candidate": Page("characters", 3),  # show/character/candidate id: the candidate's card in the queue
    "shot": Page("shots", 4),
    "shot_clip": Page("shots", 4),
    "scene": Page("scenes", 3),
    "scene_video": Page("scenes", 3),
    "episode": Page("episodes", 2),
    "episode_video": Page("episodes", 2),
    "jellyfin_publish": Page("episodes", 2),
}


def studio_path(kind: str, key: str) -> str:
    """The site-relative path of an artifact's page, e.g. ("shot_clip", "show/ep01/sc01/sh01") → /shots/show/ep01/sc01/sh01."""
    page = PAGES.get(kind)
    if page is None:
        raise ValueError(f"studio_url: unknown kind {kind!r}; use one of {sorted(PAGES)}")
    pieces = key.split("/")
    if len(pieces) != page.parts or not all(KEY_PART.match(p) for p in pieces):
        raise ValueError(f"studio_url: {kind} key {key!r} should be {page.parts} slugs separated by '/'")
    if kind == "candidate":
        return f"/characters/{quote(pieces[0])}/{quote(pieces[1])}?view=all#{quote(pieces[2])}"
    path = "/".join(quote(p) for p in pieces)
    return f"/{page.prefix}/{path}" + (f"#{page.section}" if page.section else "")


def studio_base(value: str) -> str:
    """Where the studio is reached: the value of ANIME_PIPELINE_STUDIO_URL, else the default loopback address."""
    base = value.strip() or DEFAULT_BASE
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{BASE_ENV} should look like http://host:port, got {base!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        # Metadata is shown to everyone who opens the Dagster UI: never a credential in it.
        raise ValueError(f"{BASE_ENV} must be a plain http(s)://host:port[/path] with no user, password or query")
    return base.rstrip("/")


def studio_url(kind: str, key: str, base: str) -> str:
    """The absolute URL of an artifact's studio page (kind: an entity kind or an asset name, see PAGES), under
    `base` (`studio_base`)."""
    return base.rstrip("/") + studio_path(kind, key)
