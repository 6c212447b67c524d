"""Commands for events: what providers reported through webhooks."""

from __future__ import annotations

from newsletter.cli.base import app  # noqa: F401 - commands register on it
