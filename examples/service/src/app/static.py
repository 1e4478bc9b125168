"""Serve the built frontend (`frontend/dist`) when the release has one.

Only files inside dist are ever read (no `..` escapes); `/` is `index.html`.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def read_asset(dist: Path, url_path: str) -> tuple[bytes, str] | None:
    """(content, content type) of the file at `url_path`, or None if absent."""
    if not dist.is_dir():
        return None
    relative = url_path.lstrip("/") or "index.html"
    root = dist.resolve()
    target = (root / relative).resolve()
    if root not in target.parents or not target.is_file():
        return None
    guessed = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    content_type = _TYPES.get(target.suffix, guessed)
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    return target.read_bytes(), content_type
