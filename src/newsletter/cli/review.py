"""Commands for check and preview: what an editor looks at before sending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from newsletter.checks import Report, Severity, check_issue
from newsletter.cli.base import app, workspace_settings
from newsletter.compose.issue import resolve_issue
from newsletter.config import Settings
from newsletter.errors import SendError


@app.command()
def check(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too.")] = False,
    links: Annotated[
        bool, typer.Option("--links", help="Also fetch every link and image (network).")
    ] = False,
    spam: Annotated[
        bool, typer.Option("--spam", help="Also score the email with SpamAssassin, if installed.")
    ] = False,
) -> None:
    """Check the built email before sending: one line per finding, with its place.

    Builds the issue first when its sources changed. Exit status 1 when there are
    errors (or, with --strict, warnings).

    \b
    Example: newsletter check welcome --links
    """
    settings = workspace_settings(ctx)
    report = check_issue(settings, resolve_issue(settings, issue), links=links, spam=spam)
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=1))
    else:
        show_report(report, err=False)
        typer.echo(report.summary())
    for note in report.notes:
        typer.echo(f"Note: {note}", err=True)
    if report.fails(strict):
        raise typer.Exit(1)


def show_report(report: Report, err: bool) -> None:
    """One line per finding: `place: severity id: message`."""
    for finding in report.findings:
        typer.echo(str(finding), err=err)


def pre_send_checks(settings: Settings, folder: Path, *, refuse: bool) -> None:
    """What `send` and `send-test` run first: findings on stderr; errors refuse if `refuse`."""
    report = check_issue(settings, folder)
    for finding in report.findings:  # in the form of every other command's problems
        label = "Error" if finding.severity is Severity.ERROR else "Warning"
        typer.echo(f"{label}: {finding.place}: {finding.rule}: {finding.message}", err=True)
    if report.errors and refuse:
        raise SendError(
            f"{report.summary()}: not sent; fix the errors (newsletter check {folder.name}) "
            "or pass --force to send anyway"
        )


@app.command()
def preview(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free one).")] = 8765,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the preview in the web browser.")
    ] = False,
    screenshot: Annotated[
        Path | None,
        typer.Option(
            "--screenshot",
            help="Write desktop.png and phone.png into this folder, then exit.",
        ),
    ] = None,
) -> None:
    """Preview the issue in a browser, rebuilt and reloaded when a source changes.

    Shows the email at desktop and phone widths side by side, in dark mode, the text
    part, the headers and the check results, on 127.0.0.1 only.

    \b
    Example: newsletter preview welcome --open
    """
    from newsletter.web.preview import screenshots, serve  # uvicorn loads only here

    settings = workspace_settings(ctx)
    folder = resolve_issue(settings, issue)
    if screenshot is not None:
        for path in screenshots(settings, folder, screenshot):
            typer.echo(f"wrote {path}")
        return
    serve(
        settings,
        folder,
        port=port,
        open_browser=open_browser,
        announce=lambda url: typer.echo(f"Preview of {folder.name} at {url} (Ctrl-C to stop)"),
    )
