"""The `newsletter` command: a thin shell over the library.

Each command parses its options, calls one library function and prints the result. A
NewsletterError becomes one line per problem on stderr and exit status 1; a traceback
appears only with --debug.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.articles import parse_date
from newsletter.build import build_issue
from newsletter.config import Settings, load_workspace
from newsletter.errors import NewsletterError
from newsletter.issue import add_articles, new_issue, resolve_issue
from newsletter.providers import Status
from newsletter.send import send_test
from newsletter.workspace import init_workspace


class _Group(TyperGroup):
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
    cls=_Group,
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


def _settings(ctx: typer.Context) -> Settings:
    return load_workspace(explicit=(ctx.obj or {}).get("workspace"))


def _size(n: int) -> str:
    return f"{n} B" if n < 1000 else f"{n / 1000:.1f} KB"


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder for the new workspace.")] = Path("."),
    name: Annotated[str, typer.Option(help="The newsletter's name.")] = "My Newsletter",
) -> None:
    """Create a workspace: newsletter.toml, templates/ and a sample issue.

    Example: newsletter init my-bulletin --name "The Weekly Note"
    """
    for created in init_workspace(path, name=name):
        typer.echo(f"created {_show(created)}")
    typer.echo(f"Next: cd {path} && newsletter build welcome")


@app.command()
def new(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name, e.g. spring-update.")],
    subject: Annotated[str | None, typer.Option(help="The email's subject.")] = None,
    date: Annotated[str | None, typer.Option(help="Issue date (default today).")] = None,
) -> None:
    """Create a new issue folder issues/<date>-<slug>/ with an issue.toml.

    Example: newsletter new spring-update --subject "Spring update" --date 2027-03-01
    """
    settings = _settings(ctx)
    day = _parse_option_date(date) if date else dt.date.today()
    folder = new_issue(settings, slug, subject=subject, date=day)
    typer.echo(f"created {_show(folder)}")


def _parse_option_date(text: str) -> dt.date:
    try:
        return parse_date(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date") from None


@app.command()
def add(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    files: Annotated[list[Path], typer.Argument(help="Article files: .md, .txt or .html.")],
) -> None:
    """Import article files into an issue as Markdown and append them to its order.

    Example: newsletter add welcome ~/Downloads/article.txt page.html
    """
    settings = _settings(ctx)
    folder = resolve_issue(settings, issue)
    for written in add_articles(folder, files, settings):
        typer.echo(f"added {_show(written)}")


@app.command()
def build(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the files here instead of build/<issue>/."),
    ] = None,
) -> None:
    """Render, inline and write email.html, email.txt and email.eml.

    Example: newsletter build welcome
    """
    settings = _settings(ctx)
    result = build_issue(settings, resolve_issue(settings, issue), out)
    for path, size in result.files:
        typer.echo(f"{_show(path)}  {_size(size)}")
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)


@app.command("send-test")
def send_test_command(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    to: Annotated[list[str], typer.Option("--to", help="Recipient; repeat for more.")],
    provider: Annotated[
        str | None, typer.Option(help="Provider name (default: [provider] name).")
    ] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Use the provider's own test mode.")
    ] = False,
) -> None:
    """Send test copies, subject prefixed "[TEST] ", to the given addresses.

    Builds the issue first when its build is missing or out of date. Test sends never
    touch the send ledger. Exit status 1 when nothing was sent, 2 when some failed.

    Example: newsletter send-test welcome --to me@example.org --provider postmark
    """
    settings = _settings(ctx)
    report = send_test(
        settings,
        resolve_issue(settings, issue),
        to,
        environ=os.environ,
        provider_name=provider,
        sandbox=sandbox,
    )
    sent = 0
    for result in report.results:
        if result.status is Status.SENT:
            sent += 1
            typer.echo(f"sent    {result.email}  {result.message_id}")
        else:
            typer.echo(f"{result.status.value:<7} {result.email}  {result.reason}", err=True)
    typer.echo(f"{sent} of {len(report.results)} sent through {report.provider}: {report.subject}")
    if sent < len(report.results):
        raise typer.Exit(1 if sent == 0 else 2)


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the current folder, like git does."""
    relative = os.path.relpath(path.resolve(), Path.cwd())
    return relative if not relative.startswith("../../..") else str(path)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="newsletter")
