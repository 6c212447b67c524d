"""What every command shares: the app, its options, and how errors are shown.

A NewsletterError becomes one line per problem on stderr and exit status 1; a traceback
appears only with --debug.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.config import Settings, load_workspace
from newsletter.errors import NewsletterError
from newsletter.files import os_problem, os_reason
from newsletter.storage import open_engine


class Group(TyperGroup):
    """Turns library errors into `Error: ...` lines instead of tracebacks.

    An OSError that no module turned into one of ours (a bug, but the user's disk said
    something true) becomes one `Error: <path>: <what the system said>` line too; a closed
    pipe (`| head`) is left to Click, which exits quietly.
    """

    def invoke(self, ctx: Any) -> Any:  # typer.Context is a subclass of its own
        try:
            return super().invoke(ctx)
        except NewsletterError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                typer.echo(f"Error: {line}", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            if (ctx.obj or {}).get("debug") or exc.errno == errno.EPIPE:
                raise
            line = os_problem(exc.filename, exc) if exc.filename else os_reason(exc)
            typer.echo(f"Error: {line}", err=True)
            raise typer.Exit(1) from None


def command_group(help: str, **options: Any) -> typer.Typer:  # noqa: A002 - Typer's name
    """A Typer app whose help renders as written: plain text, no Rich markup.

    With Rich markup, "[provider]" in a help text vanished and every flag read "<bool>".
    """
    return typer.Typer(
        cls=Group,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        # Local variables in a traceback can hold API keys.
        pretty_exceptions_show_locals=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        **options,
    )


app = command_group(
    "Compose newsletter issues from articles in git, build them into email, send them.\n\n"
    "Global options (--workspace, --debug) may come before or after the command.\n\n"
    "\b\nExample: newsletter build welcome && newsletter send-test welcome --to me@example.org"
)


GLOBAL_FLAGS = ("--debug",)
GLOBAL_OPTIONS = ("--workspace", "-w")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move --workspace DIR, -w DIR and --debug in front of the command.

    Click reads a group's options only before the command name; editors type them
    anywhere (`newsletter build welcome -w ../bulletin`).
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(args):
            front += args[i : i + 2]
            i += 2
            continue
        if arg in GLOBAL_FLAGS or arg.startswith("--workspace="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


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
