"""Commands for archive: the static web archive of sent issues."""

from __future__ import annotations

from newsletter.cli.base import app  # noqa: F401 - commands register on it
