"""The rule families: one module each. Importing them registers their rules.

To add a rule, write one `@rule(...)` function in the family it belongs to (or a new
module listed here); the command, the JSON and the preview pick it up.
"""

from __future__ import annotations

from newsletter.checks.rules import (  # noqa: F401 - they register rules
    accessibility,
    compliance,
    css_support,
    images,
    links,
    size,
    text_part,
    wording,
    workspace,
)
