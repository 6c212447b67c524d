"""The `newsletter subscribers` commands: add, import, export, list, count, remove."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from newsletter.audience.exporting import export_csv, export_file
from newsletter.audience.importing import ImportReport, import_csv
from newsletter.audience.subscribers import (
    add_subscriber,
    count_subscribers,
    iter_subscribers,
    remove_subscriber,
)
from newsletter.cli.base import Group, app, list_engine, show
from newsletter.errors import ImportRejected
from newsletter.files import shown

subscribers_app = typer.Typer(
    cls=Group,
    help="The list: add, import, export, list, count and remove subscribers.\n\n"
    "\b\nExample: newsletter subscribers import members.csv --tag members --dry-run",
    no_args_is_help=True,
)
app.add_typer(subscribers_app, name="subscribers")

StatusOption = Annotated[
    str | None, typer.Option("--status", help="pending, active, unsubscribed, bounced, complained.")
]
TagOption = Annotated[
    str | None,
    typer.Option("--tag", help='Subscribers with a tag, or tags such as "news and not staff".'),
]
SegmentOption = Annotated[
    str | None,
    typer.Option("--segment", help='Active subscribers with a tag, e.g. "news and not staff".'),
]


def _audience(
    status: str | None, tag: str | None, segment: str | None
) -> tuple[str | None, str | None]:
    """--segment is --status active with --tag; both together would be ambiguous."""
    if segment and tag:
        raise typer.BadParameter("give --segment or --tag, not both", param_hint="--segment")
    if segment:
        return status or "active", segment
    return status, tag


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: Annotated[
        str, typer.Argument(help='The address, or a mailbox: "Ana Lima <ana@example.org>".')
    ],
    name: Annotated[
        str, typer.Option(help="The subscriber's name (default: the mailbox's display name).")
    ] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    status: Annotated[str, typer.Option(help="active or pending.")] = "active",
) -> None:
    """Add one subscriber, by address or by mailbox with a display name.

    Example: newsletter subscribers add ana@example.org --name "Ana Lima" --tag news
    """
    added = add_subscriber(list_engine(ctx), email, name=name, tags=tag or [], status=status)
    tags = f" [{', '.join(added.tags)}]" if added.tags else ""
    typer.echo(f"added {added.email} ({added.status}){tags}")


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with an email column.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report, change nothing.")] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Tag every imported row; repeatable.")
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows, skip the rest.")
    ] = False,
    encoding: Annotated[str, typer.Option(help="The file's text encoding.")] = "utf-8-sig",
) -> None:
    """Import subscribers from CSV, all or nothing, reporting every skipped row.

    Columns: email, name, tags (";"-separated), status; others become custom fields.

    Example: newsletter subscribers import members.csv --tag members --dry-run
    """
    try:
        report = import_csv(
            list_engine(ctx),
            file,
            tags=tag or [],
            skip_invalid=skip_invalid,
            encoding=encoding,
            dry_run=dry_run,
        )
    except ImportRejected as exc:
        _print_report(
            exc.report, "dry run: nothing was changed" if dry_run else "nothing was imported"
        )
        raise
    _print_report(report, "dry run: nothing was changed" if dry_run else "imported")


def _print_report(report: ImportReport, outcome: str) -> None:
    """Every problem row, then the counts, whether the import went ahead or not."""
    _print_problems(report)
    typer.echo(
        f"{report.rows} rows: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.skipped} skipped, {report.invalid} invalid "
        f"({outcome})"
    )
    if report.kept_status:
        verb = "were" if outcome == "imported" else "would be"
        typer.echo(f"{report.kept_status} that left the list {verb} not reactivated")


def _print_problems(report: ImportReport) -> None:
    """One line a problem: an address with a line break or 100,000 characters is shown
    escaped and cut, never raw (it would make one problem several lines, or a wall)."""
    for problem in report.problems:
        typer.echo(
            f"{report.path}:{problem.line}: {shown(problem.email) if problem.email else '-'}: "
            f"{shown(problem.reason, 300)}",
            err=True,
        )
    hidden = report.skipped + report.invalid + report.kept_status - len(report.problems)
    if hidden > 0:
        typer.echo(f"... and {hidden} more", err=True)


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context,
    status: StatusOption = None,
    tag: TagOption = None,
    segment: SegmentOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Export subscribers as CSV (the columns import reads), safe to open in a spreadsheet.

    A file written with -o is readable by its owner only: it holds subscribers' data.

    Example: newsletter subscribers export --status active -o active.csv
    """
    engine = list_engine(ctx)
    status, tag = _audience(status, tag, segment)
    if output is None:
        export_csv(engine, sys.stdout, status=status, segment=tag)
        return
    count = export_file(engine, output, status=status, segment=tag)
    typer.echo(f"exported {count} subscribers to {show(output)}", err=True)


@subscribers_app.command("list")
def subscribers_list(
    ctx: typer.Context,
    status: StatusOption = None,
    tag: TagOption = None,
    segment: SegmentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List subscribers.

    Example: newsletter subscribers list --segment "news and not staff"
    """
    status, tag = _audience(status, tag, segment)
    for s in iter_subscribers(list_engine(ctx), status=status, segment=tag):
        if as_json:
            typer.echo(json.dumps(s.as_json(), ensure_ascii=False))
        else:
            tags = ",".join(s.tags)
            typer.echo(f"{s.email}\t{s.status}\t{s.name}\t{tags}")


@subscribers_app.command("count")
def subscribers_count(
    ctx: typer.Context,
    by: Annotated[str | None, typer.Option("--by", help="status or tag.")] = None,
    status: StatusOption = None,
    tag: TagOption = None,
    segment: SegmentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Count subscribers, in total or by status or tag.

    Example: newsletter subscribers count --by status
    """
    status, tag = _audience(status, tag, segment)
    counts = count_subscribers(list_engine(ctx), by=by, status=status, segment=tag)
    if as_json:
        typer.echo(json.dumps(counts))
    elif by is None:
        typer.echo(str(counts["total"]))
    else:
        for key, n in counts.items():
            typer.echo(f"{key}\t{n}")


@subscribers_app.command("remove")
def subscribers_remove(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address (or a mailbox with a name).")],
    erase: Annotated[
        bool,
        typer.Option("--erase", help="Delete the personal data (GDPR erasure), keep a hash."),
    ] = False,
) -> None:
    """Unsubscribe an address, or erase it entirely with --erase.

    Example: newsletter subscribers remove ana@example.org --erase
    """
    typer.echo(remove_subscriber(list_engine(ctx), email, erase=erase))
