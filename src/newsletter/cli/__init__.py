"""The `newsletter` command: a thin shell over the library.

Each command parses its options, calls one library function and prints the result; the
commands live in one module per family and register themselves on the shared app.
"""

from __future__ import annotations

from newsletter.cli import content, sending, subscribers  # noqa: F401 - they register commands
from newsletter.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="newsletter")
