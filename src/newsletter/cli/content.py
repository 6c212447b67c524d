"""Commands that make and build issues: init, new, add, build."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.base import app, human_size, show, workspace_settings
from newsletter.compose.build import build_issue
from newsletter.compose.dates import parse_given_date
from newsletter.compose.issue import add_articles, new_issue, resolve_issue
from newsletter.workspace import init_workspace


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Folder for the new workspace.")] = Path("."),
    name: Annotated[str, typer.Option(help="The newsletter's name.")] = "My Newsletter",
) -> None:
    """Create a workspace: newsletter.toml, templates/ and a sample issue.

    Example: newsletter init my-bulletin --name "The Weekly Note"
    """
    for created in init_workspace(path, name=name):
        typer.echo(f"created {show(created)}")
    typer.echo(f"Next: cd {path} && newsletter build welcome")


@app.command()
def new(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Short name, e.g. spring-update.")],
    subject: Annotated[str | None, typer.Option(help="The email's subject.")] = None,
    date: Annotated[
        str | None,
        typer.Option(help="Issue date: 2027-03-01, 1 March 2027 or Mar 1, 2027 (default today)."),
    ] = None,
) -> None:
    """Create a new issue folder issues/<date>-<slug>/ with an issue.toml.

    Example: newsletter new spring-update --subject "Spring update" --date 2027-03-01
    """
    settings = workspace_settings(ctx)
    day = _parse_option_date(date) if date else dt.date.today()
    folder = new_issue(settings, slug, subject=subject, date=day)
    typer.echo(f"created {show(folder)}")


def _parse_option_date(text: str) -> dt.date:
    try:
        return parse_given_date(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--date") from exc


@app.command()
def add(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Article files (.md, .txt, .html), page URLs, or feeds "
            "(.xml, .rss or .atom files, or URLs) with --since.",
            show_default=False,
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(
            help="Add a feed's items dated this day or later: 2026-11-01 or 1 November 2026."
        ),
    ] = None,
) -> None:
    """Import articles into an issue as Markdown and append them to its order.

    Files, a web page's article (fetched, extracted and sanitized), or a feed's new items
    (the RSS-to-email workflow). Local images the articles show are copied in.

    Example: newsletter add welcome ~/Downloads/article.txt https://example.org/news/story

    Example: newsletter add welcome https://example.org/feed.xml --since 2026-11-01
    """
    settings = workspace_settings(ctx)
    folder = resolve_issue(settings, issue)
    day = _parse_since(since) if since else None
    warnings: list[str] = []
    copied: list[tuple[Path, Path]] = []
    written = add_articles(folder, sources, settings, warnings, since=day, copied=copied)
    for image, _ in copied:
        typer.echo(f"copied {show(image)}")
    for article in written:
        typer.echo(f"added {show(article)}")
    for warning in warnings:
        typer.echo(f"Warning: {warning}", err=True)


def _parse_since(text: str) -> dt.date:
    try:
        return parse_given_date(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc


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
    settings = workspace_settings(ctx)
    result = build_issue(settings, resolve_issue(settings, issue), out)
    for path, size in result.files:
        typer.echo(f"{show(path)}  {human_size(size)}")
    for warning in result.warnings:
        typer.echo(f"Warning: {warning}", err=True)
