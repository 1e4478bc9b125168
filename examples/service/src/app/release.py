"""Where this release lives on disk and what it declares (VERSION, SCHEMA_VERSION).

Every path is derived from this file's location, so the release directory can be
copied anywhere (that is what `servicectl.py unpack` does). Knows nothing about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RELEASE_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    schema_version: int
    migrations_dir: Path
    frontend_dist: Path


def load_release(root: Path = RELEASE_DIR) -> Release:
    """Read VERSION and SCHEMA_VERSION from the release directory."""
    return Release(
        version=(root / "VERSION").read_text(encoding="utf-8").strip(),
        schema_version=int((root / "SCHEMA_VERSION").read_text(encoding="utf-8")),
        migrations_dir=root / "migrations",
        frontend_dist=root / "frontend" / "dist",
    )
