"""Commands for serve: the public pages, webhooks and the archive over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.base import app, workspace_settings


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (above 1 needs PostgreSQL).")] = 1,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy",
            help="A TLS reverse proxy is in front: listen beyond 127.0.0.1 and trust its "
            "X-Forwarded-* headers (also NEWSLETTER_BEHIND_PROXY=1).",
        ),
    ] = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            help="Serve the archive from this folder (what `archive --out DIR` wrote) "
            "instead of build/archive/.",
        ),
    ] = None,
) -> None:
    """Serve the subscriber pages, one-click unsubscribe, provider webhooks and the archive.

    Needs NEWSLETTER_SECRET_KEY (the key `send` signed the links with). Plain http, so
    anything but 127.0.0.1 needs a TLS reverse proxy in front and --behind-proxy.

    \b
    Example: newsletter serve --port 8000   (with NEWSLETTER_SECRET_KEY set)
    """
    from newsletter.web.serve import ServeOptions  # starlette and uvicorn load here
    from newsletter.web.serve import behind_proxy as proxied
    from newsletter.web.serve import serve as run

    settings = workspace_settings(ctx)
    options = ServeOptions(host, port, workers, proxied(behind_proxy, os.environ), archive)
    run(
        settings,
        os.environ,
        options,
        announce=lambda url: typer.echo(f"Serving {settings.name} on {url} (Ctrl-C to stop)"),
    )
