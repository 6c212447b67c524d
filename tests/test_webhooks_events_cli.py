"""`newsletter events`: what the webhooks stored, as a person and a script read it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner

from newsletter.audience.feedback import Kind, Report, SoftBounces, record_reports
from newsletter.audience.subscribers import add_subscriber
from newsletter.cli import app
from newsletter.config import Settings
from newsletter.storage import open_engine

T = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


def report(n: int, kind: Kind, email: str, days: int = 0) -> Report:
    return Report("sendgrid", f"sendgrid:e{n}", kind, email, T + dt.timedelta(days=days), "x")


def run(workspace: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "events", *args])
    return result.exit_code, result.output


def test_events_lists_what_each_report_changed(workspace: Path, settings: Settings) -> None:
    engine = open_engine(settings)
    add_subscriber(engine, "ana@example.org")
    add_subscriber(engine, "bo@example.org")
    record_reports(
        engine,
        [
            report(1, Kind.BOUNCE, "ana@example.org"),
            report(2, Kind.COMPLAINT, "bo@example.org", days=2),
            report(3, Kind.COMPLAINT, "ana@example.org", days=3),
            report(4, Kind.UNSUBSCRIBE, "nobody@example.org", days=4),
            report(5, Kind.BOUNCE, "evil\n@example.org", days=5),
        ],
        SoftBounces(3, 30),
    )
    engine.dispose()
    code, out = run(workspace)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "5 events: 2 bounce, 2 complaint, 1 unsubscribe"
    assert lines[1].startswith("2026-11-25T09:30:00Z  sendgrid bounce      'evil\\n@example.org'")
    assert "nobody@example.org  not on the list" in lines[2]
    assert "ana@example.org  no change (already bounced)" in lines[3]
    assert "bo@example.org  active → complained" in lines[4]
    assert "ana@example.org  active → bounced" in lines[5]

    code, out = run(workspace, "--since", "2026-11-23")
    assert out.splitlines()[0] == "3 events: 1 bounce, 1 complaint, 1 unsubscribe"
    code, out = run(workspace, "--since", "2026-11-24T09:30:00+00:00", "--json")
    rows = json.loads(out)
    assert [r["kind"] for r in rows] == ["bounce", "unsubscribe"]
    assert rows[1] == {
        "occurred_at": "2026-11-24T09:30:00+00:00",
        "provider": "sendgrid",
        "kind": "unsubscribe",
        "email": "nobody@example.org",
        "issue": "",
        "outcome": "not on the list",
    }


def test_a_long_list_is_cut_like_status(workspace: Path, settings: Settings) -> None:
    engine = open_engine(settings)
    reports = [report(n, Kind.SOFT_BOUNCE, f"r{n}@example.org") for n in range(25)]
    record_reports(engine, reports, SoftBounces(3, 30))
    engine.dispose()
    code, out = run(workspace)
    lines = out.splitlines()
    assert lines[0] == "25 events: 25 soft_bounce"
    assert len(lines) == 22 and lines[-1] == "... and 5 more (--all or --json lists them)"
    assert "soft bounce 1 of 3 in 30 days; not on the list" in lines[1]
    assert len(run(workspace, "--all")[1].splitlines()) == 26
    assert (
        run(workspace, "--since", "2027-01-01")[1] == "no events since 2027-01-01T00:00:00+00:00\n"
    )


def test_since_refuses_what_is_not_a_date(workspace: Path) -> None:
    for bad in ("yesterday-ish", "26/11/2026", "2026-13-45T00:00"):
        code, out = run(workspace, "--since", bad)
        assert code == 2, out
        assert "--since" in out and "Traceback" not in out
