"""The `newsletter` command: a thin shell over the library.

Each command parses its options, calls one library function and prints the result. A
NewsletterError becomes one line per problem on stderr and exit status 1; a traceback
appears only with --debug.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy import Engine
from typer.core import TyperGroup

from newsletter import __version__
from newsletter.articles import parse_date
from newsletter.build import build_issue
from newsletter.config import Settings, load_workspace
from newsletter.engine import Progress, plan_send, send_issue
from newsletter.errors import NewsletterError
from newsletter.files import atomic_text
from newsletter.issue import add_articles, new_issue, resolve_issue
from newsletter.ledger import ledger_status
from newsletter.providers import Status
from newsletter.send import send_test
from newsletter.storage import open_engine
from newsletter.subscribers import (
    ImportRejected,
    ImportReport,
    add_subscriber,
    count_subscribers,
    export_csv,
    import_csv,
    iter_subscribers,
    remove_subscriber,
)
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
    rate: Annotated[float | None, typer.Option(help="Messages per second.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Batches in flight at once.")] = None,
    allow_changed: Annotated[
        bool,
        typer.Option("--allow-changed", help="Continue although the issue changed since."),
    ] = False,
) -> None:
    """Send an issue to the list; running it again resumes and never sends twice.

    Example: newsletter send welcome --segment news --yes
    """
    settings = _settings(ctx)
    folder = resolve_issue(settings, issue)
    plan = plan_send(settings, folder, segment=segment or "", rate=rate, concurrency=concurrency)
    typer.echo(f"Issue:     {plan.issue}: {plan.subject}")
    who = f"active subscribers in segment {segment!r}" if segment else "active subscribers"
    if plan.resuming:
        typer.echo(f"Audience:  {plan.audience} still to send ({plan.already_sent} sent before)")
    else:
        typer.echo(f"Audience:  {plan.audience} {who}")
    typer.echo(
        f"Provider:  {plan.provider}, batches of {plan.batch_size}, "
        f"{plan.concurrency} at once, at most {plan.rate:g} messages/s"
    )
    typer.echo(f"Duration:  about {_duration(plan.estimate)} at that rate")
    if dry_run:
        report = send_issue(
            settings, folder, environ=os.environ, segment=segment or "", dry_run=True
        )
        typer.echo(
            f"Dry run: personalized {report.sent} messages "
            f"({report.personalize_us:.1f} µs each); nothing was sent"
        )
        return
    if plan.resuming and plan.audience == 0:
        typer.echo("Nothing left to send; `newsletter status` shows the outcome.")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise NewsletterError("pass --yes to send without a question (no terminal to ask on)")
        typer.confirm(f"Send to {plan.audience} subscribers now?", abort=True)
    stop = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo(
            "\nStopping after the batches in flight (Ctrl-C again to quit at once)...", err=True
        )

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with _progress_display() as show:
            report = send_issue(
                settings,
                folder,
                environ=os.environ,
                segment=segment or "",
                rate=rate,
                concurrency=concurrency,
                retry_uncertain=retry_uncertain,
                allow_changed=allow_changed,
                progress=show,
                stop=stop,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
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
    if report.stopped:
        typer.echo(report.stopped, err=True)
        raise typer.Exit(130)
    if report.failed or report.uncertain:
        typer.echo(f"See `newsletter status {issue}` for who and why.", err=True)
        raise typer.Exit(2)


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
                bar.update(task, total=p.total, completed=p.done, detail=detail)

            yield show
        return
    last = [0.0]

    def plain(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 5 or p.done >= p.total:
            last[0] = now
            typer.echo(f"{p.done}/{p.total}: {p.sent} sent, {p.failed} failed, {p.rate:.0f}/s")

    yield plain


@app.command()
def status(
    ctx: typer.Context,
    issue: Annotated[str, typer.Argument(help="Issue folder or slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show an issue's send: counts by state, and who failed or is uncertain.

    Example: newsletter status welcome --json
    """
    settings = _settings(ctx)
    key = resolve_issue(settings, issue).name
    engine = open_engine(settings)
    try:
        result = ledger_status(engine, key, settings.sending.lease)
    finally:
        engine.dispose()
    if not result.exists:
        raise NewsletterError(f"{key} has not been sent yet (newsletter send {issue})")
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    typer.echo(f"{key}: " + ", ".join(f"{n} {state}" for state, n in result.counts.items()))
    for email, error in result.failed:
        typer.echo(f"failed     {email}  {error}")
    for email in result.uncertain:
        typer.echo(f"uncertain  {email}")


subscribers_app = typer.Typer(
    cls=_Group,
    help="The list: add, import, export, list, count and remove subscribers.",
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


def _engine(ctx: typer.Context) -> Engine:
    return open_engine(_settings(ctx))


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The address.")],
    name: Annotated[str, typer.Option(help="The subscriber's name.")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeat for more.")] = None,
    status: Annotated[str, typer.Option(help="active or pending.")] = "active",
) -> None:
    """Add one subscriber.

    Example: newsletter subscribers add ana@example.org --name "Ana Lima" --tag news
    """
    added = add_subscriber(_engine(ctx), email, name=name, tags=tag or [], status=status)
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
            _engine(ctx),
            file,
            tags=tag or [],
            skip_invalid=skip_invalid,
            encoding=encoding,
            dry_run=dry_run,
        )
    except ImportRejected as exc:
        _print_problems(exc.report)
        raise
    _print_problems(report)
    verb = "would be" if dry_run else "were"
    typer.echo(
        f"{report.rows} rows: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.skipped} skipped, {report.invalid} invalid "
        f"({'dry run: nothing was changed' if dry_run else 'imported'})"
    )
    if report.kept_status:
        typer.echo(f"{report.kept_status} that left the list {verb} not reactivated")


def _print_problems(report: ImportReport) -> None:
    for problem in report.problems:
        typer.echo(
            f"{report.path}:{problem.line}: {problem.email or '-'}: {problem.reason}", err=True
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
    """Export subscribers as CSV (the columns import reads).

    Example: newsletter subscribers export --status active -o active.csv
    """
    engine = _engine(ctx)
    status, tag = _audience(status, tag, segment)
    if output is None:
        export_csv(engine, sys.stdout, status=status, segment=tag)
        return
    with atomic_text(output) as handle:
        count = export_csv(engine, handle, status=status, segment=tag)
    typer.echo(f"exported {count} subscribers to {_show(output)}", err=True)


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
    for s in iter_subscribers(_engine(ctx), status=status, segment=tag):
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
    counts = count_subscribers(_engine(ctx), by=by, status=status, segment=tag)
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
    email: Annotated[str, typer.Argument(help="The address.")],
    erase: Annotated[
        bool,
        typer.Option("--erase", help="Delete the personal data (GDPR erasure), keep a hash."),
    ] = False,
) -> None:
    """Unsubscribe an address, or erase it entirely with --erase.

    Example: newsletter subscribers remove ana@example.org --erase
    """
    typer.echo(remove_subscriber(_engine(ctx), email, erase=erase))


def _show(path: Path) -> str:
    """A path as the user would type it: relative to the current folder, like git does."""
    relative = os.path.relpath(path.resolve(), Path.cwd())
    return relative if not relative.startswith("../../..") else str(path)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="newsletter")
