"""What every command shares: the app, its options, and how errors are shown.

A NewsletterError becomes one line per problem on stderr and exit status 1; a traceback
appears only with --debug.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.config import Settings, load_workspace
from newsletter.errors import NewsletterError
from newsletter.storage import open_engine


class Group(TyperGroup):
    """Turns library errors into `Error: ...` lines instead of tracebacks."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context is a subclass of its own
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                typer.echo(f"Error: {line}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=Group,
    help="Compose newsletter issues from articles in git, build them into email, send them.",
    no_args_is_help=True,
    add_completion=False,
    # Local variables in a traceback can hold API keys.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"newsletter {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="NEWSLETTER_WORKSPACE",
            help="Workspace folder (default: the nearest folder upwards with newsletter.toml).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = {"workspace": workspace, "debug": debug}


def workspace_settings(ctx: typer.Context) -> Settings:
    return load_workspace(explicit=(ctx.obj or {}).get("workspace"))


def human_size(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1000:.1f} KB"


def list_engine(ctx: typer.Context) -> Engine:
    return open_engine(workspace_settings(ctx))


def show(path: Path) -> str:
    """A path as the user would type it: relative to the current folder, like git does."""
    relative = os.path.relpath(path.resolve(), Path.cwd())
    return relative if not relative.startswith("../../..") else str(path)
