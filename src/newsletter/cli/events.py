"""Commands for events: what providers reported through webhooks."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from newsletter.audience.feedback import Event, list_events
from newsletter.audience.subscribers import iso_time
from newsletter.cli.base import app, workspace_settings
from newsletter.compose.dates import WRITTEN_FORMS, parse_given_date
from newsletter.files import shown
from newsletter.storage import open_engine

SHOWN_AT_MOST = 20


def parse_since(text: str) -> dt.datetime:
    """A date as other commands take it (from its midnight, UTC), or an ISO date and time."""
    try:
        return dt.datetime.combine(parse_given_date(text), dt.time(), dt.UTC)
    except ValueError as not_a_date:
        try:
            moment = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise typer.BadParameter(
                f"{shown(text)} is neither a date ({WRITTEN_FORMS}) nor an ISO date and time "
                "(2026-11-26T09:30)",
                param_hint="--since",
            ) from not_a_date
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@app.command()
def events(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only events at or after this date or ISO date and time."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (every event).")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every event.")] = False,
) -> None:
    """List bounces, complaints and unsubscribes the providers reported, newest first.

    Each line: when, provider, kind, address, and what it changed. Long lists are cut
    to the newest 20; --all or --json gives them all.

    \b
    Example: newsletter events --since 2026-11-01
    """
    start = parse_since(since) if since else None
    settings = workspace_settings(ctx)
    engine = open_engine(settings)
    try:
        found = list_events(engine, start)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([e.as_json() for e in found], ensure_ascii=False))
        return
    if not found:
        typer.echo("no events" + (f" since {iso_time(start)}" if start else ""))
        return
    counts: dict[str, int] = {}
    for event in found:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    typer.echo(f"{len(found)} events: {summary}")
    shown_rows = found if show_all else found[:SHOWN_AT_MOST]
    for event in shown_rows:
        typer.echo(_line(event))
    if len(found) > len(shown_rows):
        typer.echo(f"... and {len(found) - len(shown_rows)} more (--all or --json lists them)")


def _line(event: Event) -> str:
    when = (iso_time(event.occurred_at) or "").replace("+00:00", "Z")
    issue = f"  [{shown(event.issue, 40)}]" if event.issue else ""
    return (
        f"{when}  {event.provider:<8} {event.kind:<11} {shown(event.email, 60)}  "
        f"{shown(event.outcome, 80)}{issue}"
    )
