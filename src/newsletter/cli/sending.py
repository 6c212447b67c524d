"""Commands that send: send-test, send, status."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated

import typer

from newsletter.audience.subscribers import count_audience
from newsletter.cli.base import app, workspace_settings
from newsletter.cli.review import pre_send_checks
from newsletter.compose.issue import resolve_issue
from newsletter.delivery.dry_run import dry_run as run_dry
from newsletter.delivery.engine import send_issue
from newsletter.delivery.plan import Plan, plan_send
from newsletter.delivery.providers import Status, provider_info
from newsletter.delivery.report import Progress, SendReport
from newsletter.delivery.status import ledger_status
from newsletter.delivery.test_copies import send_test
from newsletter.errors import UsageError
from newsletter.storage import open_engine

# status lists this many failed and uncertain recipients unless --all
SHOWN_AT_MOST = 20


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

    \b
    Example: newsletter send-test welcome --to me@example.org --provider postmark
    """
    settings = workspace_settings(ctx)
    folder = resolve_issue(settings, issue)
    pre_send_checks(settings, folder, refuse=False)  # shown, never in the way of a test
    report = send_test(
        settings,
        folder,
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


@app.command()
def send(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    segment: Annotated[
        str | None, typer.Option(help='Only active subscribers with these tags, e.g. "news".')
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Personalize every message, send none.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before sending.")] = False,
    retry_uncertain: Annotated[
        bool,
        typer.Option("--retry-uncertain", help="Resend batches whose answer was lost."),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option("--retry-failed", help="Resend the messages the provider refused."),
    ] = False,
    rate: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Batches in flight at once.")] = None,
    allow_changed: Annotated[
        bool,
        typer.Option("--allow-changed", help="Continue although the issue changed since."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Send although `newsletter check` finds errors.")
    ] = False,
) -> None:
    """Send an issue to the list; running it again resumes and never sends twice.

    Runs `newsletter check` first and refuses an issue with errors unless --force.
    Exit status 0 when everything went, 2 when some failed, are uncertain or wait for
    another run, 130 when stopped with Ctrl-C.

    \b
    Example: newsletter send welcome --segment news --yes
    """
    settings = workspace_settings(ctx)
    folder = resolve_issue(settings, issue)
    plan = plan_send(
        settings,
        folder,
        environ=os.environ,
        segment=segment or "",
        rate=rate,
        concurrency=concurrency,
    )
    pre_send_checks(settings, folder, refuse=not force)  # after the plan's own refusals
    _show_plan(plan, segment, retry_uncertain)
    if dry_run:
        report = run_dry(settings, folder, environ=os.environ, segment=segment or "")
        typer.echo(
            f"Dry run: personalized {report.sent} messages "
            f"({report.personalize_us:.1f} µs each); nothing was sent"
        )
        return
    if plan.resuming and not (plan.audience or plan.uncertain or retry_failed):
        if plan.in_flight_elsewhere:
            typer.echo(
                f"Nothing left for this sender: {plan.in_flight_elsewhere} recipients are in "
                f"flight with {', '.join(plan.elsewhere)}, which will finish them; "
                f"`newsletter status {issue}` follows them."
            )
        else:
            typer.echo("Nothing left to send; `newsletter status` shows the outcome.")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("pass --yes to send without a question (no terminal to ask on)")
        typer.confirm(f"Send to {plan.audience} subscribers now?", abort=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, _stop_then_quit(stop))
    try:
        with _progress_display() as show:
            report = send_issue(
                settings,
                folder,
                environ=os.environ,
                retry_uncertain=retry_uncertain,
                retry_failed=retry_failed,
                allow_changed=allow_changed,
                progress=show,
                stop=stop,
                segment=segment or "",
                rate=rate,
                concurrency=concurrency,
            )
    except KeyboardInterrupt:
        typer.echo(
            "Quit: the batches on the wire are uncertain; see `newsletter status`.", err=True
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # not waiting for the provider to answer the batches on the wire
    finally:
        signal.signal(signal.SIGINT, previous)
    raise typer.Exit(_show_outcome(report, issue))


def _show_plan(plan: Plan, segment: str | None, retry_uncertain: bool) -> None:
    typer.echo(f"Issue:     {plan.issue}: {plan.subject}")
    if plan.build:
        typer.echo(f"Build:     {plan.build} (made from today's sources)")
    who = f"active subscribers in segment {segment!r}" if segment else "active subscribers"
    if plan.resuming:
        typer.echo(f"Audience:  {plan.audience} still to send ({plan.already_sent} sent before)")
        if plan.uncertain:
            again = retry_uncertain or provider_info(plan.provider).idempotent
            typer.echo(
                f"Uncertain: {plan.uncertain} whose earlier batch got no answer; "
                + ("resent now" if again else "resent only with --retry-uncertain")
            )
        if plan.in_flight_elsewhere:
            typer.echo(
                f"Elsewhere: {plan.in_flight_elsewhere} in flight with {', '.join(plan.elsewhere)}"
            )
    else:
        typer.echo(f"Audience:  {plan.audience} {who}")
    typer.echo(
        f"Provider:  {plan.provider}, batches of {plan.batch_size}, "
        f"{plan.concurrency} at once, at most {plan.rate:g} messages/s"
    )
    typer.echo(f"Duration:  about {_duration(plan.estimate)} at that rate")


def _stop_then_quit(stop: threading.Event) -> Callable[[int, object], None]:
    """The first Ctrl-C lets the batches in flight finish; the second quits at once."""

    def on_interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo(
            "\nStopping after the batches in flight (Ctrl-C again to quit at once)...", err=True
        )

    return on_interrupt


def _show_outcome(report: SendReport, issue: str) -> int:
    """Print what the run did; return the exit status."""
    typer.echo(
        f"{report.sent} sent, {report.failed} failed, {len(report.uncertain)} uncertain "
        f"in this run through {report.provider}"
    )
    if report.uncertain:
        typer.echo(
            f"Uncertain (the provider may have sent them; resend with --retry-uncertain): "
            f"{', '.join(report.uncertain[:10])}"
            f"{' ...' if len(report.uncertain) > 10 else ''}",
            err=True,
        )
    if report.in_flight_elsewhere:
        typer.echo(
            f"{report.in_flight_elsewhere} recipients are in flight with "
            f"{', '.join(report.elsewhere)}, which will finish them.",
            err=True,
        )
    if report.stopped:
        typer.echo(report.stopped, err=True)
        if report.interrupted:
            return 130
        return 2
    if report.failed or report.uncertain:
        typer.echo(f"See `newsletter status {issue}` for who and why.", err=True)
        return 2
    return 0


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@contextlib.contextmanager
def _progress_display() -> Iterator[Callable[[Progress], None]]:
    """A Rich progress bar on a terminal; a plain line every few seconds in a pipe."""
    if sys.stdout.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn("[bold]sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("send", total=None, detail="")

            def show(p: Progress) -> None:
                detail = f"{p.sent} sent, {p.failed} failed, {p.rate:.0f}/s"
                if p.note:
                    detail += f"; {p.note}"
                bar.update(task, total=p.total, completed=p.done, detail=detail)

            yield show
        return
    last = [0.0]

    def plain(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 5 or p.done >= p.total:
            last[0] = now
            note = f"; {p.note}" if p.note else ""
            typer.echo(
                f"{p.done}/{p.total}: {p.sent} sent, {p.failed} failed, {p.rate:.0f}/s{note}"
            )

    yield plain


@app.command()
def status(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (everyone).")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="List every failed and uncertain recipient.")
    ] = False,
) -> None:
    """Show an issue's send: counts by state, and who failed or is uncertain.

    Long lists are cut to their first 20 recipients; --all or --json gives them all.

    \b
    Example: newsletter status welcome --json
    """
    settings = workspace_settings(ctx)
    key = resolve_issue(settings, issue).name
    engine = open_engine(settings)
    try:
        result = ledger_status(engine, key, settings.sending.lease)
        audience = 0 if result.exists else count_audience(engine, "")
    finally:
        engine.dispose()
    if not result.exists:
        if as_json:
            typer.echo(json.dumps({"issue": key, "sent": False, "audience": audience}))
        else:
            typer.echo(
                f"{key} has not been sent yet; it would go to {audience} active subscribers "
                f"(newsletter send {issue})"
            )
        return
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    typer.echo(f"{key}: " + ", ".join(f"{n} {state}" for state, n in result.counts.items()))
    shown = None if show_all else SHOWN_AT_MOST
    for label, rows in (
        ("failed", [f"{email}  {error}" for email, error in result.failed]),
        ("uncertain", result.uncertain),
    ):
        for row in rows[:shown]:
            typer.echo(f"{label:<10} {row}")
        if shown is not None and len(rows) > shown:
            typer.echo(f"... and {len(rows) - shown} more {label} (--all or --json lists them)")
