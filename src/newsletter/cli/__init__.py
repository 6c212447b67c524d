"""The `newsletter` command: a thin shell over the library.

Each command parses its options, calls one library function and prints the result; the
commands live in one module per family and register themselves on the shared app.
"""

from __future__ import annotations

import sys

from newsletter.cli import (  # noqa: F401 - they register commands
    content,
    events,
    publish,
    review,
    sending,
    subscribers,
    web,
)
from newsletter.cli.base import app, hoist_global_options

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(args=hoist_global_options(sys.argv[1:]), prog_name="newsletter")
