"""Commands for archive: the static web archive of sent issues."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.base import app, show, workspace_settings
from newsletter.web.archive import write_archive


@app.command()
def archive(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the archive here instead of build/archive/."),
    ] = None,
    include_unsent: Annotated[
        bool,
        typer.Option("--include-unsent", help="Archive issues not sent yet too (to preview)."),
    ] = False,
) -> None:
    """Write the static web archive of sent issues: an index, a page per issue, an Atom feed.

    Example: newsletter archive && rsync -a --delete build/archive/ web:/srv/www/archive/
    """
    settings = workspace_settings(ctx)
    result = write_archive(settings, out, include_unsent=include_unsent)
    for key in result.written:
        typer.echo(f"wrote {show(result.out / key / 'index.html')}")
    for key in result.removed:
        typer.echo(f"removed {show(result.out / key)}")
    unchanged = len(result.archived) - len(result.written)
    summary = f"{show(result.out)}: {len(result.archived)} issues ({unchanged} unchanged)"
    if result.not_sent:
        summary += f"; {len(result.not_sent)} not sent yet (--include-unsent adds them)"
    if result.opted_out:
        summary += f"; {len(result.opted_out)} with archive = false"
    typer.echo(summary)
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
