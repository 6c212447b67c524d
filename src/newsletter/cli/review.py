"""Commands for check and preview: what an editor looks at before sending."""

from __future__ import annotations

from newsletter.cli.base import app  # noqa: F401 - commands register on it
