"""Commands for serve: the public pages, webhooks and the archive over HTTP."""

from __future__ import annotations

from newsletter.cli.base import app  # noqa: F401 - commands register on it
