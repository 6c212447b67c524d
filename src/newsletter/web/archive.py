"""The static web archive of sent issues: an index, a page per issue, and an Atom feed."""

from __future__ import annotations

from pathlib import Path

from newsletter.config import Settings


def default_archive_dir(settings: Settings) -> Path:
    """Where `archive` writes and `serve` serves from unless told otherwise."""
    return settings.build_dir / "archive"
